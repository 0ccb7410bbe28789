package worker

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/num"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/convert"
	"github.com/sluicehq/sluice/worker/store"
	"github.com/sluicehq/sluice/worker/task"
	"github.com/sluicehq/sluice/worker/transform"
)

// The methods below serve the REST API (package rest). Writes go through the config topic,
// so every worker sees them, and return once this worker has read them back.

// ServerInfo answers GET /.
func (w *Worker) ServerInfo(context.Context) api.ServerInfo {
	return api.ServerInfo{Version: w.opts.Version, Commit: w.opts.Commit, KafkaClusterID: w.clusterID, Worker: w.workerInfo()}
}

func (w *Worker) workerInfo() *api.WorkerInfo {
	m := w.cluster.snapshot()
	info := &api.WorkerInfo{WorkerID: w.id, Leader: m.leader(), LeaderURL: m.leaderURL, Generation: m.generation, Connectors: []string{}, Tasks: []api.TaskID{}}
	if !w.started.Load() {
		return info
	}
	info.ConfigOffset = w.configs.Snapshot().Offset
	w.mu.Lock()
	defer w.mu.Unlock()
	info.Connectors, info.Tasks = sortedKeys(w.connectors), sortedTaskIDs(w.tasks)
	return info
}

// AwaitStarted returns once the worker has started (its internal topics read, and joined or
// given up waiting to), or ErrUnavailable when ctx ends first. The REST API holds requests
// on it, as Kafka Connect holds requests until its herder is ready.
func (w *Worker) AwaitStarted(ctx context.Context) error {
	select {
	case <-w.startedCh:
		return nil
	case <-ctx.Done():
		return api.Errorf(api.ErrUnavailable, "Worker is still starting up; try again shortly")
	}
}

// Health answers GET /health.
func (w *Worker) Health(context.Context) api.Health {
	if !w.started.Load() {
		return api.Health{Status: "starting", Message: "Worker is still starting up: " + w.progress.describe() + "."}
	}
	if !isDone(w.joined) {
		// Not ready until it has joined the group and read the config topic up to the
		// leader's offset: until then it cannot say who runs what, and writes would wait.
		msg := "Worker is still starting up: it has not joined its group yet."
		if m := w.cluster.snapshot(); m.behind != "" {
			msg = "Worker is still starting up: its view of the connector configurations is behind the leader's (" + m.behind + ")."
		}
		return api.Health{Status: "starting", Message: msg}
	}
	msg := "Worker has completed startup and is ready to handle requests."
	if m := w.cluster.snapshot(); m.behind != "" {
		msg += " Its view of the connector configurations is behind the leader's (" + m.behind + "); it is catching up."
	} else if !m.known {
		msg += " It is waiting for its assignment from the group (a rebalance is underway)."
	} else if m.rebalancing {
		msg += " A rebalance is in progress."
	}
	return api.Health{Status: "healthy", Message: msg, Worker: w.workerInfo()}
}

func (w *Worker) snapshotOf(name string) (store.ConfigSnapshot, error) {
	snap := w.configs.Snapshot()
	if _, ok := snap.Connectors[name]; !ok {
		return snap, api.Errorf(api.ErrNotFound, "Connector %s not found", name)
	}
	return snap, nil
}

// Connectors lists the connectors.
func (w *Worker) Connectors(context.Context) ([]string, error) {
	names := sortedKeys(w.configs.Snapshot().Connectors)
	return names, nil
}

func (w *Worker) redacted(cfg map[string]string) map[string]string {
	if p, ok := w.registry.Lookup(cfg["connector.class"]); ok {
		return task.ConnectorSpec(p).Redact(cfg)
	}
	return maps.Clone(cfg)
}

func (w *Worker) typeOf(cfg map[string]string) string {
	if p, ok := w.registry.Lookup(cfg["connector.class"]); ok {
		return string(p.Type)
	}
	return "unknown"
}

// ConnectorInfo answers GET /connectors/{name}.
func (w *Worker) ConnectorInfo(_ context.Context, name string) (api.ConnectorInfo, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return api.ConnectorInfo{}, err
	}
	return w.info(snap, name), nil
}

func (w *Worker) info(snap store.ConfigSnapshot, name string) api.ConnectorInfo {
	cfg := snap.Connectors[name]
	tasks := snap.Tasks(name)
	return api.ConnectorInfo{Name: name, Config: w.redacted(cfg), Tasks: tasks, Type: w.typeOf(cfg)}
}

