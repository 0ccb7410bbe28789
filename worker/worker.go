package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/cluster"
	"github.com/sluicehq/sluice/worker/kafkaclient"
	"github.com/sluicehq/sluice/worker/store"
	"github.com/sluicehq/sluice/worker/task"
)

// Options are what a worker needs besides its settings.
type Options struct {
	// Registry holds the connector plugins; the default registry when nil.
	Registry *connect.Registry
	// Levels gives the worker's named loggers; a text logger on stderr when nil.
	Levels  *LogLevels
	Version string
	Commit  string
	// HTTPClient calls other workers (task configurations to the leader); http.DefaultClient
	// when nil. Workers with https:// listeners give one that trusts their certificates.
	HTTPClient *http.Client
}

// Worker runs connectors and tasks with Kafka Connect's semantics. One worker is a cluster of
// one: it runs every connector and task; the cluster layer decides the assignment when there
// are more.
type Worker struct {
	cfg      *WorkerConfig
	opts     Options
	id       string // host:port, as statuses name it
	url      string // advertised REST URL
	log      *slog.Logger
	levels   *LogLevels
	registry *connect.Registry
	metrics  *task.Metrics
	clients  *kafkaclient.Factory
	admin    *kafka.AdminClient
	configs  *store.Configs
	offsets  *store.Offsets
	statuses *store.Statuses

	clusterID  string
	startedAt  time.Time // when the worker was made, for its uptime
	generation atomic.Int32
	started    atomic.Bool
	startedCh  chan struct{} // closed once started
	progress   startProgress // which step of Start the worker is in
	assignor   *cluster.Assignor
	member     *cluster.Membership
	cluster    membership
	leave      func()
	joined     chan struct{} // closed at the first assignment
	joinOnce   sync.Once

	mu         sync.Mutex
	connectors map[string]*connectorRun
	tasks      map[api.TaskID]*taskRun
	restarts   map[api.TaskID]*restartInfo
	topics     map[string]map[string]bool // connector -> topics it used
	endpoints  taskEndpoints              // what the tasks running here serve

	kick     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
}

// connectorRun is a connector running (or failed) on this worker.
type connectorRun struct {
	name    string
	raw     map[string]string
	plugin  connect.Plugin
	conn    connect.Connector
	target  api.TargetState
	state   api.State
	trace   string
	secrets []string
	res     map[string]string
	reconf  bool
}

type restartInfo struct {
	count int
	due   time.Time
	boff  retry.Backoff
}

// NewWorker checks the settings and builds a worker; Start connects it to Kafka.
func NewWorker(cfg *WorkerConfig, opts Options) (*Worker, error) {
	if opts.Registry == nil {
		opts.Registry = connect.Default()
	}
	if opts.Levels == nil {
		opts.Levels = NewLogLevels(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	host, port, scheme, err := advertised(cfg)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, opts: opts, registry: opts.Registry, levels: opts.Levels, startedAt: time.Now(),
		id:  net.JoinHostPort(host, strconv.Itoa(port)),
		url: fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, strconv.Itoa(port))),
		log: opts.Levels.Logger("sluice.worker"), metrics: task.NewMetrics(),
		connectors: map[string]*connectorRun{}, tasks: map[api.TaskID]*taskRun{}, restarts: map[api.TaskID]*restartInfo{},
		topics: map[string]map[string]bool{},
		kick:   make(chan struct{}, 1), joined: make(chan struct{}), startedCh: make(chan struct{}), stop: make(chan struct{}), loopDone: make(chan struct{}),
	}
	w.clients = kafkaclient.NewFactory(cfg.BootstrapServers, cfg.Client, "sluice-"+w.id)
	return w, nil
}

