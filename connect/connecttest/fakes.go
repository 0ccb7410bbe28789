package connecttest

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

// ConnectorContext is a ConnectorContext that logs to the test and records what the
// connector asked for.
type ConnectorContext struct {
	T            testing.TB
	mu           sync.Mutex
	Reconfigures int
	RaisedErrors []error
}

func (c *ConnectorContext) RequestTaskReconfiguration() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Reconfigures++
}

func (c *ConnectorContext) RaiseError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.RaisedErrors = append(c.RaisedErrors, err)
}

func (c *ConnectorContext) Logger() *slog.Logger { return testLogger(c.T) }

// connectorName is a fake context's connector name: name, or "test" when empty.
func connectorName(name string) string {
	if name == "" {
		return "test"
	}
	return name
}

func testLogger(t testing.TB) *slog.Logger {
	if t == nil {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// SourceContext stands in for the runtime in a source task's unit test: it keeps the last
// offset per source partition that Store was given, passed through JSON as the offsets topic
// does (numbers come back as float64), and hands it back through Offset. Report records what
// the task reported and answers ReportErr.
type SourceContext struct {
	T  testing.TB
	ID int
	// Name is the connector's name, as Connector returns it; "test" when empty.
	Name      string
	ReportErr error

	mu       sync.Mutex
	note     string
	offsets  map[string]map[string]any
	Reported []connect.Record
	Reasons  []error
}

// NewSourceContext returns a SourceContext for task id.
func NewSourceContext(t testing.TB, id int) *SourceContext {
	return &SourceContext{T: t, ID: id, offsets: map[string]map[string]any{}}
}

func (f *SourceContext) Connector() string    { return connectorName(f.Name) }
func (f *SourceContext) TaskID() int          { return f.ID }
func (f *SourceContext) Logger() *slog.Logger { return testLogger(f.T).With("task", f.ID) }

// SetStatusNote records the note; Note returns the last one.
func (f *SourceContext) SetStatusNote(note string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note = note
}

// Note is the last note the task set with SetStatusNote.
func (f *SourceContext) Note() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.note
}

func (f *SourceContext) Offset(_ context.Context, partition map[string]any) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offsets[jsonKey(f.T, partition)], nil
}

func (f *SourceContext) Report(_ context.Context, rec connect.Record, reason error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reported = append(f.Reported, rec)
	f.Reasons = append(f.Reasons, reason)
	return f.ReportErr
}

// Store keeps the offsets of records as if Kafka had acknowledged them.
func (f *SourceContext) Store(acked []connect.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range acked {
		if r.SourcePartition == nil || r.SourceOffset == nil {
			continue // no position of its own (see connect.Record.SourceOffset)
		}
		b, err := json.Marshal(r.SourceOffset)
		if err != nil {
			f.T.Fatal(err)
		}
		var offset map[string]any
		if err := json.Unmarshal(b, &offset); err != nil {
			f.T.Fatal(err)
		}
		f.offsets[jsonKey(f.T, r.SourcePartition)] = offset
	}
}

func jsonKey(t testing.TB, partition map[string]any) string {
	b, err := json.Marshal(partition) // sorts the keys
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SinkContext stands in for the runtime in a sink task's unit test. Report records what the
// task reported and answers ReportErr, as an error policy that does or does not tolerate the
// record; seeks, pauses and commit requests are recorded.
type SinkContext struct {
	T  testing.TB
	ID int
	// Name is the connector's name, as Connector returns it; "test" when empty.
	Name      string
	ReportErr error

	mu              sync.Mutex
	note            string
	Reported        []connect.Record
	Reasons         []error
	Assigned        []connect.TopicPartition
	Seeks           map[connect.TopicPartition]int64
	Paused          map[connect.TopicPartition]bool
	CommitsAskedFor int
}

// NewSinkContext returns a SinkContext for task id.
func NewSinkContext(t testing.TB, id int) *SinkContext {
	return &SinkContext{T: t, ID: id, Seeks: map[connect.TopicPartition]int64{}, Paused: map[connect.TopicPartition]bool{}}
}

func (f *SinkContext) Connector() string    { return connectorName(f.Name) }
func (f *SinkContext) TaskID() int          { return f.ID }
func (f *SinkContext) Logger() *slog.Logger { return testLogger(f.T).With("task", f.ID) }

// SetStatusNote records the note; Note returns the last one.
func (f *SinkContext) SetStatusNote(note string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note = note
}

// Note is the last note the task set with SetStatusNote.
func (f *SinkContext) Note() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.note
}

func (f *SinkContext) Report(_ context.Context, rec connect.Record, reason error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reported = append(f.Reported, rec)
	f.Reasons = append(f.Reasons, reason)
	return f.ReportErr
}

func (f *SinkContext) Assignment() []connect.TopicPartition {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]connect.TopicPartition(nil), f.Assigned...)
}

func (f *SinkContext) Seek(tp connect.TopicPartition, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Seeks[tp] = offset
}

func (f *SinkContext) Pause(tps ...connect.TopicPartition) { f.setPaused(tps, true) }

func (f *SinkContext) Resume(tps ...connect.TopicPartition) { f.setPaused(tps, false) }

func (f *SinkContext) setPaused(tps []connect.TopicPartition, paused bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range tps {
		f.Paused[tp] = paused
	}
}

func (f *SinkContext) RequestCommit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.CommitsAskedFor++
}

var (
	_ connect.ConnectorContext  = (*ConnectorContext)(nil)
	_ connect.SourceTaskContext = (*SourceContext)(nil)
	_ connect.SinkTaskContext   = (*SinkContext)(nil)
)