// ConnectorConfig answers GET /connectors/{name}/config.
func (w *Worker) ConnectorConfig(_ context.Context, name string) (map[string]string, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return nil, err
	}
	return w.redacted(snap.Connectors[name]), nil
}

// CreateConnector answers POST /connectors.
func (w *Worker) CreateConnector(ctx context.Context, name string, config map[string]string, initialState string) (api.ConnectorInfo, error) {
	if err := checkName(name); err != nil {
		return api.ConnectorInfo{}, err
	}
	if err := w.leaderOnly(ctx); err != nil {
		return api.ConnectorInfo{}, err
	}
	if _, ok := w.configs.Snapshot().Connectors[name]; ok {
		return api.ConnectorInfo{}, api.Errorf(api.ErrExists, "Connector %s already exists", name)
	}
	var target api.TargetState
	switch strings.ToUpper(initialState) {
	case "", "RUNNING":
	case "PAUSED":
		target = api.TargetPaused
	case "STOPPED":
		target = api.TargetStopped
	default:
		return api.ConnectorInfo{}, api.Errorf(api.ErrBadRequest, "initial_state %q is not one of RUNNING, PAUSED, STOPPED", initialState)
	}
	config = withName(config, name)
	if err := w.checkConfig(ctx, config); err != nil {
		return api.ConnectorInfo{}, err
	}
	if target != "" {
		if err := w.configs.PutTargetState(ctx, name, target); err != nil {
			return api.ConnectorInfo{}, err
		}
	}
	if err := w.configs.PutConnector(ctx, name, config); err != nil {
		return api.ConnectorInfo{}, err
	}
	return api.ConnectorInfo{Name: name, Config: w.redacted(config), Tasks: []api.TaskID{}, Type: w.typeOf(config)}, nil
}

func checkName(name string) error {
	if strings.TrimSpace(name) == "" {
		return api.Errorf(api.ErrBadRequest, "Connector name is empty")
	}
	if strings.ContainsAny(name, "/\\") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 }) {
		return api.Errorf(api.ErrBadRequest, "Connector name %q may not contain slashes or control characters", name)
	}
	return nil
}

func withName(config map[string]string, name string) map[string]string {
	c := maps.Clone(config)
	if c == nil {
		c = map[string]string{}
	}
	c["name"] = name
	return c
}

func (w *Worker) checkConfig(ctx context.Context, config map[string]string) error {
	p, byKey, err := w.validateConnector(ctx, config)
	if err != nil {
		return err
	}
	if len(byKey) > 0 {
		return invalidConfigError(p.Name, byKey)
	}
	return nil
}

// keepHiddenSecrets puts back stored secrets where a client sent the redaction marker, so a
// tool that reads a configuration, changes one setting and writes it back loses no secret. It
// refuses to when the update also changes where the connector connects (a setting declared as
// an endpoint): the stored secret would go to the new address without its sender knowing it.
func (w *Worker) keepHiddenSecrets(next, prev map[string]string) error {
	var kept []string
	for k, v := range next {
		if v == connect.Redacted {
			if old, ok := prev[k]; ok {
				next[k] = old
				kept = append(kept, k)
			}
		}
	}
	if len(kept) == 0 {
		return nil
	}
	p, ok := w.registry.Lookup(next["connector.class"])
	if !ok {
		return nil // validation says what is wrong
	}
	spec := task.ConnectorSpec(p)
	for _, k := range spec.Keys() {
		if k.Endpoint && next[k.Name] != prev[k.Name] {
			sort.Strings(kept)
			return api.Errorf(api.ErrBadRequest, "%s changes, and the stored %s would go to the new address: send %s again with the change (its value, or a placeholder)",
				k.Name, strings.Join(kept, ", "), strings.Join(kept, ", "))
		}
	}
	return nil
}

// PutConnectorConfig answers PUT /connectors/{name}/config.
func (w *Worker) PutConnectorConfig(ctx context.Context, name string, config map[string]string) (api.ConnectorInfo, bool, error) {
	if err := checkName(name); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	if err := w.leaderOnly(ctx); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	snap := w.configs.Snapshot()
	prev, exists := snap.Connectors[name]
	config = withName(config, name)
	if err := w.keepHiddenSecrets(config, prev); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	if err := w.checkConfig(ctx, config); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	if err := w.configs.PutConnector(ctx, name, config); err != nil {
		return api.ConnectorInfo{}, false, err
	}
	snap = w.configs.Snapshot()
	info := w.info(snap, name)
	if !exists {
		info.Tasks = []api.TaskID{}
	}
	return info, !exists, nil
}

