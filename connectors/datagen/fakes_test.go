package datagen

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

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

func (f *fakeSourceContext) Connector() string    { return "datagen-test" }
func (f *fakeSourceContext) TaskID() int          { return f.taskID }
func (f *fakeSourceContext) SetStatusNote(string) {}
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
		if r.SourceOffset == nil {
			continue // a record that moves its partition's offset nowhere
		}
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

// fakeClock is virtual time: Sleep advances it at once.
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	c.now = c.now.Add(d)
	c.slept += d
	return true
}

// startTask starts a datagen task with the given settings on top of kafka.topic=test.
func startTask(t *testing.T, tc *fakeSourceContext, settings connect.Config, clk clock) *Task {
	t.Helper()
	cfg := connect.Config{"kafka.topic": "test"}
	for k, v := range settings {
		cfg[k] = v
	}
	task := &Task{clock: clk}
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

func poll(t *testing.T, task *Task) []connect.Record {
	t.Helper()
	recs, err := task.Poll(t.Context())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return recs
}
