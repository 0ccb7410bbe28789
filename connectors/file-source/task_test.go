package filesource

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestReadsCompleteLinesInBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "one\ntwo\r\nthree\n\nfive\nsix-without-newline")
	task := startTask(t, connecttest.NewSourceContext(t, 0), path)

	if got, want := values(t, task), []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Fatalf("first poll %q, want %q (batch.size 3)", got, want)
	}
	if got, want := values(t, task), []string{"", "five"}; !slices.Equal(got, want) {
		t.Fatalf("second poll %q, want %q: a line without its newline waits", got, want)
	}
	if got := values(t, task); len(got) != 0 {
		t.Fatalf("poll at the end %q, want nothing", got)
	}
	appendTo(t, path, "\nseven\n")
	if got, want := values(t, task), []string{"six-without-newline", "seven"}; !slices.Equal(got, want) {
		t.Fatalf("after the file grew %q, want %q", got, want)
	}
}

// A batch's last record carries the byte position after its line; the others carry none (the
// runtime keeps them in order and stores the position once all of them are in Kafka).
func TestTheBatchsLastRecordCarriesTheBytePosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "ab\ncde\r\n")
	recs, err := startTask(t, connecttest.NewSourceContext(t, 0), path).Poll(t.Context())
	if err != nil || len(recs) != 2 {
		t.Fatalf("Poll = %d records, %v", len(recs), err)
	}
	if recs[0].SourceOffset != nil || recs[1].SourceOffset["position"] != int64(8) {
		t.Errorf("offsets %v and %v, want none and position 8", recs[0].SourceOffset, recs[1].SourceOffset)
	}
	for _, r := range recs {
		if r.SourcePartition == nil {
			t.Errorf("record %q has no source partition", r.Value)
		}
	}
}

func TestRestartResumesAfterTheStoredPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "1\n2\n3\n")
	tc := connecttest.NewSourceContext(t, 0)
	first := startTask(t, tc, path)
	recs, _ := first.Poll(t.Context())
	tc.Store(recs) // Kafka acknowledged the batch: lines 1 to 3
	appendTo(t, path, "4\n5\n")

	second := startTask(t, tc, path)
	if got, want := values(t, second), []string{"4", "5"}; !slices.Equal(got, want) {
		t.Errorf("resumed with %q, want %q", got, want)
	}
}

func TestTruncatedFileIsReadFromTheStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "old-1\nold-2\n")
	tc := connecttest.NewSourceContext(t, 0)
	task := startTask(t, tc, path)
	recs, _ := task.Poll(t.Context())
	tc.Store(recs)

	if err := os.WriteFile(path, []byte("new\n"), 0o644); err != nil { // truncates in place
		t.Fatal(err)
	}
	if got := values(t, task); len(got) != 0 {
		t.Fatalf("poll that notices the truncation returned %q", got)
	}
	if got, want := values(t, task), []string{"new"}; !slices.Equal(got, want) {
		t.Errorf("after truncation %q, want %q", got, want)
	}
	// A task starting with a stored position beyond the end starts over too.
	if got, want := values(t, startTask(t, tc, path)), []string{"new"}; !slices.Equal(got, want) {
		t.Errorf("restart after truncation %q, want %q", got, want)
	}
}

func TestRotatedFileIsFollowed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.log")
	appendTo(t, path, "before\n")
	task := startTask(t, connecttest.NewSourceContext(t, 0), path)
	values(t, task)
	if err := os.Rename(path, filepath.Join(dir, "in.log.1")); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "a-much-longer-first-line-after-rotation\n")
	values(t, task) // notices the new file
	if got, want := values(t, task), []string{"a-much-longer-first-line-after-rotation"}; !slices.Equal(got, want) {
		t.Errorf("after rotation %q, want %q", got, want)
	}
}

func TestMissingFileIsWaitedFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	task := startTask(t, connecttest.NewSourceContext(t, 0), path)
	if got := values(t, task); len(got) != 0 {
		t.Fatalf("poll of a missing file %q", got)
	}
	appendTo(t, path, "here\n")
	if got, want := values(t, task), []string{"here"}; !slices.Equal(got, want) {
		t.Errorf("once the file exists %q, want %q", got, want)
	}
}

func TestPollReturnsWhenContextIsDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.log")
	appendTo(t, path, "")
	task := &Task{}
	cfg := connect.Config{"file": path, "kafka.topic": "lines", "poll.interval": "1h"}
	if err := task.Start(t.Context(), cfg, connecttest.NewSourceContext(t, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if recs, err := task.Poll(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("Poll = %d records, %v", len(recs), err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Poll took %v to notice ctx was done", took)
	}
	if err := task.Stop(); err != nil {
		t.Error(err)
	}
}

func TestStoredPositionForms(t *testing.T) {
	tests := []struct {
		offset  map[string]any
		want    int64
		wantErr bool
	}{
		{nil, 0, false},
		{map[string]any{"position": int64(7)}, 7, false},
		{map[string]any{"position": float64(7)}, 7, false},
		{map[string]any{"position": json.Number("7")}, 7, false},
		{map[string]any{"position": 7.5}, 0, true},
		{map[string]any{"position": -1}, 0, true},
		{map[string]any{"seq": int64(7)}, 0, true},
	}
	for _, tt := range tests {
		got, err := storedPosition(tt.offset)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("storedPosition(%v) = %d, %v; want %d, error %v", tt.offset, got, err, tt.want, tt.wantErr)
		}
	}
}