// PatchConnectorConfig answers PATCH /connectors/{name}/config.
func (w *Worker) PatchConnectorConfig(ctx context.Context, name string, patch map[string]*string) (api.ConnectorInfo, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return api.ConnectorInfo{}, err
	}
	config := maps.Clone(snap.Connectors[name])
	// A stored secret the patch leaves alone is kept as a client that sends the redaction
	// marker keeps it: not across a change of the connector's endpoint.
	if p, ok := w.registry.Lookup(config["connector.class"]); ok {
		spec := task.ConnectorSpec(p)
		for k, v := range config {
			if key, ok := spec.Key(k); ok && key.Secret && v != "" && !connect.HasPlaceholder(v) {
				if _, patched := patch[k]; !patched {
					config[k] = connect.Redacted
				}
			}
		}
	}
	for k, v := range patch {
		if v == nil {
			delete(config, k)
		} else {
			config[k] = *v
		}
	}
	if n, ok := config["name"]; ok && n != name {
		return api.ConnectorInfo{}, api.Errorf(api.ErrBadRequest, "Connector name configuration (%s) doesn't match connector name in the URL (%s)", n, name)
	}
	info, _, err := w.PutConnectorConfig(ctx, name, config)
	return info, err
}

// DeleteConnector answers DELETE /connectors/{name}.
func (w *Worker) DeleteConnector(ctx context.Context, name string) error {
	if _, err := w.snapshotOf(name); err != nil {
		return err
	}
	if err := w.leaderOnly(ctx); err != nil {
		return err
	}
	return w.configs.DeleteConnector(ctx, name)
}

// ConnectorStatus answers GET /connectors/{name}/status.
func (w *Worker) ConnectorStatus(_ context.Context, name string) (api.ConnectorStatus, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return api.ConnectorStatus{}, err
	}
	return w.status(snap, name), nil
}

func (w *Worker) status(snap store.ConfigSnapshot, name string) api.ConnectorStatus {
	st := api.ConnectorStatus{Name: name, Type: w.typeOf(snap.Connectors[name]), Tasks: []api.TaskState{}}
	if v, ok := w.statuses.Connector(name); ok {
		st.Connector = api.ConnectorState{State: v.State, WorkerID: v.WorkerID, Trace: deref(v.Trace)}
	} else {
		st.Connector = api.ConnectorState{State: api.StateUnassigned}
	}
	for _, id := range snap.Tasks(name) {
		st.Tasks = append(st.Tasks, w.taskState(id))
	}
	return st
}

func (w *Worker) taskState(id api.TaskID) api.TaskState {
	if v, ok := w.statuses.Task(id); ok {
		return api.TaskState{ID: id.Task, State: v.State, WorkerID: v.WorkerID, Trace: deref(v.Trace), Restarts: v.Restarts}
	}
	return api.TaskState{ID: id.Task, State: api.StateUnassigned}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TaskConfigs answers GET /connectors/{name}/tasks.
func (w *Worker) TaskConfigs(_ context.Context, name string) ([]api.TaskInfo, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return nil, err
	}
	out := []api.TaskInfo{}
	redact := w.redacted
	for _, id := range snap.Tasks(name) {
		out = append(out, api.TaskInfo{ID: id, Config: redact(withClass(snap.TaskConfigs[id], snap.Connectors[name]))})
	}
	return out, nil
}

func withClass(task, conn map[string]string) map[string]string {
	c := maps.Clone(task)
	if c == nil {
		c = map[string]string{}
	}
	if _, ok := c["connector.class"]; !ok {
		c["connector.class"] = conn["connector.class"]
	}
	return c
}

func (w *Worker) taskOf(name string, task int) (store.ConfigSnapshot, api.TaskID, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return snap, api.TaskID{}, err
	}
	id := api.TaskID{Connector: name, Task: task}
	if _, ok := snap.TaskConfigs[id]; !ok {
		return snap, id, api.Errorf(api.ErrNotFound, "Task %s not found", id)
	}
	return snap, id, nil
}

// TaskStatus answers GET /connectors/{name}/tasks/{id}/status.
func (w *Worker) TaskStatus(_ context.Context, name string, task int) (api.TaskState, error) {
	_, id, err := w.taskOf(name, task)
	if err != nil {
		return api.TaskState{}, err
	}
	return w.taskState(id), nil
}

