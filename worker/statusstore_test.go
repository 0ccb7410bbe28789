package worker

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/sluicehq/sluice/worker/api"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// A status written by another worker of an older generation (a zombie) never overwrites the
// current owner's; the owner's own later writes and newer generations do.
func TestStatusGenerationsKeepZombiesOut(t *testing.T) {
	record := func(key string, v statusValue) *kafka.Message {
		b, _ := json.Marshal(v)
		return &kafka.Message{Key: []byte(key), Value: b}
	}
	for _, tc := range []struct {
		name      string
		writes    []statusValue
		wantOwner string
		wantState api.State
	}{
		{"newer generation replaces", []statusValue{{State: api.StateRunning, WorkerID: "a", Generation: 3}, {State: api.StateRunning, WorkerID: "b", Generation: 4}}, "b", api.StateRunning},
		{"older generation from another worker is ignored", []statusValue{{State: api.StateRunning, WorkerID: "b", Generation: 4}, {State: api.StateFailed, WorkerID: "a", Generation: 3}}, "b", api.StateRunning},
		{"the owner's own update always applies", []statusValue{{State: api.StateRunning, WorkerID: "b", Generation: 4}, {State: api.StatePaused, WorkerID: "b", Generation: 4}}, "b", api.StatePaused},
		{"same generation from another worker applies", []statusValue{{State: api.StateRunning, WorkerID: "a", Generation: 4}, {State: api.StateRunning, WorkerID: "b", Generation: 4}}, "b", api.StateRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &statusStore{logger: slog.New(slog.DiscardHandler), connectors: map[string]statusValue{}, tasks: map[api.TaskID]statusValue{},
				activeTopics: map[string]map[string]bool{}}
			for _, v := range tc.writes {
				s.apply(record("status-task-conn-0", v))
				s.apply(record("status-connector-conn", v))
			}
			for what, got := range map[string]statusValue{"task": must(s.task(api.TaskID{Connector: "conn", Task: 0})), "connector": must(s.connector("conn"))} {
				if got.WorkerID != tc.wantOwner || got.State != tc.wantState {
					t.Errorf("%s status %+v, want %s on %s", what, got, tc.wantState, tc.wantOwner)
				}
			}
		})
	}
}

func must(v statusValue, ok bool) statusValue {
	if !ok {
		return statusValue{}
	}
	return v
}