// advertised works out the host, port and scheme other workers reach this one's REST API at.
func advertised(cfg *WorkerConfig) (string, int, string, error) {
	if len(cfg.Listeners) == 0 {
		return "", 0, "", errors.New("listeners: at least one REST listener is needed")
	}
	u, err := url.Parse(cfg.Listeners[0])
	if err != nil || u.Host == "" {
		return "", 0, "", fmt.Errorf("listeners: %q is not a URL like http://:8083", cfg.Listeners[0])
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", 0, "", fmt.Errorf("listeners: %q has no port", cfg.Listeners[0])
	}
	port, _ := strconv.Atoi(portStr)
	scheme := u.Scheme
	if cfg.AdvertisedHost != "" {
		host = cfg.AdvertisedHost
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	if cfg.AdvertisedPort != 0 {
		port = cfg.AdvertisedPort
	}
	if cfg.AdvertisedListener != "" {
		scheme = cfg.AdvertisedListener
	}
	return host, port, scheme, nil
}

// SetAdvertisedPort sets the REST port when the listener was bound to port 0 (tests).
func (w *Worker) SetAdvertisedPort(port int) {
	host, _, _ := net.SplitHostPort(w.id)
	w.id = net.JoinHostPort(host, strconv.Itoa(port))
	u, _ := url.Parse(w.url)
	w.url = fmt.Sprintf("%s://%s", u.Scheme, w.id)
}

// scheme is the worker's REST scheme, http or https.
func (w *Worker) scheme() string { return strings.SplitN(w.url, "://", 2)[0] }

// ID is the worker's id in statuses: its advertised host:port.
func (w *Worker) ID() string { return w.id }

// URL is the worker's advertised REST URL.
func (w *Worker) URL() string { return w.url }

// Metrics returns the worker's Prometheus registry.
func (w *Worker) Metrics() *prometheus.Registry { return w.metrics.Registry }

// Start connects to Kafka, makes sure the internal topics exist, reads them, and starts
// running connectors.
func (w *Worker) Start(ctx context.Context) error {
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go w.watchStart(watch, time.Now())
	var lastTry atomic.Pointer[string]
	w.progress.set("connecting to Kafka at "+w.cfg.BootstrapServers, func() string {
		if p := lastTry.Load(); p != nil {
			return *p
		}
		return ""
	})
	admin, err := w.clients.Admin()
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	w.clusterID, w.admin, err = kafkaclient.ClusterID(ctx, admin, func() (*kafka.AdminClient, error) { return w.clients.Admin() }, func(err error) { msg := err.Error(); lastTry.Store(&msg) })
	if err != nil {
		w.admin.Close()
		return fmt.Errorf("reach Kafka at %s: %w", w.cfg.BootstrapServers, err)
	}
	admin = w.admin
	for _, spec := range []kafkaclient.TopicSpec{
		{Name: w.cfg.ConfigTopic, Partitions: 1, Replication: w.cfg.ConfigReplication, Compact: true, ExactPartitions: true},
		{Name: w.cfg.OffsetTopic, Partitions: w.cfg.OffsetPartitions, Replication: w.cfg.OffsetReplication, Compact: true},
		{Name: w.cfg.StatusTopic, Partitions: w.cfg.StatusPartitions, Replication: w.cfg.StatusReplication, Compact: true},
	} {
		w.progress.set("creating or checking internal topic "+spec.Name, nil)
		if err := kafkaclient.EnsureTopic(ctx, admin, spec); err != nil {
			return err
		}
	}
	if w.offsets, err = store.NewOffsets(w.clients, w.cfg.OffsetTopic, w.log); err != nil {
		return err
	}
	if w.statuses, err = store.NewStatuses(w.clients, w.cfg.StatusTopic, w.log); err != nil {
		return err
	}
	if w.configs, err = store.NewConfigs(w.clients, w.cfg.ConfigTopic, w.log, w.onConfigEvent); err != nil {
		return err
	}
	for _, l := range []*store.Log{w.offsets.Log, w.statuses.Log, w.configs.Log} {
		w.progress.set("reading internal topic "+l.Topic+" to the end", l.Progress)
		if err := l.Start(ctx); err != nil {
			return err
		}
	}
	go w.loop()
	w.progress.set("joining worker group "+w.cfg.GroupID, nil)
	if w.leave, err = w.startMembership(); err != nil {
		return err
	}
	// Wait for the first assignment, so the API answers at once rather than with 409s; a
	// worker that cannot join soon still starts and keeps trying.
	select {
	case <-w.joined:
	case <-ctx.Done():
		w.log.Warn("no assignment from the worker group yet; starting anyway", "group_id", w.cfg.GroupID)
	case <-time.After(w.cfg.RebalanceTimeout):
		w.log.Warn("no assignment from the worker group yet; starting anyway", "group_id", w.cfg.GroupID)
	}
	w.started.Store(true)
	close(w.startedCh)
	w.log.Info("worker started", "worker_id", w.id, "kafka_cluster_id", w.clusterID, "group_id", w.cfg.GroupID)
	return nil
}

// Stop stops every task and connector within task.shutdown.graceful.timeout.ms and closes the
// worker's clients.
func (w *Worker) Stop() {
	if !w.started.Load() {
		return
	}
	close(w.stop)
	<-w.loopDone
	w.mu.Lock()
	ids := slices.Collect(maps.Keys(w.tasks))
	w.mu.Unlock()
	w.stopTasks(ids, false)
	w.mu.Lock()
	names := slices.Collect(maps.Keys(w.connectors))
	w.mu.Unlock()
	for _, n := range names {
		w.stopConnector(n)
	}
	// Leave the group only now: the work moves to other workers once it has stopped here.
	if w.leave != nil {
		w.leave()
	}
	for _, l := range []*store.Log{w.configs.Log, w.offsets.Log, w.statuses.Log} {
		l.Close()
	}
	w.admin.Close()
	w.log.Info("worker stopped", "worker_id", w.id)
}

func (w *Worker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Worker) onConfigEvent(ev store.ConfigEvent) {
	// A connector added or deleted, or a different number of tasks, changes what there is to
	// assign. Every worker reads the same record, so all rejoin at once rather than waiting
	// for a heartbeat to tell them, and the (cooperative) rebalance is over in a moment.
	if ev.Reshapes && w.member != nil && w.cluster.snapshot().known {
		w.member.RequestRejoin()
	}
	if ev.Kind == "restart" && ev.Restart != nil {
		go w.restartFromRequest(ev.Connector, *ev.Restart)
	}
	if ev.Kind == "connector" {
		w.mu.Lock()
		if c := w.connectors[ev.Connector]; c != nil {
			c.reconf = true
		}
		w.mu.Unlock()
	}
	w.wake()
}

// loop reconciles what runs on this worker with the config topic whenever something changes,
// and at least every second for scheduled restarts.
func (w *Worker) loop() {
	defer close(w.loopDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-tick.C:
		}
		w.reconcile()
	}
}

