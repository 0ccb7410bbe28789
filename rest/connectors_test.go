package rest

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/worker/api"
)

func TestListConnectors(t *testing.T) {
	t.Parallel()
	t.Run("empty is an empty list", func(t *testing.T) {
		ts := setup(t)
		r := ts.do("GET", "/connectors", "")
		if r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
			t.Fatalf("got %d %s, want 200 []", r.status, r.body)
		}
	})
	t.Run("names", func(t *testing.T) {
		ts := setup(t, "b", "a")
		r := ts.do("GET", "/connectors/", "") // a trailing slash is ignored
		if got := r.json(t); r.status != 200 || !reflect.DeepEqual(got, []any{"a", "b"}) {
			t.Fatalf("got %d %s, want 200 [a b]", r.status, r.body)
		}
	})
}

func TestListConnectorsExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		query      string
		wantStatus bool
		wantInfo   bool
	}{
		{"status", "?expand=status", true, false},
		{"info", "?expand=info", false, true},
		{"both repeated", "?expand=status&expand=info", true, true},
		{"both comma-separated", "?expand=status,info", true, true},
		{"case-insensitive", "?expand=STATUS", true, false},
		{"unknown expansions are ignored", "?expand=bogus", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a", "b")
			r := ts.do("GET", "/connectors"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			got := r.obj(t)
			if len(got) != 2 {
				t.Fatalf("want entries for a and b, got %s", r.body)
			}
			for _, name := range []string{"a", "b"} {
				e, ok := got[name].(map[string]any)
				if !ok {
					t.Fatalf("%s: not an object in %s", name, r.body)
				}
				st, hasStatus := e["status"].(map[string]any)
				info, hasInfo := e["info"].(map[string]any)
				if hasStatus != tt.wantStatus || hasInfo != tt.wantInfo || len(e) != btoi(tt.wantStatus)+btoi(tt.wantInfo) {
					t.Fatalf("%s: got %v, want status=%v info=%v", name, e, tt.wantStatus, tt.wantInfo)
				}
				if hasStatus && (st["name"] != name || st["connector"].(map[string]any)["state"] != "RUNNING") {
					t.Errorf("%s: status %v", name, st)
				}
				if hasInfo && (info["name"] != name || info["config"].(map[string]any)["connector.class"] != "mqtt-source") {
					t.Errorf("%s: info %v", name, info)
				}
			}
		})
	}

	t.Run("a connector deleted meanwhile is left out", func(t *testing.T) {
		t.Parallel()
		ts := setup(t, "a", "gone")
		ts.worker.setHook(func(_ context.Context, method string, args ...any) error {
			if method == "ConnectorInfo" && args[0] == "gone" {
				return api.Errorf(api.ErrNotFound, "connector %q not found", "gone")
			}
			return nil
		})
		r := ts.do("GET", "/connectors?expand=status&expand=info", "")
		if got := r.obj(t); r.status != 200 || len(got) != 1 || got["a"] == nil {
			t.Fatalf("got %d %s, want only a", r.status, r.body)
		}
	})
	t.Run("other failures fail the request", func(t *testing.T) {
		t.Parallel()
		ts := setup(t, "a")
		ts.worker.setHook(func(_ context.Context, method string, _ ...any) error {
			if method == "ConnectorStatus" {
				return api.Errorf(api.ErrRebalance, "rebalance in progress; retry shortly")
			}
			return nil
		})
		r := ts.do("GET", "/connectors?expand=status", "")
		if r.status != 409 || !strings.Contains(r.errorMessage(t), "rebalance") {
			t.Fatalf("got %d %s, want 409 rebalance", r.status, r.body)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCreateConnector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		status    int
		wantMsg   string            // part of the error message
		wantCfg   map[string]string // config the worker got
		wantState string            // initial state the worker got
		wantName  string
	}{
		{
			name:     "created, name copied into the config",
			body:     `{"name":"mqtt-in","config":{"connector.class":"mqtt-source","tasks.max":"1"}}`,
			status:   201,
			wantName: "mqtt-in",
			wantCfg:  map[string]string{"connector.class": "mqtt-source", "tasks.max": "1", "name": "mqtt-in"},
		},
		{
			name:     "matching config name",
			body:     `{"name":"mqtt-in","config":{"connector.class":"mqtt-source","name":"mqtt-in"}}`,
			status:   201,
			wantName: "mqtt-in",
			wantCfg:  map[string]string{"connector.class": "mqtt-source", "name": "mqtt-in"},
		},
		{
			name:     "name trimmed, numbers and booleans taken as text",
			body:     `{"name":"  mqtt-in ","config":{"connector.class":"mqtt-source","tasks.max":2,"x.enable":true,"y":1.50}}`,
			status:   201,
			wantName: "mqtt-in",
			wantCfg:  map[string]string{"connector.class": "mqtt-source", "tasks.max": "2", "x.enable": "true", "y": "1.50", "name": "mqtt-in"},
		},
		{
			name:      "initial_state is case-insensitive",
			body:      `{"name":"p","config":{"connector.class":"mqtt-source"},"initial_state":"paused"}`,
			status:    201,
			wantName:  "p",
			wantState: "PAUSED",
			wantCfg:   map[string]string{"connector.class": "mqtt-source", "name": "p"},
		},
		{name: "config name differs", body: `{"name":"a","config":{"connector.class":"mqtt-source","name":"b"}}`,
			status: 400, wantMsg: `("b") does not match`},
		{name: "name missing", body: `{"config":{"connector.class":"mqtt-source"}}`, status: 400, wantMsg: "name is missing"},
		{name: "name blank", body: `{"name":"  ","config":{"connector.class":"mqtt-source"}}`, status: 400, wantMsg: "name is missing"},
		{name: "name not a string", body: `{"name":5,"config":{}}`, status: 400, wantMsg: `"name" must be a string`},
		{name: "config missing", body: `{"name":"a"}`, status: 400, wantMsg: "configuration is missing"},
		{name: "config null", body: `{"name":"a","config":null}`, status: 400, wantMsg: "configuration is missing"},
		{name: "config not an object", body: `{"name":"a","config":[1]}`, status: 400, wantMsg: "expected a JSON object"},
		{name: "config value an object", body: `{"name":"a","config":{"x":{}}}`, status: 400, wantMsg: `"x" must be a string, not a JSON object`},
		{name: "config value null", body: `{"name":"a","config":{"x":null}}`, status: 400, wantMsg: `"x" is null`},
		{name: "unknown initial_state", body: `{"name":"a","config":{},"initial_state":"ASLEEP"}`, status: 400, wantMsg: "initial_state must be one of"},
		{name: "malformed JSON", body: `{"name":"a",`, status: 400, wantMsg: "malformed JSON"},
		{name: "syntax error", body: `{"name" "a"}`, status: 400, wantMsg: "malformed JSON in the request body at byte"},
		{name: "data after the JSON value", body: `{"name":"a","config":{}} {}`, status: 400, wantMsg: "unexpected data after"},
		{name: "body not an object", body: `["a"]`, status: 400, wantMsg: "expected a JSON object"},
		{name: "worker rejects the config", body: `{"name":"a","config":{"tasks.max":"1"}}`, status: 400, wantMsg: "no connector.class"},
		{name: "exists", body: `{"name":"existing","config":{"connector.class":"mqtt-source"}}`, status: 409, wantMsg: "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "existing")
			r := ts.do("POST", "/connectors", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.status != 201 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
				return
			}
			if loc := r.header.Get("Location"); loc != "/connectors/"+tt.wantName {
				t.Errorf("Location %q", loc)
			}
			args := ts.worker.lastCall("CreateConnector")
			if args[0] != tt.wantName || !reflect.DeepEqual(args[1], tt.wantCfg) || args[2] != tt.wantState {
				t.Errorf("worker got %v, want name %q config %v state %q", args, tt.wantName, tt.wantCfg, tt.wantState)
			}
			info := r.obj(t)
			if info["name"] != tt.wantName || info["type"] != "source" {
				t.Errorf("info %s", r.body)
			}
		})
	}
}