// RestartTask answers POST /connectors/{name}/tasks/{id}/restart: the worker running the task
// restarts it; another worker sends the request there.
func (w *Worker) RestartTask(_ context.Context, name string, task int) error {
	_, id, err := w.taskOf(name, task)
	if err != nil {
		return err
	}
	if w.assignedTask(id) {
		w.restartTask(id)
		return nil
	}
	if owner := w.taskState(id).WorkerID; owner != "" && owner != w.id && w.cluster.snapshot().known {
		return &api.NotLeaderError{URL: w.scheme() + "://" + owner, What: "task owner"}
	}
	return api.Errorf(api.ErrRebalance, "Cannot restart task %s: it is not assigned to any worker yet, likely because a rebalance is underway", id)
}

// RestartConnector answers POST /connectors/{name}/restart.
func (w *Worker) RestartConnector(ctx context.Context, name string, includeTasks, onlyFailed bool) (*api.ConnectorStatus, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return nil, err
	}
	// The request goes through the config topic, so the workers running the connector and its
	// tasks carry it out wherever they are.
	if err := w.leaderOnly(ctx); err != nil {
		return nil, err
	}
	req := store.RestartRequest{IncludeTasks: includeTasks, OnlyFailed: onlyFailed}
	if !includeTasks && !onlyFailed {
		return nil, w.configs.PutRestartRequest(ctx, name, req)
	}
	st := w.status(snap, name)
	if !onlyFailed || st.Connector.State == api.StateFailed {
		st.Connector.State = api.StateRestarting
	}
	if includeTasks {
		for i := range st.Tasks {
			if !onlyFailed || st.Tasks[i].State == api.StateFailed {
				st.Tasks[i].State = api.StateRestarting
			}
		}
	}
	if err := w.configs.PutRestartRequest(ctx, name, req); err != nil {
		return nil, err
	}
	return &st, nil
}

func (w *Worker) setTarget(ctx context.Context, name string, t api.TargetState) error {
	if _, err := w.snapshotOf(name); err != nil {
		return err
	}
	if err := w.leaderOnly(ctx); err != nil {
		return err
	}
	return w.configs.PutTargetState(ctx, name, t)
}

// PauseConnector answers PUT /connectors/{name}/pause.
func (w *Worker) PauseConnector(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, api.TargetPaused)
}

// ResumeConnector answers PUT /connectors/{name}/resume; it also starts a STOPPED connector.
func (w *Worker) ResumeConnector(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, api.TargetStarted)
}

// StopConnector answers PUT /connectors/{name}/stop.
func (w *Worker) StopConnector(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, api.TargetStopped)
}

func (w *Worker) isSink(cfg map[string]string) bool { return w.typeOf(cfg) == string(connect.SinkType) }

// ConnectorOffsets answers GET /connectors/{name}/offsets.
func (w *Worker) ConnectorOffsets(ctx context.Context, name string) (api.ConnectorOffsets, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return api.ConnectorOffsets{}, err
	}
	if !w.isSink(snap.Connectors[name]) {
		offs := w.offsets.All(name)
		sort.Slice(offs, func(i, j int) bool { return fmt.Sprint(offs[i].Partition) < fmt.Sprint(offs[j].Partition) })
		return api.ConnectorOffsets{Offsets: offs}, nil
	}
	res, err := w.admin.ListConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: "connect-" + name}})
	if err != nil {
		return api.ConnectorOffsets{}, fmt.Errorf("reading the offsets of consumer group connect-%s: %w", name, err)
	}
	out := api.ConnectorOffsets{Offsets: []api.ConnectorOffset{}}
	for _, g := range res.ConsumerGroupsTopicPartitions {
		for _, tp := range g.Partitions {
			if tp.Offset < 0 {
				continue
			}
			out.Offsets = append(out.Offsets, api.ConnectorOffset{
				Partition: map[string]any{"kafka_topic": *tp.Topic, "kafka_partition": tp.Partition},
				Offset:    map[string]any{"kafka_offset": int64(tp.Offset)},
			})
		}
	}
	return out, nil
}

// checkStopped admits an offsets change: on the leader, for a stopped connector.
func (w *Worker) checkStopped(ctx context.Context, name string) (store.ConfigSnapshot, error) {
	snap, err := w.snapshotOf(name)
	if err != nil {
		return snap, err
	}
	if err := w.leaderOnly(ctx); err != nil {
		return snap, err
	}
	if snap.TargetState(name) != api.TargetStopped || snap.TaskCounts[name] > 0 {
		return snap, api.Errorf(api.ErrBadRequest, "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/%s/stop' endpoint", name)
	}
	return snap, nil
}

