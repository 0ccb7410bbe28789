package rest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// fakeWorker is an in-memory Worker with just enough behaviour to drive every endpoint: it
// keeps connectors and their states, and answers the way the real worker's contract says
// (ErrNotFound, ErrExists, ErrBadRequest). hook, when set, runs first in every method: an
// error it returns is returned by the method (for methods without an error result it is
// ignored), and it may block to simulate a slow cluster.
type fakeWorker struct {
	id string // worker id shown in statuses, so tests see which worker answered

	mu         sync.Mutex
	connectors map[string]*fakeConnector
	loggers    map[string]api.LoggerLevel
	health     api.Health
	hook       func(ctx context.Context, method string, args ...any) error
	calls      []fakeCall
}

type fakeConnector struct {
	config  map[string]string
	state   api.State
	offsets api.ConnectorOffsets
}

// fakeCall records one call and its arguments (after the name).
type fakeCall struct {
	method string
	args   []any
}

func newFakeWorker(id string) *fakeWorker {
	return &fakeWorker{
		id:         id,
		connectors: map[string]*fakeConnector{},
		loggers: map[string]api.LoggerLevel{
			"root":           {Level: "INFO"},
			"sluice.runtime": {Level: "INFO"},
		},
		health: api.Health{Status: "healthy", Message: "Worker has completed startup and is ready to handle requests."},
	}
}

// setHook replaces the hook.
func (f *fakeWorker) setHook(h func(ctx context.Context, method string, args ...any) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// enter records the call and runs the hook.
func (f *fakeWorker) enter(ctx context.Context, method string, args ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, args: args})
	h := f.hook
	f.mu.Unlock()
	if h != nil {
		return h(ctx, method, args...)
	}
	return nil
}

// lastCall returns the arguments of the last call of method, nil if none.
func (f *fakeWorker) lastCall(method string) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].method == method {
			return f.calls[i].args
		}
	}
	return nil
}

// called says whether method was called.
func (f *fakeWorker) called(method string) bool { return f.lastCall(method) != nil }

// add stores a connector directly.
func (f *fakeWorker) add(name string, config map[string]string, state api.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg := maps.Clone(config)
	cfg["name"] = name
	f.connectors[name] = &fakeConnector{config: cfg, state: state, offsets: api.ConnectorOffsets{
		Offsets: []api.ConnectorOffset{{
			Partition: map[string]any{"kafka_topic": "iot.raw", "kafka_partition": 0},
			Offset:    map[string]any{"kafka_offset": 42},
		}},
	}}
}

func (f *fakeWorker) lookup(name string) (*fakeConnector, error) {
	c, ok := f.connectors[name]
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "connector %q not found", name)
	}
	return c, nil
}

func connectorType(cfg map[string]string) string {
	if strings.Contains(cfg["connector.class"], "sink") {
		return "sink"
	}
	return "source"
}

func (f *fakeWorker) info(name string, c *fakeConnector) api.ConnectorInfo {
	var tasks []api.TaskID // nil on purpose when stopped: the API must show []
	if c.state != api.StateStopped {
		tasks = []api.TaskID{{Connector: name, Task: 0}}
	}
	return api.ConnectorInfo{Name: name, Config: maps.Clone(c.config), Tasks: tasks, Type: connectorType(c.config)}
}

func (f *fakeWorker) status(name string, c *fakeConnector, taskState api.State) api.ConnectorStatus {
	st := api.ConnectorStatus{
		Name:      name,
		Connector: api.ConnectorState{State: c.state, WorkerID: f.id},
		Type:      connectorType(c.config),
	}
	if c.state != api.StateStopped {
		st.Tasks = []api.TaskState{{ID: 0, State: taskState, WorkerID: f.id}}
	}
	return st
}

func (f *fakeWorker) ServerInfo(ctx context.Context) api.ServerInfo {
	_ = f.enter(ctx, "ServerInfo")
	return api.ServerInfo{Version: "0.1.0", Commit: "abc123", KafkaClusterID: "cluster-1",
		Worker: &api.WorkerInfo{WorkerID: f.id, Leader: true, Generation: 3, ConfigOffset: 7}}
}

func (f *fakeWorker) Cluster(ctx context.Context) api.ClusterInfo {
	_ = f.enter(ctx, "Cluster")
	return api.ClusterInfo{Generation: 3, Leader: f.id, Workers: []api.ClusterWorker{
		{WorkerID: f.id, Leader: true, Self: true, Version: "0.1.0"}}}
}

