package filesource

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// startLimited starts a task like startTask, with line.max.bytes limit and batch.size 100.
func startLimited(t *testing.T, tc *connecttest.SourceContext, path string, limit int) *Task {
	t.Helper()
	task := &Task{}
	cfg := connect.Config{"file": path, "kafka.topic": "lines", "poll.interval": "10ms", "batch.size": "100",
		"line.max.bytes": fmt.Sprint(limit)}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return task
}

func TestLinesOverLineMaxBytesAreReportedAndSkipped(t *testing.T) {
	long := strings.Repeat("x", 25)
	tests := []struct {
		name         string
		text         string
		want         []string // lines emitted
		wantReported []string // reasons, in part
		wantHeads    []string // values of the reported records
		wantLast     int64    // position after the last line
	}{
		{"a line at the limit", "0123456789\n", []string{"0123456789"}, nil, nil, 11},
		{"a line at the limit ending in CRLF", "0123456789\r\nok\n", []string{"0123456789", "ok"}, nil, nil, 15},
		{"one byte over", "short\n0123456789A\nafter\n", []string{"short", "after"},
			[]string{"the line at byte offset 6 is 11 bytes long, over line.max.bytes 10; it is skipped and reading goes on at byte offset 18"},
			[]string{"0123456789"}, 24},
		{"one byte over with CRLF", "0123456789A\r\nafter\n", []string{"after"},
			[]string{"the line at byte offset 0 is 11 bytes long, over line.max.bytes 10"}, []string{"0123456789"}, 19},
		{"two long lines in a row", long + "\n" + long + "\r\nend\n", []string{"end"},
			[]string{"the line at byte offset 0 is 25 bytes long", "the line at byte offset 26 is 25 bytes long"},
			[]string{"xxxxxxxxxx", "xxxxxxxxxx"}, 57},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.log")
			appendTo(t, path, tt.text)
			tc := connecttest.NewSourceContext(t, 0)
			task := startLimited(t, tc, path, 10)
			recs, err := task.Poll(t.Context())
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.Value.(string))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			if last := recs[len(recs)-1].SourceOffset["position"]; last != tt.wantLast {
				t.Errorf("position after the last line %v, want %d", last, tt.wantLast)
			}
			if len(tc.Reasons) != len(tt.wantReported) {
				t.Fatalf("reported %v, want %d reports", tc.Reasons, len(tt.wantReported))
			}
			for i, want := range tt.wantReported {
				reason := tc.Reasons[i].Error()
				if !strings.Contains(reason, want) || !strings.Contains(reason, path) {
					t.Errorf("reason %q, want it to name the file %s and say %q", reason, path, want)
				}
				if r := tc.Reported[i]; r.Value != tt.wantHeads[i] || r.Topic != "lines" || r.SourcePartition["file"] != path {
					t.Errorf("reported record %+v, want the first bytes %q of the line, for topic lines and the file's partition", r, tt.wantHeads[i])
				}
			}
		})
	}
}

// A file that grows without a newline is not held in memory beyond line.max.bytes; once the
// newline comes the line is reported once, reading goes on after it, and a restart resumes at
// the right place.
func TestAGrowingLineWithoutNewlineStaysBounded(t *testing.T) {
	const limit = 1000
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "before\n")
	tc := connecttest.NewSourceContext(t, 0)
	task := startLimited(t, tc, path, limit)
	if got := values(t, task); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("first poll %q", got)
	}
	chunk := strings.Repeat("y", 100_000)
	for range 20 { // 2 MB without a newline, a poll after each 100 KB
		appendTo(t, path, chunk)
		if got := values(t, task); len(got) != 0 {
			t.Fatalf("poll in the middle of the line returned %d lines", len(got))
		}
		if held := cap(task.partial); held > 2*limit+2 {
			t.Fatalf("the task holds %d bytes of a line with line.max.bytes %d", held, limit)
		}
	}
	if len(tc.Reported) != 0 {
		t.Fatalf("reported %v before the line ended", tc.Reasons)
	}
	appendTo(t, path, "\nnext\n")
	recs, err := task.Poll(t.Context())
	if err != nil || len(recs) != 1 || recs[0].Value != "next" {
		t.Fatalf("Poll after the newline = %+v, %v; want the line after the long one", recs, err)
	}
	const longEnd = 7 + 2_000_000 + 1
	if pos := recs[0].SourceOffset["position"]; pos != int64(longEnd+5) {
		t.Errorf("position after the next line %v, want %d", pos, longEnd+5)
	}
	if len(tc.Reasons) != 1 || !strings.Contains(tc.Reasons[0].Error(), "the line at byte offset 7 is 2000000 bytes long, over line.max.bytes 1000") {
		t.Fatalf("reported %v, want the long line once", tc.Reasons)
	}
	if head := tc.Reported[0].Value.(string); head != chunk[:limit] {
		t.Errorf("reported value of %d bytes, want the line's first %d", len(head), limit)
	}

	tc.Store(recs) // Kafka acknowledged "next"
	appendTo(t, path, "later\n")
	restarted := startLimited(t, tc, path, limit)
	if got := values(t, restarted); !slices.Equal(got, []string{"later"}) {
		t.Errorf("restarted task read %q, want only the line after the stored position", got)
	}
	if len(tc.Reported) != 1 {
		t.Errorf("the restarted task reported again: %v", tc.Reasons[1:])
	}
}

func TestAnIntolerantPolicyFailsPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "ok\n"+strings.Repeat("z", 50)+"\n")
	tc := connecttest.NewSourceContext(t, 0)
	tc.ReportErr = errors.New("tolerance exceeded")
	task := startLimited(t, tc, path, 10)
	if _, err := task.Poll(t.Context()); !errors.Is(err, tc.ReportErr) {
		t.Fatalf("Poll = %v, want the error policy's answer", err)
	}
}