// AlterOffsets answers PATCH /connectors/{name}/offsets.
func (w *Worker) AlterOffsets(ctx context.Context, name string, offsets api.ConnectorOffsets) (string, error) {
	snap, err := w.checkStopped(ctx, name)
	if err != nil {
		return "", err
	}
	if len(offsets.Offsets) == 0 {
		return "", api.Errorf(api.ErrBadRequest, "The offsets to be modified must not be empty")
	}
	if !w.isSink(snap.Connectors[name]) {
		for _, o := range offsets.Offsets {
			if o.Partition == nil {
				return "", api.Errorf(api.ErrBadRequest, "Every offset needs a partition")
			}
		}
		if err := w.offsets.Put(ctx, name, offsets.Offsets); err != nil {
			return "", err
		}
		if err := w.offsets.ReadToEnd(ctx); err != nil {
			return "", err
		}
		return "The offsets for this connector have been altered successfully", nil
	}
	var alter, reset []kafka.TopicPartition
	for _, o := range offsets.Offsets {
		topic, _ := o.Partition["kafka_topic"].(string)
		part, ok := asInt(o.Partition["kafka_partition"])
		if topic == "" || !ok {
			return "", api.Errorf(api.ErrBadRequest, "A sink connector's offset partition needs kafka_topic and kafka_partition: %v", o.Partition)
		}
		tp := kafka.TopicPartition{Topic: &topic, Partition: int32(part)}
		if o.Offset == nil {
			reset = append(reset, tp)
			continue
		}
		off, ok := asInt(o.Offset["kafka_offset"])
		if !ok || off < 0 {
			return "", api.Errorf(api.ErrBadRequest, "kafka_offset must be a non-negative number: %v", o.Offset)
		}
		tp.Offset = kafka.Offset(off)
		alter = append(alter, tp)
	}
	group := "connect-" + name
	if len(alter) > 0 {
		res, err := w.admin.AlterConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: alter}})
		if err != nil {
			return "", fmt.Errorf("altering the offsets of consumer group %s: %w", group, err)
		}
		for _, g := range res.ConsumerGroupsTopicPartitions {
			for _, tp := range g.Partitions {
				if tp.Error != nil {
					return "", fmt.Errorf("altering the offset of %s/%d: %w", *tp.Topic, tp.Partition, tp.Error)
				}
			}
		}
	}
	if len(reset) > 0 {
		// Committing the beginning of the partition makes the connector read it from the start.
		for i := range reset {
			low, _, err := w.watermarks(*reset[i].Topic, reset[i].Partition)
			if err != nil {
				return "", err
			}
			reset[i].Offset = kafka.Offset(low)
		}
		if _, err := w.admin.AlterConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: reset}}); err != nil {
			return "", fmt.Errorf("resetting offsets of consumer group %s: %w", group, err)
		}
	}
	return "The offsets for this connector have been altered successfully", nil
}

func (w *Worker) watermarks(topic string, partition int32) (int64, int64, error) {
	c, err := w.clients.Consumer(map[string]string{"group.id": "sluice-watermarks"})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	return c.QueryWatermarkOffsets(topic, partition, 10000)
}

// asInt reads a Kafka partition or offset of an offsets request: a JSON number, or a string
// of digits.
func asInt(v any) (int64, bool) {
	if s, ok := v.(string); ok {
		i, err := strconv.ParseInt(s, 10, 64)
		return i, err == nil
	}
	return num.Integral(v)
}

// ResetOffsets answers DELETE /connectors/{name}/offsets.
func (w *Worker) ResetOffsets(ctx context.Context, name string) (string, error) {
	snap, err := w.checkStopped(ctx, name)
	if err != nil {
		return "", err
	}
	if !w.isSink(snap.Connectors[name]) {
		var resets []api.ConnectorOffset
		for _, o := range w.offsets.All(name) {
			resets = append(resets, api.ConnectorOffset{Partition: o.Partition})
		}
		if len(resets) > 0 {
			if err := w.offsets.Put(ctx, name, resets); err != nil {
				return "", err
			}
			if err := w.offsets.ReadToEnd(ctx); err != nil {
				return "", err
			}
		}
		return "The offsets for this connector have been reset successfully", nil
	}
	// The stopped tasks' consumers may still be leaving the group: retry while it is not
	// empty, for as long as the request may take.
	for {
		res, err := w.admin.DeleteConsumerGroups(ctx, []string{"connect-" + name})
		if err != nil {
			return "", fmt.Errorf("deleting consumer group connect-%s: %w", name, err)
		}
		gerr := res.ConsumerGroupResults[0].Error
		switch gerr.Code() {
		case kafka.ErrNoError, kafka.ErrGroupIDNotFound:
			return "The offsets for this connector have been reset successfully", nil
		case kafka.ErrNonEmptyGroup:
			if retry.Sleep(ctx, 500*time.Millisecond) == nil {
				continue
			}
		}
		return "", fmt.Errorf("deleting consumer group connect-%s: %v", name, gerr)
	}
}

