package worker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/convert"
	"github.com/sluicehq/sluice/worker/transform"
)

// taskSetup is what a task loop needs besides the task: its connector's settings resolved,
// converters, transformations and error policy.
type taskSetup struct {
	id        api.TaskID
	common    *CommonConfig
	connector map[string]string // resolved connector settings
	task      map[string]string // resolved task settings
	secrets   []string
	keyConv   convert.Converter
	valueConv convert.Converter
	chain     *transform.Chain
	log       *slog.Logger
	metrics   *taskMetrics
	// running writes the task's RUNNING status with a note (empty for none) unless the task is
	// in another state (paused, stopping). The loops call it once Start succeeded (only then is
	// a task RUNNING, as in Kafka Connect) and to say why a running task waits.
	running func(note string)
}

// converterFor builds the key or value converter: the connector's setting, else the worker's,
// with its settings by prefix from the same place.
func converterFor(which string, connector, worker map[string]string) (convert.Converter, error) {
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

// taskRun is one run of a task on this worker: the goroutine, how to stop it, and its state.
type taskRun struct {
	id      api.TaskID
	config  map[string]string // raw task settings, to notice changes
	cancel  context.CancelFunc
	done    chan struct{}
	paused  *pauseGate
	started time.Time

	connCfg  map[string]string // raw connector settings, to notice changes
	secrets  []string
	instance any  // the connect.SourceTask or SinkTask
	stopping bool // guarded by the worker's mutex

	mu    sync.Mutex
	state api.State
	err   error
}

func (r *taskRun) setState(s api.State, err error) {
	r.mu.Lock()
	r.state, r.err = s, err
	r.mu.Unlock()
}

func (r *taskRun) State() (api.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, r.err
}

// pauseGate lets the worker pause and resume a task loop.
type pauseGate struct {
	mu      sync.Mutex
	paused  bool
	changed chan struct{}
}

func newPauseGate(paused bool) *pauseGate {
	return &pauseGate{paused: paused, changed: make(chan struct{})}
}

func (g *pauseGate) set(paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused != paused {
		g.paused = paused
		close(g.changed)
		g.changed = make(chan struct{})
	}
}

// state returns whether the gate is closed and a channel closed when that changes.
func (g *pauseGate) state() (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused, g.changed
}

// safely calls f, turning a panic into an error with its stack, so a panicking connector fails
// its task and not the worker.
func safely(what string, f func() error) (err error) {
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

// taskContext is the part of the SDK's task contexts every task has.
type taskContext struct {
	id    api.TaskID
	log   *slog.Logger
	setup *taskSetup
}

func (c *taskContext) Connector() string    { return c.id.Connector }
func (c *taskContext) TaskID() int          { return c.id.Task }
func (c *taskContext) Logger() *slog.Logger { return c.log }

// SetStatusNote writes the note into the RUNNING status, scrubbed of the task's secrets.
func (c *taskContext) SetStatusNote(note string) {
	c.setup.running(scrub(note, c.setup.secrets))
}

func cloneConfig(m map[string]string) map[string]string { return maps.Clone(m) }

func splitComma(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func cutPrefix(s, prefix string) (string, bool) { return strings.CutPrefix(s, prefix) }
