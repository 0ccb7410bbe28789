package filesource

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

// fakeSourceContext stands in for the runtime: it stores the last offset per source partition,
// as the runtime does once Kafka acknowledged a record, and hands it back through Offset.
type fakeSourceContext struct {
	t       testing.TB
	taskID  int
	mu      sync.Mutex
	offsets map[string]map[string]any // by the partition's JSON
}

func newFakeSourceContext(t testing.TB, taskID int) *fakeSourceContext {
	return &fakeSourceContext{t: t, taskID: taskID, offsets: map[string]map[string]any{}}
}

func (f *fakeSourceContext) Connector() string { return "file-source-test" }
func (f *fakeSourceContext) TaskID() int       { return f.taskID }
func (f *fakeSourceContext) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(f.t.Output(), nil)).With("task", f.taskID)
}

func (f *fakeSourceContext) Offset(_ context.Context, partition map[string]any) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offsets[partitionKey(f.t, partition)], nil
}

func (f *fakeSourceContext) Report(_ context.Context, rec connect.Record, reason error) error {
	f.t.Errorf("unexpected Report(%v, %v)", rec, reason)
	return reason
}

// store keeps the offsets of acknowledged records, passed through JSON as the runtime's
// offset topic does (numbers come back as float64).
func (f *fakeSourceContext) store(acked []connect.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range acked {
		b, err := json.Marshal(r.SourceOffset)
		if err != nil {
			f.t.Fatal(err)
		}
		var offset map[string]any
		if err := json.Unmarshal(b, &offset); err != nil {
			f.t.Fatal(err)
		}
		f.offsets[partitionKey(f.t, r.SourcePartition)] = offset
	}
}

func partitionKey(t testing.TB, partition map[string]any) string {
	b, err := json.Marshal(partition) // sorts the keys
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startTask starts a file-source task reading path into the topic "lines", polling every 10ms.
func startTask(t *testing.T, tc *fakeSourceContext, path string) *Task {
	t.Helper()
	task := &Task{}
	cfg := connect.Config{"file": path, "kafka.topic": "lines", "poll.interval": "10ms", "batch.size": "3"}
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

// values polls once and returns the lines it got, checking each record's offset follows on.
func values(t *testing.T, task *Task) []string {
	t.Helper()
	recs, err := task.Poll(t.Context())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	var out []string
	for _, r := range recs {
		if r.Topic != "lines" || r.SourcePartition["file"] != task.cfg.File {
			t.Fatalf("record %+v: wrong topic or source partition", r)
		}
		out = append(out, r.Value.(string))
	}
	return out
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
