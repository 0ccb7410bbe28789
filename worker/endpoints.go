package worker

import (
	"context"
	"maps"
	"net"
	"strconv"
	"sync"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/api"
)

// Tasks that implement connect.Endpointer have their endpoints published with their status
// record, so that any worker can tell where a connector's tasks serve (a Prometheus HTTP
// service-discovery document, for one). The endpoints of a run are published once its Start
// has returned and withdrawn when it stops.

// taskEndpoints holds the endpoints of the task runs of this worker. The zero value is ready.
type taskEndpoints struct {
	mu   sync.Mutex
	runs map[api.TaskID]runEndpoints
}

type runEndpoints struct {
	run *taskRun
	eps []connect.Endpoint
}

func (t *taskEndpoints) set(run *taskRun, eps []connect.Endpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs == nil {
		t.runs = map[api.TaskID]runEndpoints{}
	}
	t.runs[run.id] = runEndpoints{run, eps}
}

// clear forgets the endpoints of run, and not those of a later run of the same task.
func (t *taskEndpoints) clear(run *taskRun) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs[run.id].run == run {
		delete(t.runs, run.id)
	}
}

// of returns the endpoints of the task's current run on this worker, or nil.
func (t *taskEndpoints) of(id api.TaskID) []connect.Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[id].eps
}

// publishEndpoints records a run's endpoints, with wildcard hosts replaced by the worker's
// advertised host, and writes its status again to carry them.
func (w *Worker) publishEndpoints(run *taskRun, eps []connect.Endpoint) {
	host, _, _ := net.SplitHostPort(w.id)
	out := make([]connect.Endpoint, 0, len(eps))
	for _, ep := range eps {
		if h, port, err := net.SplitHostPort(ep.Address); err == nil && isWildcardHost(h) {
			ep.Address = net.JoinHostPort(host, port)
		}
		ep.Labels = maps.Clone(ep.Labels)
		out = append(out, ep)
	}
	w.endpoints.set(run, out)
	if st, _ := run.State(); st == api.StateRunning || st == api.StatePaused {
		w.writeTaskStatus(run.id, st, "", w.restartCount(run.id))
	}
}

func isWildcardHost(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

// endpointSink publishes a sink task's endpoints after Start and withdraws them at Stop.
// Sink tasks without endpoints are returned as they are.
func (w *Worker) endpointSink(run *taskRun, t connect.SinkTask) connect.SinkTask {
	if _, ok := t.(connect.Endpointer); !ok {
		return t
	}
	return &announcingSink{SinkTask: t, w: w, run: run}
}

type announcingSink struct {
	connect.SinkTask
	w   *Worker
	run *taskRun
}

func (a *announcingSink) Start(ctx context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	if err := a.SinkTask.Start(ctx, cfg, tc); err != nil {
		return err
	}
	a.w.publishEndpoints(a.run, a.SinkTask.(connect.Endpointer).Endpoints())
	return nil
}

func (a *announcingSink) Stop() error {
	a.w.endpoints.clear(a.run)
	return a.SinkTask.Stop()
}

// endpointSource is endpointSink for source tasks.
func (w *Worker) endpointSource(run *taskRun, t connect.SourceTask) connect.SourceTask {
	if _, ok := t.(connect.Endpointer); !ok {
		return t
	}
	a := &announcingSource{SourceTask: t, w: w, run: run}
	if _, ok := t.(connect.SourceCommitter); ok {
		return &announcingCommitter{a}
	}
	return a
}

type announcingSource struct {
	connect.SourceTask
	w   *Worker
	run *taskRun
}

func (a *announcingSource) Start(ctx context.Context, cfg connect.Config, tc connect.SourceTaskContext) error {
	if err := a.SourceTask.Start(ctx, cfg, tc); err != nil {
		return err
	}
	a.w.publishEndpoints(a.run, a.SourceTask.(connect.Endpointer).Endpoints())
	return nil
}

func (a *announcingSource) Stop() error {
	a.w.endpoints.clear(a.run)
	return a.SourceTask.Stop()
}

// announcingCommitter keeps the SourceCommitter of the task it wraps.
type announcingCommitter struct{ *announcingSource }

func (a *announcingCommitter) Commit(ctx context.Context) error {
	return a.SourceTask.(connect.SourceCommitter).Commit(ctx)
}

// PrometheusTargets answers GET /connectors/{name}/prometheus-targets: the Prometheus HTTP
// service-discovery document of the connector's RUNNING tasks, from their status records, so
// every worker answers the same wherever the tasks run.
func (w *Worker) PrometheusTargets(_ context.Context, name string) ([]api.TargetGroup, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return nil, err
	}
	out := []api.TargetGroup{}
	for _, id := range snap.Tasks(name) {
		v, ok := w.statuses.Task(id)
		if !ok || v.State != api.StateRunning {
			continue
		}
		for _, ep := range v.Endpoints {
			if ep.Kind != connect.EndpointKindPrometheus {
				continue
			}
			labels := maps.Clone(ep.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels["connector"] = name
			labels["task"] = strconv.Itoa(id.Task)
			if ep.Path != "" {
				labels["__metrics_path__"] = ep.Path
			}
			out = append(out, api.TargetGroup{Targets: []string{ep.Address}, Labels: labels})
		}
	}
	return out, nil
}