// reconcile starts, stops, pauses and reconfigures connectors and tasks so that this worker
// runs what the config topic says.
func (w *Worker) reconcile() {
	snap := w.configs.Snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w.rotateSessionKey(ctx)

	// Connectors and tasks that are gone or changed stop first.
	w.mu.Lock()
	var stopConns []string
	for name, c := range w.connectors {
		cfg, ok := snap.Connectors[name]
		stopped := snap.TargetState(name) == api.TargetStopped
		if !ok || !w.assignedConnector(name) || !maps.Equal(cfg, c.raw) || stopped != (c.state == api.StateStopped) {
			stopConns = append(stopConns, name)
		}
	}
	var stopTasks []api.TaskID
	for id, t := range w.tasks {
		cfg, ok := snap.TaskConfigs[id]
		if !ok || !w.assignedTask(id) || !maps.Equal(cfg, t.config) || !maps.Equal(snap.Connectors[id.Connector], t.connectorConfig()) {
			stopTasks = append(stopTasks, id)
		}
	}
	w.mu.Unlock()
	w.stopTasks(stopTasks, true)
	for _, name := range stopConns {
		_, exists := snap.Connectors[name]
		w.stopConnector(name)
		if !exists {
			w.forgetConnector(ctx, name, snap)
		}
	}

	for name, cfg := range snap.Connectors {
		if !w.assignedConnector(name) {
			continue
		}
		target := snap.TargetState(name)
		w.mu.Lock()
		c := w.connectors[name]
		w.mu.Unlock()
		if c == nil {
			c = w.startConnector(ctx, name, cfg, target)
		}
		w.mu.Lock()
		c.target = target
		reconf := c.reconf
		c.reconf = false
		w.mu.Unlock()
		if c.state == api.StateFailed {
			continue
		}
		if target == api.TargetStopped {
			if snap.TaskCounts[name] > 0 {
				if err := w.writeTaskConfigs(ctx, name, nil); err != nil {
					w.log.Warn("removing tasks of a stopped connector failed; will retry", "connector", name, "err", err)
				}
			}
			continue
		}
		w.setConnectorState(c, connectorStateFor(target), "")
		if reconf || snap.TaskCounts[name] == 0 && !hasTaskCommit(snap, name) {
			w.updateTaskConfigs(ctx, c, snap)
		}
	}

	// Tasks.
	now := time.Now()
	for id, cfg := range snap.TaskConfigs {
		if !w.assignedTask(id) {
			continue
		}
		target := snap.TargetState(id.Connector)
		w.mu.Lock()
		t := w.tasks[id]
		ri := w.restarts[id]
		w.mu.Unlock()
		if t != nil {
			t.paused.Set(target == api.TargetPaused)
			if st, _ := t.State(); st == api.StatePaused || st == api.StateRunning {
				if target == api.TargetPaused && st != api.StatePaused {
					t.setState(api.StatePaused, nil)
					w.writeTaskStatus(id, api.StatePaused, "", w.restartCount(id))
				} else if target == api.TargetStarted && st != api.StateRunning {
					t.setState(api.StateRunning, nil)
					w.writeTaskStatus(id, api.StateRunning, "", w.restartCount(id))
				}
			}
			continue
		}
		if ri != nil && !ri.due.IsZero() && now.Before(ri.due) {
			continue // waiting for its automatic restart
		}
		w.startTask(id, cfg, snap.Connectors[id.Connector], target)
	}
}

