package store

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/worker/api"
)

// A status written by another worker of an older generation (a zombie) never overwrites the
// current owner's; the owner's own later writes and newer generations do.
func TestStatusGenerationsKeepZombiesOut(t *testing.T) {
	record := func(key string, v Status) *kafka.Message {
		b, _ := json.Marshal(v)
		return &kafka.Message{Key: []byte(key), Value: b}
	}
	for _, tc := range []struct {
		name      string
		writes    []Status
		wantOwner string
		wantState api.State
	}{
		{"newer generation replaces", []Status{{State: api.StateRunning, WorkerID: "a", Generation: 3}, {State: api.StateRunning, WorkerID: "b", Generation: 4}}, "b", api.StateRunning},
		{"older generation from another worker is ignored", []Status{{State: api.StateRunning, WorkerID: "b", Generation: 4}, {State: api.StateFailed, WorkerID: "a", Generation: 3}}, "b", api.StateRunning},
		{"the owner's own update always applies", []Status{{State: api.StateRunning, WorkerID: "b", Generation: 4}, {State: api.StatePaused, WorkerID: "b", Generation: 4}}, "b", api.StatePaused},
		{"same generation from another worker applies", []Status{{State: api.StateRunning, WorkerID: "a", Generation: 4}, {State: api.StateRunning, WorkerID: "b", Generation: 4}}, "b", api.StateRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Statuses{logger: slog.New(slog.DiscardHandler), connectors: map[string]Status{}, tasks: map[api.TaskID]Status{},
				activeTopics: map[string]map[string]bool{}}
			for _, v := range tc.writes {
				s.apply(record("status-task-conn-0", v))
				s.apply(record("status-connector-conn", v))
			}
			for what, got := range map[string]Status{"task": must(s.Task(api.TaskID{Connector: "conn", Task: 0})), "connector": must(s.Connector("conn"))} {
				if got.WorkerID != tc.wantOwner || got.State != tc.wantState {
					t.Errorf("%s status %+v, want %s on %s", what, got, tc.wantState, tc.wantOwner)
				}
			}
		})
	}
}

func must(v Status, ok bool) Status {
	if !ok {
		return Status{}
	}
	return v
}