func TestCreateConnectorEmptyBody(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("POST", "/connectors", "")
	if r.status != 400 || !strings.Contains(r.errorMessage(t), "request body is empty") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestCreateConnectorEscapedLocation(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("POST", "/connectors", `{"name":"a b/c","config":{"connector.class":"mqtt-source"}}`)
	if r.status != 201 || r.header.Get("Location") != "/connectors/a%20b%2Fc" {
		t.Fatalf("got %d Location %q", r.status, r.header.Get("Location"))
	}
	// The escaped name routes as one segment.
	if r := ts.do("GET", "/connectors/a%20b%2Fc/status", ""); r.status != 200 || r.obj(t)["name"] != "a b/c" {
		t.Fatalf("GET status of escaped name: %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/a%20b%2Fc/", ""); r.status != 200 || r.obj(t)["name"] != "a b/c" {
		t.Fatalf("GET escaped name with trailing slash: %d %s", r.status, r.body)
	}
}

func TestGetConnector(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a", "")
	want := map[string]any{
		"name":   "a",
		"config": map[string]any{"connector.class": "mqtt-source", "tasks.max": "1", "mqtt.server.uri": "tcp://localhost:1883", "name": "a"},
		"tasks":  []any{map[string]any{"connector": "a", "task": float64(0)}},
		"type":   "source",
	}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	r = ts.do("GET", "/connectors/nope", "")
	if r.status != 404 || r.errorMessage(t) != `connector "nope" not found` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestStoppedConnectorShowsEmptyTasks(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	ts.worker.add("s", mqttConfig(), api.StateStopped) // the fake returns nil task slices
	for _, path := range []string{"/connectors/s", "/connectors/s/status", "/connectors/s/tasks"} {
		r := ts.do("GET", path, "")
		if r.status != 200 || strings.Contains(string(r.body), "null") {
			t.Errorf("GET %s: %d %s, want no nulls", path, r.status, r.body)
		}
	}
}

func TestGetConnectorConfig(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/config", "")
	if r.status != 200 || r.obj(t)["mqtt.server.uri"] != "tcp://localhost:1883" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/nope/config", ""); r.status != 404 {
		t.Fatalf("unknown connector: %d", r.status)
	}
}

func TestPutConnectorConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		body     string
		status   int
		wantMsg  string
		wantCfg  map[string]string
		location string
	}{
		{name: "creates", path: "/connectors/new/config", body: `{"connector.class":"mqtt-source"}`, status: 201,
			location: "/connectors/new", wantCfg: map[string]string{"connector.class": "mqtt-source", "name": "new"}},
		{name: "updates", path: "/connectors/a/config", body: `{"connector.class":"mqtt-source","tasks.max":"3","name":"a"}`, status: 200,
			wantCfg: map[string]string{"connector.class": "mqtt-source", "tasks.max": "3", "name": "a"}},
		{name: "name differs from the path", path: "/connectors/a/config", body: `{"connector.class":"mqtt-source","name":"b"}`,
			status: 400, wantMsg: `("b") does not match the connector name in the URL ("a")`},
		{name: "null body", path: "/connectors/a/config", body: `null`, status: 400, wantMsg: "not null"},
		{name: "not an object", path: "/connectors/a/config", body: `"x"`, status: 400, wantMsg: "expected a JSON object"},
		{name: "null value", path: "/connectors/a/config", body: `{"x":null}`, status: 400, wantMsg: "to remove a setting, PATCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			r := ts.do("PUT", tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.wantMsg != "" {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want %q", msg, tt.wantMsg)
				}
				return
			}
			if got := r.header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if args := ts.worker.lastCall("PutConnectorConfig"); !reflect.DeepEqual(args[1], tt.wantCfg) {
				t.Errorf("worker got %v, want %v", args[1], tt.wantCfg)
			}
		})
	}
}

func TestPatchConnectorConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		path      string
		body      string
		status    int
		wantMsg   string
		wantPatch map[string]*string
		wantCfg   map[string]any // the answer's config
	}{
		{
			name:      "null removes a key, values change",
			path:      "/connectors/a/config",
			body:      `{"mqtt.server.uri":null,"tasks.max":4}`,
			status:    200,
			wantPatch: map[string]*string{"mqtt.server.uri": nil, "tasks.max": ptr("4")},
			wantCfg:   map[string]any{"connector.class": "mqtt-source", "tasks.max": "4", "name": "a"},
		},
		{name: "the same name is fine", path: "/connectors/a/config", body: `{"name":"a"}`, status: 200,
			wantPatch: map[string]*string{"name": ptr("a")},
			wantCfg:   map[string]any{"connector.class": "mqtt-source", "tasks.max": "1", "mqtt.server.uri": "tcp://localhost:1883", "name": "a"}},
		{name: "renaming", path: "/connectors/a/config", body: `{"name":"b"}`, status: 400, wantMsg: "does not match"},
		{name: "removing the name", path: "/connectors/a/config", body: `{"name":null}`, status: 400, wantMsg: "cannot be removed"},
		{name: "null body", path: "/connectors/a/config", body: `null`, status: 400, wantMsg: "not null"},
		{name: "array value", path: "/connectors/a/config", body: `{"x":[]}`, status: 400, wantMsg: "not a JSON array"},
		{name: "unknown connector", path: "/connectors/nope/config", body: `{"x":"1"}`, status: 404, wantMsg: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			r := ts.do("PATCH", tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.wantMsg != "" {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Fatalf("message %q, want %q", msg, tt.wantMsg)
				}
				return
			}
			got, _ := ts.worker.lastCall("PatchConnectorConfig")[1].(map[string]*string)
			if !maps.EqualFunc(got, tt.wantPatch, func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }) {
				t.Errorf("worker got patch %v, want %v", got, tt.wantPatch)
			}
			if cfg := r.obj(t)["config"]; !reflect.DeepEqual(cfg, tt.wantCfg) {
				t.Errorf("answer config %v, want %v", cfg, tt.wantCfg)
			}
		})
	}
}