// WorkerMetrics knows only itself, unless the hook says otherwise.
func (f *fakeWorker) WorkerMetrics(ctx context.Context, name string) error {
	if err := f.enter(ctx, "WorkerMetrics", name); err != nil {
		return err
	}
	if name != f.id {
		return api.Errorf(api.ErrNotFound, "Worker %s is not a member of this cluster", name)
	}
	return nil
}

func (f *fakeWorker) Health(ctx context.Context) api.Health {
	_ = f.enter(ctx, "Health")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeWorker) Connectors(ctx context.Context) ([]string, error) {
	if err := f.enter(ctx, "Connectors"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.connectors)), nil
}

func (f *fakeWorker) ConnectorInfo(ctx context.Context, name string) (api.ConnectorInfo, error) {
	if err := f.enter(ctx, "ConnectorInfo", name); err != nil {
		return api.ConnectorInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return api.ConnectorInfo{}, err
	}
	return f.info(name, c), nil
}

func (f *fakeWorker) ConnectorConfig(ctx context.Context, name string) (map[string]string, error) {
	if err := f.enter(ctx, "ConnectorConfig", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return maps.Clone(c.config), nil
}

func (f *fakeWorker) CreateConnector(ctx context.Context, name string, config map[string]string, initialState string) (api.ConnectorInfo, error) {
	if err := f.enter(ctx, "CreateConnector", name, maps.Clone(config), initialState); err != nil {
		return api.ConnectorInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.connectors[name]; ok {
		return api.ConnectorInfo{}, api.Errorf(api.ErrExists, "connector %q already exists", name)
	}
	if config["connector.class"] == "" {
		return api.ConnectorInfo{}, api.Errorf(api.ErrBadRequest, "connector config has no connector.class")
	}
	state := api.StateRunning
	switch initialState {
	case "PAUSED":
		state = api.StatePaused
	case "STOPPED":
		state = api.StateStopped
	}
	c := &fakeConnector{config: maps.Clone(config), state: state}
	f.connectors[name] = c
	return f.info(name, c), nil
}

func (f *fakeWorker) PutConnectorConfig(ctx context.Context, name string, config map[string]string) (api.ConnectorInfo, bool, error) {
	if err := f.enter(ctx, "PutConnectorConfig", name, maps.Clone(config)); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.connectors[name]
	if !ok {
		c = &fakeConnector{state: api.StateRunning}
		f.connectors[name] = c
	}
	c.config = maps.Clone(config)
	return f.info(name, c), !ok, nil
}

func (f *fakeWorker) PatchConnectorConfig(ctx context.Context, name string, patch map[string]*string) (api.ConnectorInfo, error) {
	if err := f.enter(ctx, "PatchConnectorConfig", name, maps.Clone(patch)); err != nil {
		return api.ConnectorInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return api.ConnectorInfo{}, err
	}
	for k, v := range patch {
		if v == nil {
			delete(c.config, k)
		} else {
			c.config[k] = *v
		}
	}
	return f.info(name, c), nil
}

func (f *fakeWorker) DeleteConnector(ctx context.Context, name string) error {
	if err := f.enter(ctx, "DeleteConnector", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(name); err != nil {
		return err
	}
	delete(f.connectors, name)
	return nil
}

func (f *fakeWorker) ConnectorStatus(ctx context.Context, name string) (api.ConnectorStatus, error) {
	if err := f.enter(ctx, "ConnectorStatus", name); err != nil {
		return api.ConnectorStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return api.ConnectorStatus{}, err
	}
	return f.status(name, c, c.state), nil
}

func (f *fakeWorker) TaskConfigs(ctx context.Context, name string) ([]api.TaskInfo, error) {
	if err := f.enter(ctx, "TaskConfigs", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	var out []api.TaskInfo
	for _, id := range f.info(name, c).Tasks {
		out = append(out, api.TaskInfo{ID: id, Config: map[string]string{"task.class": c.config["connector.class"] + "Task"}})
	}
	return out, nil
}

func (f *fakeWorker) task(name string, task int) (*fakeConnector, error) {
	c, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if task != 0 || c.state == api.StateStopped {
		return nil, api.Errorf(api.ErrNotFound, "task %d of connector %q not found", task, name)
	}
	return c, nil
}

func (f *fakeWorker) TaskStatus(ctx context.Context, name string, task int) (api.TaskState, error) {
	if err := f.enter(ctx, "TaskStatus", name, task); err != nil {
		return api.TaskState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.task(name, task)
	if err != nil {
		return api.TaskState{}, err
	}
	return api.TaskState{ID: task, State: c.state, WorkerID: f.id, Restarts: 2}, nil
}

func (f *fakeWorker) RestartTask(ctx context.Context, name string, task int) error {
	if err := f.enter(ctx, "RestartTask", name, task); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.task(name, task)
	return err
}

func (f *fakeWorker) RestartConnector(ctx context.Context, name string, includeTasks, onlyFailed bool) (*api.ConnectorStatus, error) {
	if err := f.enter(ctx, "RestartConnector", name, includeTasks, onlyFailed); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !includeTasks && !onlyFailed {
		return nil, nil
	}
	st := f.status(name, c, api.StateRestarting)
	st.Connector.State = api.StateRestarting
	return &st, nil
}

func (f *fakeWorker) setState(ctx context.Context, method, name string, state api.State) error {
	if err := f.enter(ctx, method, name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return err
	}
	c.state = state
	return nil
}

func (f *fakeWorker) PauseConnector(ctx context.Context, name string) error {
	return f.setState(ctx, "PauseConnector", name, api.StatePaused)
}

func (f *fakeWorker) ResumeConnector(ctx context.Context, name string) error {
	return f.setState(ctx, "ResumeConnector", name, api.StateRunning)
}

func (f *fakeWorker) StopConnector(ctx context.Context, name string) error {
	return f.setState(ctx, "StopConnector", name, api.StateStopped)
}

func (f *fakeWorker) ConnectorOffsets(ctx context.Context, name string) (api.ConnectorOffsets, error) {
	if err := f.enter(ctx, "ConnectorOffsets", name); err != nil {
		return api.ConnectorOffsets{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(name)
	if err != nil {
		return api.ConnectorOffsets{}, err
	}
	return c.offsets, nil
}

func (f *fakeWorker) stopped(name string) (*fakeConnector, error) {
	c, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if c.state != api.StateStopped {
		return nil, api.Errorf(api.ErrBadRequest,
			"connector %q must be STOPPED to change its offsets; it is %s", name, c.state)
	}
	return c, nil
}

func (f *fakeWorker) AlterOffsets(ctx context.Context, name string, offsets api.ConnectorOffsets) (string, error) {
	if err := f.enter(ctx, "AlterOffsets", name, offsets); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.stopped(name)
	if err != nil {
		return "", err
	}
	c.offsets = offsets
	return "The offsets for this connector have been altered successfully", nil
}

func (f *fakeWorker) ResetOffsets(ctx context.Context, name string) (string, error) {
	if err := f.enter(ctx, "ResetOffsets", name); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.stopped(name)
	if err != nil {
		return "", err
	}
	c.offsets = api.ConnectorOffsets{}
	return "The offsets for this connector have been reset successfully", nil
}

func (f *fakeWorker) ConnectorTopics(ctx context.Context, name string) ([]string, error) {
	if err := f.enter(ctx, "ConnectorTopics", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	return []string{"iot.raw"}, nil
}

func (f *fakeWorker) ResetConnectorTopics(ctx context.Context, name string) error {
	if err := f.enter(ctx, "ResetConnectorTopics", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.lookup(name)
	return err
}

func (f *fakeWorker) PrometheusTargets(ctx context.Context, name string) ([]api.TargetGroup, error) {
	if err := f.enter(ctx, "PrometheusTargets", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(name); err != nil {
		return nil, err
	}
	return []api.TargetGroup{{Targets: []string{"w1:9400"},
		Labels: map[string]string{"__metrics_path__": "/metrics", "connector": name, "task": "0"}}}, nil
}

// fakePlugins are the fake's connector plugins.
var fakePlugins = []api.PluginInfo{
	{Class: "mongodb-sink", Type: "sink", Version: "0.1.0"},
	{Class: "mqtt-source", Type: "source", Version: "0.1.0"},
}

func (f *fakeWorker) Plugins(ctx context.Context, connectorsOnly bool) []api.PluginInfo {
	_ = f.enter(ctx, "Plugins", connectorsOnly)
	out := slices.Clone(fakePlugins)
	if !connectorsOnly {
		out = append(out, api.PluginInfo{Class: "org.apache.kafka.connect.json.JsonConverter", Type: "converter"})
	}
	return out
}

// pluginName resolves an alias: the name with the suffix "Connector" dropped.
func pluginName(p string) (string, bool) {
	p = strings.TrimSuffix(p, "Connector")
	for _, pl := range fakePlugins {
		if pl.Class == p {
			return p, true
		}
	}
	return "", false
}

var fakeKeys = []api.ConfigKeyInfo{
	{Name: "mqtt.server.uri", Type: "STRING", Required: true, Importance: "HIGH",
		Documentation: "The broker's URI.", Width: "LONG", DisplayName: "Server URI"},
	{Name: "mqtt.qos", Type: "INT", DefaultValue: ptr("1"), Importance: "MEDIUM", Group: ptr("MQTT"),
		Documentation: "QoS.", OrderInGroup: 1, Width: "SHORT", DisplayName: "QoS"},
}

func (f *fakeWorker) PluginConfig(ctx context.Context, plugin string) ([]api.ConfigKeyInfo, error) {
	if err := f.enter(ctx, "PluginConfig", plugin); err != nil {
		return nil, err
	}
	if _, ok := pluginName(plugin); !ok {
		return nil, api.Errorf(api.ErrNotFound, "plugin %q not found", plugin)
	}
	return slices.Clone(fakeKeys), nil
}

func (f *fakeWorker) ValidateConfig(ctx context.Context, plugin string, config map[string]string) (api.ConfigInfos, error) {
	if err := f.enter(ctx, "ValidateConfig", plugin, maps.Clone(config)); err != nil {
		return api.ConfigInfos{}, err
	}
	p, ok := pluginName(plugin)
	if !ok {
		return api.ConfigInfos{}, api.Errorf(api.ErrNotFound, "plugin %q not found", plugin)
	}
	if c, _ := pluginName(config["connector.class"]); c != p {
		return api.ConfigInfos{}, api.Errorf(api.ErrBadRequest,
			"included connector type %s does not match request type %s", config["connector.class"], plugin)
	}
	out := api.ConfigInfos{Name: p, Groups: []string{"MQTT"}}
	for _, k := range fakeKeys {
		ci := api.ConfigInfo{Definition: k, Value: api.ConfigValueInfo{Name: k.Name, Visible: true}}
		if v, ok := config[k.Name]; ok {
			ci.Value.Value = ptr(v)
		} else if k.Required {
			ci.Value.Errors = []string{"Missing required configuration \"" + k.Name + "\" which has no default value."}
			out.ErrorCount++
		}
		out.Configs = append(out.Configs, ci)
	}
	return out, nil
}

func (f *fakeWorker) Loggers(ctx context.Context) map[string]api.LoggerLevel {
	_ = f.enter(ctx, "Loggers")
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.loggers)
}

func (f *fakeWorker) Logger(ctx context.Context, name string) (api.LoggerLevel, error) {
	if err := f.enter(ctx, "Logger", name); err != nil {
		return api.LoggerLevel{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.loggers[name]
	if !ok {
		return api.LoggerLevel{}, api.Errorf(api.ErrNotFound, "Logger %s not found.", name)
	}
	return l, nil
}

func (f *fakeWorker) SetLoggerLevel(ctx context.Context, name, level string) ([]string, error) {
	if err := f.enter(ctx, "SetLoggerLevel", name, level); err != nil {
		return nil, err
	}
	lv := strings.ToUpper(level)
	if !slices.Contains([]string{"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"}, lv) {
		// As the runtime's Worker.SetLoggerLevel: an unknown level is a bad request; the API
		// answers it with 404, as Kafka Connect does.
		return nil, api.Errorf(api.ErrBadRequest, "invalid log level %q", level)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var changed []string
	now := int64(1700000000000)
	for _, n := range slices.Sorted(maps.Keys(f.loggers)) {
		if n == name || strings.HasPrefix(n, name+".") {
			f.loggers[n] = api.LoggerLevel{Level: lv, LastModified: &now}
			changed = append(changed, n)
		}
	}
	if changed == nil {
		f.loggers[name] = api.LoggerLevel{Level: lv, LastModified: &now}
		changed = []string{name}
	}
	return changed, nil
}

func ptr[T any](v T) *T { return &v }

func (f *fakeWorker) PutTaskConfigs(ctx context.Context, name string, _ []map[string]string, _ sessionkey.Signature) error {
	if err := f.enter(ctx, "PutTaskConfigs", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.lookup(name)
	return err
}
