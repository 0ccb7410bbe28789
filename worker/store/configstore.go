package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/kafkaclient"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// Configs keeps connector configurations, task configurations and target states in the
// config topic, with Kafka Connect's keys and values:
//
//	connector-<name>     {"properties":{...}}            a tombstone deletes the connector
//	target-state-<name>  {"state":..., "state.v2":...}
//	task-<name>-<n>      {"properties":{...}}            buffered until the commit record
//	commit-<name>        {"tasks":N}                     applies the buffered task configs
//	restart-connector-<name> {"include-tasks":b, "only-failed":b}
//	session-key          {"key":..., "algorithm":..., "creation-timestamp":...} (see sessionkey.go)
type Configs struct {
	Log     *Log
	logger  *slog.Logger
	onEvent func(ConfigEvent)

	mu       sync.Mutex
	state    ConfigSnapshot
	deferred map[string]map[int]map[string]string // task configs waiting for their commit
	// The session key internal requests are signed with, and the one before it.
	key, prevKey sessionkey.Key
}

// ConfigSnapshot is the state of the config topic at one offset.
type ConfigSnapshot struct {
	Offset       int64 // offset of the last applied record; -1 for none
	Connectors   map[string]map[string]string
	TargetStates map[string]api.TargetState
	TaskConfigs  map[api.TaskID]map[string]string
	TaskCounts   map[string]int
}

// Tasks returns the task ids of a connector, in order.
func (s ConfigSnapshot) Tasks(name string) []api.TaskID {
	n := s.TaskCounts[name]
	out := make([]api.TaskID, n)
	for i := range out {
		out[i] = api.TaskID{Connector: name, Task: i}
	}
	return out
}

// TargetState returns the connector's target state (STARTED when none was written).
func (s ConfigSnapshot) TargetState(name string) api.TargetState {
	if t, ok := s.TargetStates[name]; ok {
		return t
	}
	return api.TargetStarted
}

// ConfigEvent tells the worker what changed in the config topic.
type ConfigEvent struct {
	Kind      string // connector, target, tasks, deleted, restart
	Connector string
	Restart   *RestartRequest
	// Reshapes says the set of connectors or tasks to assign changed (a connector added or
	// deleted, a different number of tasks): every worker sees it and rejoins the group.
	Reshapes bool
}

type RestartRequest struct {
	IncludeTasks bool `json:"include-tasks"`
	OnlyFailed   bool `json:"only-failed"`
}

func NewConfigs(clients *kafkaclient.Factory, topic string, logger *slog.Logger, onEvent func(ConfigEvent)) (*Configs, error) {
	s := &Configs{logger: logger, onEvent: onEvent, deferred: map[string]map[int]map[string]string{}}
	s.state = ConfigSnapshot{Offset: -1, Connectors: map[string]map[string]string{}, TargetStates: map[string]api.TargetState{},
		TaskConfigs: map[api.TaskID]map[string]string{}, TaskCounts: map[string]int{}}
	// A config write is acknowledged to the REST caller once it has been read back, so this
	// log's reader asks the broker every 10 ms, not librdkafka's 500: with 500, a quarter of
	// the PUTs of a connector's config waited the whole half second (librdkafka's fetch did not
	// return when the write landed). The offset and status logs keep the default: each
	// reader's 10 ms fetches cost an idle worker and its broker CPU (100 requests a second).
	l, err := NewLog(topic, clients, logger, s.apply, map[string]string{"fetch.wait.max.ms": "10"})
	if err != nil {
		return nil, err
	}
	s.Log = l
	return s, nil
}

// Snapshot returns a copy of the current state.
func (s *Configs) Snapshot() ConfigSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ConfigSnapshot{Offset: s.state.Offset, Connectors: map[string]map[string]string{}, TargetStates: maps.Clone(s.state.TargetStates),
		TaskConfigs: map[api.TaskID]map[string]string{}, TaskCounts: maps.Clone(s.state.TaskCounts)}
	for k, v := range s.state.Connectors {
		out.Connectors[k] = maps.Clone(v)
	}
	for k, v := range s.state.TaskConfigs {
		out.TaskConfigs[k] = maps.Clone(v)
	}
	return out
}

type propertiesValue struct {
	Properties map[string]string `json:"properties"`
}

type targetStateValue struct {
	State   string `json:"state"`
	StateV2 string `json:"state.v2,omitempty"`
}

type commitValue struct {
	Tasks int `json:"tasks"`
}

