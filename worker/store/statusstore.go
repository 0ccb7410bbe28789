package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// Statuses keeps connector and task statuses in the status topic, with Kafka Connect's keys
// (status-connector-<name>, status-task-<name>-<n>) and values. A status is shown once the
// worker has read it back from the topic, so every worker shows the same.
type Statuses struct {
	Log    *Log
	logger *slog.Logger

	mu         sync.Mutex
	connectors map[string]Status
	tasks      map[api.TaskID]Status
	// activeTopics holds the topics each connector used (KIP-558), from records keyed
	// status-topic-<topic>:connector-<name>.
	activeTopics map[string]map[string]bool
}

type topicStatusValue struct {
	Topic struct {
		Name              string `json:"name"`
		Connector         string `json:"connector"`
		Task              int    `json:"task"`
		DiscoverTimestamp int64  `json:"discoverTimestamp"`
	} `json:"topic"`
}

type Status struct {
	State      api.State `json:"state"`
	Trace      *string   `json:"trace"`
	WorkerID   string    `json:"worker_id"`
	Generation int32     `json:"generation"`
	// Restarts is Sluice's addition: automatic restarts since the task last ran healthy.
	Restarts int `json:"restarts,omitempty"`
	// Endpoints is Sluice's addition: what the task serves (see connect.Endpointer).
	Endpoints []connect.Endpoint `json:"endpoints,omitempty"`
}

func NewStatuses(clients *kafkaclient.Factory, topic string, logger *slog.Logger) (*Statuses, error) {
	s := &Statuses{logger: logger, connectors: map[string]Status{}, tasks: map[api.TaskID]Status{}, activeTopics: map[string]map[string]bool{}}
	l, err := NewLog(topic, clients, logger, s.apply, nil)
	if err != nil {
		return nil, err
	}
	s.Log = l
	return s, nil
}

func (s *Statuses) apply(m *kafka.Message) {
	key := string(m.Key)
	if strings.HasPrefix(key, "status-topic-") {
		s.applyTopic(key, m.Value)
		return
	}
	var v Status
	if m.Value != nil {
		if err := json.Unmarshal(m.Value, &v); err != nil {
			s.logger.Error("ignoring malformed status record", "key", key, "err", err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(key, "status-connector-"):
		name := strings.TrimPrefix(key, "status-connector-")
		if m.Value == nil {
			delete(s.connectors, name)
			return
		}
		if old, ok := s.connectors[name]; ok && !replaces(old, v) {
			return
		}
		s.connectors[name] = v
	case strings.HasPrefix(key, "status-task-"):
		name, n, ok := splitTaskKey(strings.TrimPrefix(key, "status-task-"))
		if !ok {
			return
		}
		id := api.TaskID{Connector: name, Task: n}
		if m.Value == nil {
			delete(s.tasks, id)
			return
		}
		if old, ok := s.tasks[id]; ok && !replaces(old, v) {
			return
		}
		s.tasks[id] = v
	}
}

// replaces says whether a status read from the topic replaces the one held: a worker's own
// later write always does; another worker's only with a generation at least as new, so a
// zombie of an older generation cannot overwrite the current owner's status.
func replaces(old, next Status) bool {
	return old.WorkerID == next.WorkerID || next.Generation >= old.Generation
}

func (s *Statuses) Connector(name string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.connectors[name]
	return v, ok
}

func (s *Statuses) Task(id api.TaskID) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.tasks[id]
	return v, ok
}

func (s *Statuses) PutConnector(name string, v Status) {
	s.put("status-connector-"+name, v)
}

func (s *Statuses) PutTask(id api.TaskID, v Status) {
	s.put(fmt.Sprintf("status-task-%s-%d", id.Connector, id.Task), v)
}

func (s *Statuses) put(key string, v Status) {
	b, _ := json.Marshal(v)
	s.Log.sendAsync([]byte(key), b, func(err error) {
		if err != nil {
			s.logger.Warn("status not written", "key", key, "err", err)
		}
	})
}

// DeleteConnector removes a connector's statuses with tombstones.
func (s *Statuses) DeleteConnector(ctx context.Context, name string, tasks int) {
	s.Log.sendAsync([]byte("status-connector-"+name), nil, func(error) {})
	s.mu.Lock()
	for id := range s.tasks {
		if id.Connector == name && id.Task >= tasks {
			tasks = id.Task + 1
		}
	}
	s.mu.Unlock()
	for i := 0; i < tasks; i++ {
		s.Log.sendAsync([]byte(fmt.Sprintf("status-task-%s-%d", name, i)), nil, func(error) {})
	}
	_ = s.Log.ReadToEnd(ctx)
}

func (s *Statuses) applyTopic(key string, value []byte) {
	topic, conn, ok := strings.Cut(strings.TrimPrefix(key, "status-topic-"), ":connector-")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == nil {
		delete(s.activeTopics[conn], topic)
		return
	}
	if s.activeTopics[conn] == nil {
		s.activeTopics[conn] = map[string]bool{}
	}
	s.activeTopics[conn][topic] = true
}

// Topics returns the topics a connector used, sorted.
func (s *Statuses) Topics(connector string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.activeTopics[connector]))
	for t := range s.activeTopics[connector] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// TopicUsed records that a task used a topic, once per topic and connector.
func (s *Statuses) TopicUsed(id api.TaskID, topic string) {
	s.mu.Lock()
	known := s.activeTopics[id.Connector][topic]
	s.mu.Unlock()
	if known {
		return
	}
	var v topicStatusValue
	v.Topic.Name, v.Topic.Connector, v.Topic.Task, v.Topic.DiscoverTimestamp = topic, id.Connector, id.Task, time.Now().UnixMilli()
	b, _ := json.Marshal(v)
	s.Log.sendAsync([]byte("status-topic-"+topic+":connector-"+id.Connector), b, func(error) {})
}

// ResetTopics forgets the topics a connector used.
func (s *Statuses) ResetTopics(ctx context.Context, connector string) {
	for _, t := range s.Topics(connector) {
		s.Log.sendAsync([]byte("status-topic-"+t+":connector-"+connector), nil, func(error) {})
	}
	_ = s.Log.ReadToEnd(ctx)
}