// ConnectorTopics answers GET /connectors/{name}/topics.
func (w *Worker) ConnectorTopics(_ context.Context, name string) ([]string, error) {
	if _, err := w.snapshotOf(name); err != nil {
		return nil, err
	}
	return w.statuses.Topics(name), nil
}

// ResetConnectorTopics answers PUT /connectors/{name}/topics/reset.
func (w *Worker) ResetConnectorTopics(ctx context.Context, name string) error {
	if _, err := w.snapshotOf(name); err != nil {
		return err
	}
	w.statuses.ResetTopics(ctx, name)
	return nil
}

// Plugins answers GET /connector-plugins.
func (w *Worker) Plugins(_ context.Context, connectorsOnly bool) []api.PluginInfo {
	out := []api.PluginInfo{}
	for _, p := range w.registry.Plugins() {
		v := p.Version
		if v == "" {
			v = w.opts.Version
		}
		out = append(out, api.PluginInfo{Class: p.Name, Type: string(p.Type), Version: v})
	}
	if connectorsOnly {
		return out
	}
	for _, n := range convert.Names() {
		out = append(out, api.PluginInfo{Class: n, Type: "converter", Version: w.opts.Version})
	}
	for _, n := range transform.TransformNames() {
		out = append(out, api.PluginInfo{Class: n, Type: "transformation", Version: w.opts.Version})
	}
	for _, n := range transform.PredicateNames() {
		out = append(out, api.PluginInfo{Class: n, Type: "predicate", Version: w.opts.Version})
	}
	return out
}

// PluginConfig answers GET /connector-plugins/{plugin}/config.
func (w *Worker) PluginConfig(_ context.Context, plugin string) ([]api.ConfigKeyInfo, error) {
	p, ok := w.registry.Lookup(plugin)
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "Unknown plugin %s", plugin)
	}
	out := []api.ConfigKeyInfo{}
	for _, k := range task.ConnectorSpec(p).Keys() {
		out = append(out, keyInfo(k))
	}
	return out, nil
}

// ValidateConfig answers PUT /connector-plugins/{plugin}/config/validate.
func (w *Worker) ValidateConfig(ctx context.Context, plugin string, config map[string]string) (api.ConfigInfos, error) {
	want, ok := w.registry.Lookup(plugin)
	if !ok {
		return api.ConfigInfos{}, api.Errorf(api.ErrNotFound, "Unknown plugin %s", plugin)
	}
	if got, ok := w.registry.Lookup(config["connector.class"]); config["connector.class"] != "" && (!ok || got.Name != want.Name) {
		return api.ConfigInfos{}, api.Errorf(api.ErrBadRequest, "Included connector type %s does not match request type %s", config["connector.class"], plugin)
	}
	p, byKey, err := w.validateConnector(ctx, config)
	if err != nil {
		return api.ConfigInfos{}, err
	}
	return configInfos(p, config, byKey), nil
}

// Loggers answers GET /admin/loggers.
func (w *Worker) Loggers(context.Context) map[string]api.LoggerLevel { return w.levels.Levels() }

// Logger answers GET /admin/loggers/{name}.
func (w *Worker) Logger(_ context.Context, name string) (api.LoggerLevel, error) {
	if l, ok := w.levels.Levels()[name]; ok {
		return l, nil
	}
	return api.LoggerLevel{}, api.Errorf(api.ErrNotFound, "Logger %s not found", name)
}

// SetLoggerLevel answers PUT /admin/loggers/{name}.
func (w *Worker) SetLoggerLevel(_ context.Context, name, level string) ([]string, error) {
	changed, err := w.levels.Set(name, level)
	if err != nil {
		return nil, api.Errorf(api.ErrBadRequest, "%v", err)
	}
	return changed, nil
}