func (s *Configs) apply(m *kafka.Message) {
	key := string(m.Key)
	var ev *ConfigEvent
	s.mu.Lock()
	s.state.Offset = int64(m.TopicPartition.Offset)
	switch {
	case strings.HasPrefix(key, "connector-"):
		name := strings.TrimPrefix(key, "connector-")
		if m.Value == nil {
			delete(s.state.Connectors, name)
			delete(s.state.TargetStates, name)
			for id := range s.state.TaskConfigs {
				if id.Connector == name {
					delete(s.state.TaskConfigs, id)
				}
			}
			delete(s.state.TaskCounts, name)
			delete(s.deferred, name)
			ev = &ConfigEvent{Kind: "deleted", Connector: name, Reshapes: true}
			break
		}
		var v propertiesValue
		if err := json.Unmarshal(m.Value, &v); err != nil {
			s.logger.Error("ignoring malformed connector config record", "key", key, "err", err)
			break
		}
		_, existed := s.state.Connectors[name]
		s.state.Connectors[name] = v.Properties
		ev = &ConfigEvent{Kind: "connector", Connector: name, Reshapes: !existed}
	case strings.HasPrefix(key, "target-state-"):
		name := strings.TrimPrefix(key, "target-state-")
		if m.Value == nil {
			delete(s.state.TargetStates, name)
			break
		}
		var v targetStateValue
		if err := json.Unmarshal(m.Value, &v); err != nil {
			s.logger.Error("ignoring malformed target state record", "key", key, "err", err)
			break
		}
		st := v.StateV2
		if st == "" {
			st = v.State
		}
		s.state.TargetStates[name] = api.TargetState(st)
		ev = &ConfigEvent{Kind: "target", Connector: name}
	case strings.HasPrefix(key, "task-"):
		name, n, ok := splitTaskKey(strings.TrimPrefix(key, "task-"))
		if !ok || m.Value == nil {
			break
		}
		var v propertiesValue
		if err := json.Unmarshal(m.Value, &v); err != nil {
			s.logger.Error("ignoring malformed task config record", "key", key, "err", err)
			break
		}
		if s.deferred[name] == nil {
			s.deferred[name] = map[int]map[string]string{}
		}
		s.deferred[name][n] = v.Properties
	case strings.HasPrefix(key, "commit-"):
		name := strings.TrimPrefix(key, "commit-")
		var v commitValue
		if err := json.Unmarshal(m.Value, &v); err != nil {
			s.logger.Error("ignoring malformed commit record", "key", key, "err", err)
			break
		}
		pending := s.deferred[name]
		if len(pending) < v.Tasks {
			s.logger.Warn("commit record without all its task configs; keeping the previous ones", "connector", name, "tasks", v.Tasks, "have", len(pending))
			break
		}
		prevCount, hadTasks := s.state.TaskCounts[name]
		for id := range s.state.TaskConfigs {
			if id.Connector == name {
				delete(s.state.TaskConfigs, id)
			}
		}
		for i := 0; i < v.Tasks; i++ {
			s.state.TaskConfigs[api.TaskID{Connector: name, Task: i}] = pending[i]
		}
		s.state.TaskCounts[name] = v.Tasks
		delete(s.deferred, name)
		ev = &ConfigEvent{Kind: "tasks", Connector: name, Reshapes: !hadTasks || prevCount != v.Tasks}
	case key == sessionkey.Record:
		if k, ok := sessionkey.Parse(m.Value); ok {
			s.prevKey, s.key = s.key, k
		}
	case strings.HasPrefix(key, "restart-connector-"):
		var v RestartRequest
		if json.Unmarshal(m.Value, &v) == nil {
			ev = &ConfigEvent{Kind: "restart", Connector: strings.TrimPrefix(key, "restart-connector-"), Restart: &v}
		}
	}
	s.mu.Unlock()
	if ev != nil && s.onEvent != nil {
		s.onEvent(*ev)
	}
}

// splitTaskKey splits "<name>-<n>" at the last dash.
func splitTaskKey(s string) (string, int, bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(s[i+1:])
	return s[:i], n, err == nil
}

func (s *Configs) PutConnector(ctx context.Context, name string, props map[string]string) error {
	v, _ := json.Marshal(propertiesValue{props})
	if err := s.Log.send(ctx, []byte("connector-"+name), v); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

func (s *Configs) PutTargetState(ctx context.Context, name string, st api.TargetState) error {
	legacy := st
	if st == api.TargetStopped {
		legacy = api.TargetPaused // what workers that know no STOPPED state read
	}
	v, _ := json.Marshal(targetStateValue{State: string(legacy), StateV2: string(st)})
	if err := s.Log.send(ctx, []byte("target-state-"+name), v); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

func (s *Configs) DeleteConnector(ctx context.Context, name string) error {
	if err := s.Log.send(ctx, []byte("connector-"+name), nil); err != nil {
		return err
	}
	if err := s.Log.send(ctx, []byte("target-state-"+name), nil); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

// PutTaskConfigs writes a connector's task configurations as Kafka Connect's leader does: read
// to the end, write every task record, read to the end, write the commit record, read to the
// end.
func (s *Configs) PutTaskConfigs(ctx context.Context, name string, configs []map[string]string) error {
	if err := s.Log.ReadToEnd(ctx); err != nil {
		return err
	}
	for i, c := range configs {
		v, _ := json.Marshal(propertiesValue{c})
		if err := s.Log.send(ctx, []byte(fmt.Sprintf("task-%s-%d", name, i)), v); err != nil {
			return err
		}
	}
	if err := s.Log.ReadToEnd(ctx); err != nil {
		return err
	}
	v, _ := json.Marshal(commitValue{len(configs)})
	if err := s.Log.send(ctx, []byte("commit-"+name), v); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

func (s *Configs) PutRestartRequest(ctx context.Context, name string, r RestartRequest) error {
	v, _ := json.Marshal(r)
	if err := s.Log.send(ctx, []byte("restart-connector-"+name), v); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

// SessionKeys returns the current session key and the one before it (zero when none).
func (s *Configs) SessionKeys() (cur, prev sessionkey.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, s.prevKey
}

// PutSessionKey writes a new session key.
func (s *Configs) PutSessionKey(ctx context.Context, k sessionkey.Key) error {
	v, _ := json.Marshal(sessionkey.Value{Key: base64.StdEncoding.EncodeToString(k.Key), Algorithm: sessionkey.Algorithm, Created: k.Created.UnixMilli()})
	if err := s.Log.send(ctx, []byte(sessionkey.Record), v); err != nil {
		return err
	}
	return s.Log.ReadToEnd(ctx)
}

// SessionKeysList is sessionKeys as a list, for verifySignature.
func (s *Configs) SessionKeysList() []sessionkey.Key {
	cur, prev := s.SessionKeys()
	return []sessionkey.Key{cur, prev}
}