func hasTaskCommit(snap store.ConfigSnapshot, name string) bool {
	_, ok := snap.TaskCounts[name]
	return ok
}

func connectorStateFor(t api.TargetState) api.State {
	switch t {
	case api.TargetPaused:
		return api.StatePaused
	case api.TargetStopped:
		return api.StateStopped
	}
	return api.StateRunning
}

// startConnector starts a connector instance; a failure leaves it FAILED with its trace.
func (w *Worker) startConnector(ctx context.Context, name string, raw map[string]string, target api.TargetState) *connectorRun {
	c := &connectorRun{name: name, raw: raw, target: target, reconf: true}
	w.mu.Lock()
	w.connectors[name] = c
	w.mu.Unlock()
	if target == api.TargetStopped {
		w.setConnectorState(c, api.StateStopped, "")
		return c
	}
	fail := func(err error) *connectorRun {
		w.setConnectorState(c, api.StateFailed, redact.Scrub(err.Error(), c.secrets))
		w.log.Error("connector failed", "connector", name, "err", redact.Scrub(err.Error(), c.secrets))
		return c
	}
	p, ok := w.registry.Lookup(raw["connector.class"])
	if !ok {
		return fail(fmt.Errorf("connector.class %q is not a known connector plugin", raw["connector.class"]))
	}
	c.plugin = p
	res, err := w.cfg.Providers.resolve(raw)
	c.secrets = res.secrets
	if err != nil {
		return fail(err)
	}
	c.res = res.config
	c.conn = p.New()
	// The connector's log hides its literal secrets too; c.secrets holds only the resolved
	// ones, which its task configurations must not carry.
	hide := append(slices.Clone(c.secrets), literalSecrets(p.Spec(), res.config)...)
	cc := &connectorContext{w: w, name: name, log: scrubbedLogger(w.levels.Logger("sluice.connector."+name), hide)}
	if err := task.Safely("connector start", func() error { return c.conn.Start(ctx, connect.Config(res.config), cc) }); err != nil {
		_ = task.Safely("connector stop", c.conn.Stop)
		c.conn = nil
		return fail(fmt.Errorf("starting connector %s: %w", name, err))
	}
	w.log.Info("connector started", "connector", name, "class", p.Name)
	return c
}

// updateTaskConfigs asks the connector for its task configurations and writes them when they
// differ from the stored ones.
func (w *Worker) updateTaskConfigs(ctx context.Context, c *connectorRun, snap store.ConfigSnapshot) {
	if c.conn == nil {
		return
	}
	maxTasks, _ := strconv.Atoi(c.raw["tasks.max"])
	if maxTasks < 1 {
		maxTasks = 1
	}
	var cfgs []connect.Config
	if err := task.Safely("taskConfigs", func() (e error) { cfgs, e = c.conn.TaskConfigs(maxTasks); return }); err != nil {
		w.setConnectorState(c, api.StateFailed, redact.Scrub(fmt.Sprintf("generating task configurations: %v", err), c.secrets))
		return
	}
	if len(cfgs) > maxTasks {
		cfgs = cfgs[:maxTasks]
	}
	out := make([]map[string]string, len(cfgs))
	for i, tc := range cfgs {
		out[i] = maps.Clone(map[string]string(tc))
	}
	reverseResolve(c.raw, c.res, out)
	for i, tc := range out {
		for k, v := range tc {
			if redact.Scrub(v, c.secrets) != v {
				w.setConnectorState(c, api.StateFailed, fmt.Sprintf("task %d's setting %s holds a resolved secret; the connector must pass placeholders through unchanged", i, k))
				return
			}
		}
	}
	same := len(out) == snap.TaskCounts[c.name] && hasTaskCommit(snap, c.name)
	for i := 0; same && i < len(out); i++ {
		same = maps.Equal(out[i], snap.TaskConfigs[api.TaskID{Connector: c.name, Task: i}])
	}
	if same {
		return
	}
	if err := w.writeTaskConfigs(ctx, c.name, out); err != nil {
		w.log.Warn("writing task configurations failed; will retry", "connector", c.name, "err", err)
		w.mu.Lock()
		c.reconf = true
		w.mu.Unlock()
	}
}

