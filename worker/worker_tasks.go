package worker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/store"
	"github.com/sluicehq/sluice/worker/task"
	"github.com/sluicehq/sluice/worker/transform"
)

// connectorConfig is the connector configuration the task was started with.
func (r *taskRun) connectorConfig() map[string]string { return r.connCfg }

// startTask starts one task in its own goroutine. A task that cannot start goes FAILED.
func (w *Worker) startTask(id api.TaskID, taskCfg, connCfg map[string]string, target api.TargetState) {
	ctx, cancel := context.WithCancel(context.Background())
	run := &taskRun{id: id, config: taskCfg, connCfg: connCfg, cancel: cancel, done: make(chan struct{}),
		paused: task.NewPauseGate(target == api.TargetPaused), started: time.Now(), state: api.StateRunning}
	if target == api.TargetPaused {
		run.state = api.StatePaused
	}
	w.mu.Lock()
	if prev := w.tasks[id]; prev != nil && !isDone(prev.done) {
		// The previous run was abandoned and is still inside the task: never let two runs of
		// a task process its data at once.
		w.mu.Unlock()
		cancel()
		return
	}
	w.tasks[id] = run
	w.mu.Unlock()
	w.log.Info("starting task", "task", id.String())
	if target == api.TargetPaused {
		w.writeTaskStatus(id, api.StatePaused, "", w.restartCount(id))
	}
	go func() {
		defer close(run.done)
		err := w.runTask(ctx, run, taskCfg, connCfg)
		w.taskEnded(run, err)
	}()
}

// runTask builds everything a task needs and runs its loop until ctx is cancelled or it fails.
func (w *Worker) runTask(ctx context.Context, run *taskRun, taskCfg, connCfg map[string]string) error {
	id := run.id
	log := w.levels.Logger(taskLoggerName(id)).With("connector", id.Connector, "task", id.Task)
	p, ok := w.registry.Lookup(connCfg["connector.class"])
	if !ok {
		return fmt.Errorf("connector.class %q is not a known connector plugin", connCfg["connector.class"])
	}
	connRes, err := w.cfg.Providers.resolve(connCfg)
	if err != nil {
		return err
	}
	taskRes, err := w.cfg.Providers.resolve(taskCfg)
	if err != nil {
		return err
	}
	run.secrets = append(append(connRes.secrets, taskRes.secrets...), literalSecrets(p.Spec(), taskRes.config)...)
	log = scrubbedLogger(log, run.secrets)
	setup := &task.Setup{ID: id, Connector: connRes.config, Task: taskRes.config, Secrets: run.secrets, Log: log, Metrics: w.metrics.Task(id)}
	setup.Running = func(note string) {
		if st, _ := run.State(); st == api.StateRunning {
			w.writeTaskStatus(id, st, note, w.restartCount(id))
		}
	}
	workerConv := w.cfg.converterSettings()
	if setup.KeyConv, err = task.ConverterFor("key.converter", connRes.config, workerConv); err != nil {
		return err
	}
	if setup.ValueConv, err = task.ConverterFor("value.converter", connRes.config, workerConv); err != nil {
		return err
	}
	if len(splitList(connRes.config["transforms"])) > 0 {
		if setup.Chain, err = transform.NewChain(connRes.config); err != nil {
			return err
		}
	}
	if err := overrideError(w.cfg.OverridePolicy, connRes.config); err != nil {
		return err
	}
	if err := pathError(p.Spec(), taskRes.config, w.cfg.FileAllowedPaths); err != nil {
		return err
	}
	r := task.Run{Host: w.taskHost(), Setup: setup, Context: task.TaskContext{ID: id, Log: log, Setup: setup}, Gate: run.paused,
		Kafka: task.Kafka{Clients: w.clients, Admin: w.admin, Bootstrap: w.cfg.BootstrapServers, Settings: w.cfg.Client, TopicCreation: w.cfg.TopicCreationEnable}}
	switch p.Type {
	case connect.SourceType:
		instance := p.New().(connect.SourceConnector).NewTask()
		acker, _ := instance.(connect.SourceAcker)
		return r.Source(ctx, w.endpointSource(run, instance), acker)
	case connect.SinkType:
		instance := p.New().(connect.SinkConnector).NewTask()
		aware, _ := instance.(connect.PartitionAware)
		return r.Sink(ctx, w.endpointSink(run, instance), aware)
	}
	return fmt.Errorf("plugin %s has unknown type %q", p.Name, p.Type)
}

// taskHost is what the task loops see of the worker.
func (w *Worker) taskHost() task.Host {
	return task.Host{Offsets: w.offsets, Topics: w.statuses, FlushInterval: w.cfg.OffsetFlushInterval, FlushTimeout: w.cfg.OffsetFlushTimeout}
}

