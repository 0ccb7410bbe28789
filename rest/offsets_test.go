package rest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/worker/api"
)

func TestGetOffsets(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/offsets", "")
	want := map[string]any{"offsets": []any{map[string]any{
		"partition": map[string]any{"kafka_topic": "iot.raw", "kafka_partition": float64(0)},
		"offset":    map[string]any{"kafka_offset": float64(42)},
	}}}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/nope/offsets", ""); r.status != 404 {
		t.Fatalf("unknown: %d", r.status)
	}
}

func TestAlterOffsets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		state   api.State
		body    string
		status  int
		msg     string
		wantArg api.ConnectorOffsets
	}{
		{
			name:   "altered, integers stay exact",
			state:  api.StateStopped,
			body:   `{"offsets":[{"partition":{"kafka_topic":"iot.raw","kafka_partition":0},"offset":{"kafka_offset":9007199254740993}},{"partition":{"file":"a.txt"},"offset":null},{"partition":{"x":1.5},"offset":{"pos":[1,2]}}]}`,
			status: 200,
			msg:    "altered successfully",
			wantArg: api.ConnectorOffsets{Offsets: []api.ConnectorOffset{
				{Partition: map[string]any{"kafka_topic": "iot.raw", "kafka_partition": int64(0)}, Offset: map[string]any{"kafka_offset": int64(9007199254740993)}},
				{Partition: map[string]any{"file": "a.txt"}},
				{Partition: map[string]any{"x": 1.5}, Offset: map[string]any{"pos": []any{int64(1), int64(2)}}},
			}},
		},
		{name: "empty list", state: api.StateStopped, body: `{"offsets":[]}`, status: 400, msg: "Partitions / offsets need to be provided"},
		{name: "no list", state: api.StateStopped, body: `{}`, status: 400, msg: "Partitions / offsets need to be provided"},
		{name: "null list", state: api.StateStopped, body: `{"offsets":null}`, status: 400, msg: "missing or empty"},
		{name: "no body", state: api.StateStopped, body: ``, status: 400, msg: "request body is empty"},
		{name: "no partition", state: api.StateStopped, body: `{"offsets":[{"offset":{"a":1}}]}`, status: 400, msg: `offsets[0] has no "partition"`},
		{name: "list of the wrong type", state: api.StateStopped, body: `{"offsets":{}}`, status: 400, msg: `"offsets" must be a JSON array, not a JSON object`},
		{name: "connector running", state: api.StateRunning, body: `{"offsets":[{"partition":{"a":1},"offset":null}]}`, status: 400, msg: "must be STOPPED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t)
			ts.worker.add("a", mqttConfig(), tt.state)
			r := ts.do("PATCH", "/connectors/a/offsets", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
					t.Fatalf("message %q, want %q", msg, tt.msg)
				}
				return
			}
			if got := r.obj(t)["message"]; !strings.Contains(got.(string), tt.msg) {
				t.Fatalf("message %v", got)
			}
			if got := ts.worker.lastCall("AlterOffsets")[1]; !reflect.DeepEqual(got, tt.wantArg) {
				t.Fatalf("worker got %#v\nwant %#v", got, tt.wantArg)
			}
		})
	}
}

func TestResetOffsets(t *testing.T) {
	t.Parallel()
	ts := setup(t, "running")
	ts.worker.add("stopped", mqttConfig(), api.StateStopped)
	r := ts.do("DELETE", "/connectors/stopped/offsets", "")
	if r.status != 200 || !strings.Contains(r.obj(t)["message"].(string), "reset successfully") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("DELETE", "/connectors/running/offsets", ""); r.status != 400 {
		t.Fatalf("running: %d", r.status)
	}
	if r := ts.do("DELETE", "/connectors/nope/offsets", ""); r.status != 404 {
		t.Fatalf("unknown: %d", r.status)
	}
}