func TestDeleteConnector(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("DELETE", "/connectors/a", "")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if r := ts.do("DELETE", "/connectors/a", ""); r.status != 404 {
		t.Fatalf("second delete: %d", r.status)
	}
}

func TestConnectorStatus(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/status", "")
	want := map[string]any{
		"name":      "a",
		"connector": map[string]any{"state": "RUNNING", "worker_id": "w1:8083"},
		"tasks":     []any{map[string]any{"id": float64(0), "state": "RUNNING", "worker_id": "w1:8083"}},
		"type":      "source",
	}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/nope/status", ""); r.status != 404 {
		t.Fatalf("unknown: %d", r.status)
	}
}

func TestRestartConnector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query        string
		status       int
		includeTasks bool
		onlyFailed   bool
	}{
		{"", 204, false, false},
		{"?includeTasks=false&onlyFailed=false", 204, false, false},
		{"?includeTasks=true", 202, true, false},
		{"?onlyFailed=true", 202, false, true},
		{"?includeTasks=true&onlyFailed=true", 202, true, true},
		{"?includeTasks=maybe", 400, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			r := ts.do("POST", "/connectors/a/restart"+tt.query, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			switch tt.status {
			case 400:
				if msg := r.errorMessage(t); !strings.Contains(msg, "includeTasks must be true or false") {
					t.Fatalf("message %q", msg)
				}
				return
			case 204:
				if len(r.body) != 0 {
					t.Fatalf("204 with body %s", r.body)
				}
			case 202:
				st := r.obj(t)
				if st["connector"].(map[string]any)["state"] != "RESTARTING" {
					t.Fatalf("status %s", r.body)
				}
			}
			args := ts.worker.lastCall("RestartConnector")
			if args[1] != tt.includeTasks || args[2] != tt.onlyFailed {
				t.Errorf("worker got %v", args)
			}
		})
	}
	t.Run("unknown connector", func(t *testing.T) {
		t.Parallel()
		ts := setup(t)
		if r := ts.do("POST", "/connectors/nope/restart?includeTasks=true", ""); r.status != 404 {
			t.Fatalf("got %d", r.status)
		}
	})
}

func TestPauseResumeStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path   string
		status int
		state  api.State
	}{
		{"/connectors/a/pause", 202, api.StatePaused},
		{"/connectors/a/resume", 202, api.StateRunning},
		{"/connectors/a/stop", 204, api.StateStopped},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			if tt.state == api.StateRunning {
				ts.worker.add("a", mqttConfig(), api.StateStopped)
			}
			r := ts.do("PUT", tt.path, "")
			if r.status != tt.status || len(r.body) != 0 {
				t.Fatalf("got %d %q, want %d and no body", r.status, r.body, tt.status)
			}
			st := ts.do("GET", "/connectors/a/status", "").obj(t)
			if got := st["connector"].(map[string]any)["state"]; got != string(tt.state) {
				t.Errorf("state %v, want %s", got, tt.state)
			}
			if r := ts.do("PUT", strings.Replace(tt.path, "/a/", "/nope/", 1), ""); r.status != 404 {
				t.Errorf("unknown connector: %d", r.status)
			}
		})
	}
}

func TestConnectorTopics(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/topics", "")
	want := map[string]any{"a": map[string]any{"topics": []any{"iot.raw"}}}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("PUT", "/connectors/a/topics/reset", ""); r.status != 202 || len(r.body) != 0 {
		t.Fatalf("reset: %d %q", r.status, r.body)
	}
	if r := ts.do("PUT", "/connectors/nope/topics/reset", ""); r.status != 404 {
		t.Fatalf("reset unknown: %d", r.status)
	}
}

func TestWorkerErrorsMapToStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		msg    string
	}{
		{api.Errorf(api.ErrNotFound, "connector %q not found", "a"), 404, `connector "a" not found`},
		{api.Errorf(api.ErrExists, "connector %q already exists", "a"), 409, `connector "a" already exists`},
		{api.Errorf(api.ErrBadRequest, "tasks.max must be positive"), 400, "tasks.max must be positive"},
		{api.Errorf(api.ErrRebalance, "a rebalance is underway; retry shortly"), 409, "a rebalance is underway; retry shortly"},
		{errors.New("kafka: broker unreachable"), 500, `reading connector "a": kafka: broker unreachable`},
		{context.Canceled, 500, `reading connector "a": the request was canceled`},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			ts.worker.setHook(func(context.Context, string, ...any) error { return tt.err })
			r := ts.do("GET", "/connectors/a", "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, tt.msg) {
				t.Fatalf("message %q, want %q", msg, tt.msg)
			}
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	tests := []struct {
		method, path string
		status       int
		allow        string
		msg          string
	}{
		{"GET", "/nope", 404, "", "Unknown endpoint GET /nope"},
		{"GET", "/connectors/a/nope", 404, "", "Unknown endpoint"},
		{"DELETE", "/connectors", 405, "GET, POST", "HTTP method DELETE is not allowed on /connectors; allowed: GET, POST"},
		{"POST", "/connectors/a/config", 405, "GET, PUT, PATCH", "not allowed"},
		{"GET", "/connectors/a/restart", 405, "POST", "not allowed"},
		{"PUT", "/connectors/a/tasks/0/status/", 405, "GET", "not allowed"},
		{"PURGE", "/connectors", 405, "GET, POST", "PURGE is not allowed"},
		{"PURGE", "/nope", 404, "", "Unknown endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, "")
			if r.status != tt.status || r.header.Get("Allow") != tt.allow {
				t.Fatalf("got %d Allow %q, want %d %q", r.status, r.header.Get("Allow"), tt.status, tt.allow)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q, want %q", msg, tt.msg)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestPanicIsA500(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	ts.worker.setHook(func(context.Context, string, ...any) error { panic("boom") })
	r := ts.do("GET", "/connectors/a", "")
	if r.status != http.StatusInternalServerError || !strings.Contains(r.errorMessage(t), "panicked: boom") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	big := `{"name":"a","config":{"x":"` + strings.Repeat("x", maxBodyBytes) + `"}}`
	r := ts.do("POST", "/connectors", big)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.errorMessage(t), "larger than") {
		t.Fatalf("got %d %.200s", r.status, r.body)
	}
}