// taskEnded records how a task run ended: FAILED with its trace, or (stopped on purpose) not
// at all; a failed task is scheduled for an automatic restart when the connector asks for it.
func (w *Worker) taskEnded(run *taskRun, err error) {
	w.mu.Lock()
	stopping := run.stopping
	w.mu.Unlock()
	if err == nil || stopping {
		if err != nil {
			w.log.Warn("task ended with an error while stopping", "task", run.id.String(), "err", redact.Scrub(err.Error(), run.secrets))
		}
		return
	}
	trace := redact.Scrub(err.Error(), run.secrets)
	run.setState(api.StateFailed, err)
	w.log.Error("task failed", "task", run.id.String(), "err", trace)
	w.mu.Lock()
	ri := w.restarts[run.id]
	if ri == nil {
		ri = &restartInfo{}
		w.restarts[run.id] = ri
	}
	auto, maxAttempts, boffMax := autoRestartSettings(run.connCfg)
	if ri.count > 0 && time.Since(run.started) > boffMax {
		ri.count, ri.boff = 0, retry.Backoff{} // it ran healthy for a while: start counting afresh
	}
	restart := auto && (maxAttempts == 0 || ri.count < maxAttempts)
	if restart {
		ri.boff.Initial, ri.boff.Max = time.Second, boffMax
		ri.due = time.Now().Add(ri.boff.Wait())
		ri.count++
		delete(w.tasks, run.id) // reconcile starts it again once due
		w.metrics.TaskRestarts.WithLabelValues(run.id.Connector, strconv.Itoa(run.id.Task)).Inc()
	}
	count := ri.count
	w.mu.Unlock()
	if restart {
		trace = fmt.Sprintf("%s\n(automatic restart %d scheduled)", trace, count)
	}
	w.writeTaskStatus(run.id, api.StateFailed, trace, count)
	w.wake()
}

func autoRestartSettings(cfg map[string]string) (bool, int, time.Duration) {
	var c task.CommonConfig
	spec := connect.SpecOf(task.CommonConfig{})
	if err := spec.Decode(pick(cfg, spec), &c); err != nil {
		return false, 0, time.Minute
	}
	return c.AutoRestart, c.AutoRestartMaxAttempts, c.AutoRestartBackoffMax
}

// pick keeps the settings a spec declares.
func pick(cfg map[string]string, spec *connect.Spec) map[string]string {
	out := map[string]string{}
	for k, v := range cfg {
		if _, ok := spec.Key(k); ok {
			out[k] = v
		}
	}
	if out["connector.class"] == "" {
		out["connector.class"] = "unknown"
	}
	return out
}

// stopTasks stops tasks, waiting at most task.shutdown.graceful.timeout.ms for all of them
// together. A task that does not stop in time is abandoned and reported; its run stays
// registered until it really ends, so no second run of it starts meanwhile.
func (w *Worker) stopTasks(ids []api.TaskID, forget bool) {
	if len(ids) == 0 {
		return
	}
	var runs []*taskRun
	w.mu.Lock()
	for _, id := range ids {
		if r := w.tasks[id]; r != nil {
			r.stopping = true
			runs = append(runs, r)
		}
	}
	w.mu.Unlock()
	for _, r := range runs {
		r.cancel()
	}
	deadline := time.After(w.cfg.ShutdownTimeout)
	for _, r := range runs {
		select {
		case <-r.done:
			w.mu.Lock()
			if w.tasks[r.id] == r {
				delete(w.tasks, r.id)
			}
			w.mu.Unlock()
		case <-deadline:
			w.log.Error("task did not stop within task.shutdown.graceful.timeout.ms; abandoning it", "task", r.id.String(), "timeout", w.cfg.ShutdownTimeout)
			// Report it only while the task's status is still this worker's: once another
			// worker runs the task, its status is the true one, and this worker's generation,
			// newer by now, would overwrite it.
			if cur, ok := w.statuses.Task(r.id); !ok || cur.WorkerID == w.id {
				w.writeTaskStatus(r.id, api.StateUnassigned, "abandoned: the task did not stop within task.shutdown.graceful.timeout.ms", 0)
			}
			go func(r *taskRun) {
				<-r.done
				w.mu.Lock()
				if w.tasks[r.id] == r {
					delete(w.tasks, r.id)
				}
				w.mu.Unlock()
				w.wake()
			}(r)
		}
	}
	if forget {
		for _, r := range runs {
			w.metrics.ForgetTask(r.id)
		}
	}
}

// restartTask stops a task (if it runs here) and lets reconcile start it again.
func (w *Worker) restartTask(id api.TaskID) {
	w.stopTasks([]api.TaskID{id}, false)
	w.mu.Lock()
	delete(w.restarts, id)
	w.mu.Unlock()
	w.wake()
}

// restartFromRequest carries out a restart request read from the config topic for what runs
// on this worker.
func (w *Worker) restartFromRequest(name string, req store.RestartRequest) {
	w.mu.Lock()
	c := w.connectors[name]
	restartConn := c != nil && (!req.OnlyFailed || c.state == api.StateFailed)
	var ids []api.TaskID
	if req.IncludeTasks {
		for id, t := range w.tasks {
			if id.Connector != name {
				continue
			}
			if st, _ := t.State(); !req.OnlyFailed || st == api.StateFailed {
				ids = append(ids, id)
			}
		}
	}
	w.mu.Unlock()
	if restartConn {
		w.stopConnector(name)
	}
	for _, id := range ids {
		w.writeTaskStatus(id, api.StateRestarting, "", 0)
	}
	w.stopTasks(ids, false)
	w.mu.Lock()
	for _, id := range ids {
		delete(w.restarts, id)
	}
	w.mu.Unlock()
	w.wake()
}

func splitList(s string) []string {
	var out []string
	for _, p := range splitComma(s) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitComma(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// taskRun is one run of a task on this worker: the goroutine, how to stop it, and its state.
type taskRun struct {
	id      api.TaskID
	config  map[string]string // raw task settings, to notice changes
	cancel  context.CancelFunc
	done    chan struct{}
	paused  *task.PauseGate
	started time.Time

	connCfg  map[string]string // raw connector settings, to notice changes
	secrets  []string
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
