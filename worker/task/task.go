// Package task runs one connector task: the source loop (poll, transform, convert, produce,
// store offsets once Kafka acknowledged), the sink loop (consume with franz-go, convert,
// transform, put, commit what PreCommit allows), the error policy with retries and the
// dead-letter queue, topic creation for sources, and the tasks' metrics. A loop sees the
// worker only through Host.
package task

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/convert"
	"github.com/sluicehq/sluice/worker/transform"
)

// Host is what a task loop needs of the worker that runs it: where source offsets are kept,
// where the topics a connector uses are recorded, and how often and how long offsets are
// flushed. The loops see nothing else of the worker.
type Host struct {
	Offsets       OffsetStore
	Topics        TopicRecorder
	FlushInterval time.Duration // offset.flush.interval.ms
	FlushTimeout  time.Duration // offset.flush.timeout.ms
}

// OffsetStore keeps source offsets (the worker's offsets topic).
type OffsetStore interface {
	// Get returns the stored offset of a source partition, nil when there is none.
	Get(connector string, partition map[string]any) (map[string]any, error)
	// Put stores offsets and returns once Kafka has them.
	Put(ctx context.Context, connector string, offsets []api.ConnectorOffset) error
	// ReadToEnd returns once everything written to the store before the call can be read.
	ReadToEnd(ctx context.Context) error
}

// TopicRecorder records the topics a connector uses (GET /connectors/{name}/topics).
type TopicRecorder interface {
	TopicUsed(id api.TaskID, topic string)
}

// Setup is what a task loop needs besides the task: its connector's settings resolved,
// converters, transformations and error policy.
type Setup struct {
	ID        api.TaskID
	Common    *CommonConfig
	Connector map[string]string // resolved connector settings
	Task      map[string]string // resolved task settings
	Secrets   []string
	KeyConv   convert.Converter
	ValueConv convert.Converter
	Chain     *transform.Chain
	Log       *slog.Logger
	Metrics   *TaskMetrics
	// Running writes the task's RUNNING status with a note (empty for none) unless the task is
	// in another state (paused, stopping). The loops call it once Start succeeded (only then is
	// a task RUNNING, as in Kafka Connect) and to say why a running task waits.
	Running func(note string)
}

// ConverterFor builds the key or value converter: the connector's setting, else the worker's,
// with its settings by prefix from the same place.
func ConverterFor(which string, connector, worker map[string]string) (convert.Converter, error) {
	class, src := connector[which], connector
	if class == "" {
		class, src = worker[which], worker
	}
	settings := map[string]string{}
	for k, v := range src {
		if rest, ok := strings.CutPrefix(k, which+"."); ok {
			settings[rest] = v
		}
	}
	c, err := convert.New(class, settings, which == "key.converter")
	if err != nil {
		return nil, &connect.FieldError{Key: which, Message: err.Error()}
	}
	return c, nil
}

// PauseGate lets the worker pause and resume a task loop.
type PauseGate struct {
	mu      sync.Mutex
	paused  bool
	changed chan struct{}
}

func NewPauseGate(paused bool) *PauseGate {
	return &PauseGate{paused: paused, changed: make(chan struct{})}
}

func (g *PauseGate) Set(paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused != paused {
		g.paused = paused
		close(g.changed)
		g.changed = make(chan struct{})
	}
}

// state returns whether the gate is closed and a channel closed when that changes.
func (g *PauseGate) state() (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused, g.changed
}

// Safely calls f, turning a panic into an error with its stack, so a panicking connector fails
// its task and not the worker.
func Safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{what: what, value: p, stack: debug.Stack()}
		}
	}()
	return f()
}

// panicError is a connector's panic caught by safely.
type panicError struct {
	what  string
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("%s panicked: %v\n%s", e.what, e.value, e.stack)
}

// TaskContext is the part of the SDK's task contexts every task has.
type TaskContext struct {
	ID    api.TaskID
	Log   *slog.Logger
	Setup *Setup
}

func (c *TaskContext) Connector() string    { return c.ID.Connector }
func (c *TaskContext) TaskID() int          { return c.ID.Task }
func (c *TaskContext) Logger() *slog.Logger { return c.Log }

// SetStatusNote writes the note into the RUNNING status, scrubbed of the task's secrets.
func (c *TaskContext) SetStatusNote(note string) {
	c.Setup.Running(redact.Scrub(note, c.Setup.Secrets))
}
