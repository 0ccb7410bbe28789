package rest

import (
	"reflect"
	"strings"
	"testing"
)

func TestTaskConfigs(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/tasks", "")
	want := []any{map[string]any{
		"id":     map[string]any{"connector": "a", "task": float64(0)},
		"config": map[string]any{"task.class": "mqtt-sourceTask"},
	}}
	if r.status != 200 || !reflect.DeepEqual(r.json(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/nope/tasks", ""); r.status != 404 {
		t.Fatalf("unknown connector: %d", r.status)
	}
}

func TestTaskStatusAndRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/connectors/a/tasks/0/status", 200, ""},
		{"GET", "/connectors/a/tasks/1/status", 404, "task 1 of connector \"a\" not found"},
		{"GET", "/connectors/a/tasks/x/status", 404, "task ids are numbers"},
		{"GET", "/connectors/nope/tasks/0/status", 404, "not found"},
		{"POST", "/connectors/a/tasks/0/restart", 204, ""},
		{"POST", "/connectors/a/tasks/7/restart", 404, "not found"},
		{"POST", "/connectors/a/tasks/-/restart", 404, "task ids are numbers"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			r := ts.do(tt.method, tt.path, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			switch {
			case tt.msg != "":
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
					t.Fatalf("message %q, want %q", msg, tt.msg)
				}
			case tt.status == 200:
				want := map[string]any{"id": float64(0), "state": "RUNNING", "worker_id": "w1:8083", "restarts": float64(2)}
				if got := r.obj(t); !reflect.DeepEqual(got, want) {
					t.Fatalf("got %v", got)
				}
			case tt.status == 204:
				if len(r.body) != 0 {
					t.Fatalf("body %q", r.body)
				}
				if args := ts.worker.lastCall("RestartTask"); args[0] != "a" || args[1] != 0 {
					t.Fatalf("worker got %v", args)
				}
			}
		})
	}
}

func TestPutTaskConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		status     int
		msg        string
	}{
		{name: "task configurations", body: `[{"task.class": "x"}, {}]`, status: 204},
		{name: "no tasks", body: `[]`, status: 204},
		{name: "a null task configuration", body: `[{"a": "b"}, null]`, status: 400, msg: "task configuration 1 is null"},
		{name: "not an array", body: `{"a": "b"}`, status: 400, msg: "expected a JSON array"},
		{name: "null", body: `null`, status: 400, msg: "not null"},
		{name: "a number value", body: `[{"a": 1}]`, status: 400, msg: "got a JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t, "a")
			r := ts.do("POST", "/connectors/a/tasks", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.msg != "" {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
					t.Fatalf("message %q, want %q", msg, tt.msg)
				}
			}
		})
	}
}
