package file

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

// fakeSinkContext stands in for the runtime. Report records what the task reported and
// answers with reportErr, as an error policy that does or does not tolerate the record.
type fakeSinkContext struct {
	t         testing.TB
	taskID    int
	reportErr error

	mu       sync.Mutex
	reported []connect.Record
	reasons  []error
}

func newFakeSinkContext(t testing.TB, taskID int) *fakeSinkContext {
	return &fakeSinkContext{t: t, taskID: taskID}
}

func (f *fakeSinkContext) Connector() string { return "file-test" }
func (f *fakeSinkContext) TaskID() int       { return f.taskID }
func (f *fakeSinkContext) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(f.t.Output(), nil)).With("task", f.taskID)
}

func (f *fakeSinkContext) Report(_ context.Context, rec connect.Record, reason error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported = append(f.reported, rec)
	f.reasons = append(f.reasons, reason)
	return f.reportErr
}

func (f *fakeSinkContext) Assignment() []connect.TopicPartition { return nil }
func (f *fakeSinkContext) Seek(connect.TopicPartition, int64)   {}
func (f *fakeSinkContext) Pause(...connect.TopicPartition)      {}
func (f *fakeSinkContext) Resume(...connect.TopicPartition)     {}
func (f *fakeSinkContext) RequestCommit()                       {}