func (w *Worker) stopConnector(name string) {
	w.mu.Lock()
	c := w.connectors[name]
	delete(w.connectors, name)
	w.mu.Unlock()
	if c == nil {
		return
	}
	if c.conn != nil {
		if err := task.Safely("connector stop", c.conn.Stop); err != nil {
			w.log.Warn("stopping connector failed", "connector", name, "err", redact.Scrub(err.Error(), c.secrets))
		}
	}
	// Deleted, rather than moved or restarted: its config is gone. A rebalance may revoke it
	// before reconcile sees the deletion, so this asks the config store, not the caller.
	if _, ok := w.configs.Snapshot().Connectors[name]; !ok {
		w.connectorDeleted(c)
	}
}

// connectorDeleted tells a connector that ran here and whose config was deleted, when it
// implements connect.Deleter, on a new instance (see connect.Deleter).
func (w *Worker) connectorDeleted(c *connectorRun) {
	p, ok := w.registry.Lookup(c.raw["connector.class"])
	if !ok {
		return
	}
	d, ok := p.New().(connect.Deleter)
	res, err := w.cfg.Providers.resolve(c.raw)
	if !ok || err != nil {
		return // a config that does not resolve never ran: nothing to clean up
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := w.levels.Logger("sluice.connector." + c.name)
	if err := task.Safely("connector deleted", func() error { return d.Deleted(ctx, connect.Config(res.config), log) }); err != nil {
		w.log.Warn("cleaning up after the deleted connector failed", "connector", c.name, "err", redact.Scrub(err.Error(), res.secrets))
	}
}

// forgetConnector removes a deleted connector's statuses.
func (w *Worker) forgetConnector(ctx context.Context, name string, snap store.ConfigSnapshot) {
	w.statuses.DeleteConnector(ctx, name, snap.TaskCounts[name])
	w.mu.Lock()
	for id := range w.restarts {
		if id.Connector == name {
			delete(w.restarts, id)
		}
	}
	w.mu.Unlock()
}

func (w *Worker) setConnectorState(c *connectorRun, st api.State, trace string) {
	w.mu.Lock()
	changed := c.state != st || c.trace != trace
	c.state, c.trace = st, trace
	w.mu.Unlock()
	if changed {
		var tr *string
		if trace != "" {
			tr = &trace
		}
		w.statuses.PutConnector(c.name, store.Status{State: st, Trace: tr, WorkerID: w.id, Generation: w.generation.Load()})
	}
}

func (w *Worker) writeTaskStatus(id api.TaskID, st api.State, trace string, restarts int) {
	var tr *string
	if trace != "" {
		tr = &trace
	}
	w.metrics.SetTaskState(id, st)
	w.statuses.PutTask(id, store.Status{State: st, Trace: tr, WorkerID: w.id, Generation: w.generation.Load(), Restarts: restarts,
		Endpoints: w.endpoints.of(id)})
}

func (w *Worker) restartCount(id api.TaskID) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ri := w.restarts[id]; ri != nil {
		return ri.count
	}
	return 0
}

// connectorContext is the ConnectorContext a connector gets.
type connectorContext struct {
	w    *Worker
	name string
	log  *slog.Logger
}

func (c *connectorContext) RequestTaskReconfiguration() {
	c.w.mu.Lock()
	if r := c.w.connectors[c.name]; r != nil {
		r.reconf = true
	}
	c.w.mu.Unlock()
	c.w.wake()
}

func (c *connectorContext) RaiseError(err error) {
	c.w.mu.Lock()
	r := c.w.connectors[c.name]
	c.w.mu.Unlock()
	if r != nil {
		c.w.setConnectorState(r, api.StateFailed, redact.Scrub(err.Error(), r.secrets))
	}
}

func (c *connectorContext) Logger() *slog.Logger { return c.log }

// taskLogger names a task's logger.
func taskLoggerName(id api.TaskID) string {
	return "sluice.connector." + id.Connector + ".task" + strconv.Itoa(id.Task)
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
