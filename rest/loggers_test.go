package rest

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoggers(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("GET", "/admin/loggers", "")
	want := map[string]any{"root": map[string]any{"level": "INFO"}, "sluice.runtime": map[string]any{"level": "INFO"}}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/admin/loggers/root", ""); r.status != 200 || r.obj(t)["level"] != "INFO" {
		t.Fatalf("get root: %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/admin/loggers/nope", ""); r.status != 404 {
		t.Fatalf("unknown logger: %d", r.status)
	}
}

func TestSetLoggerLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		want   []any
		msg    string
	}{
		{name: "changes the logger and those below it", path: "/admin/loggers/sluice", body: `{"level":"DEBUG"}`,
			status: 200, want: []any{"sluice.runtime"}},
		{name: "scope=worker", path: "/admin/loggers/root?scope=worker", body: `{"level":"warn"}`, status: 200, want: []any{"root"}},
		{name: "unknown scope is worker", path: "/admin/loggers/root?scope=galaxy", body: `{"level":"warn"}`, status: 200, want: []any{"root"}},
		{name: "scope=cluster is refused", path: "/admin/loggers/root?scope=cluster", body: `{"level":"warn"}`, status: 400, msg: "scope=cluster is not supported"},
		{name: "no level", path: "/admin/loggers/root", body: `{}`, status: 400, msg: "Desired 'level' parameter was not specified"},
		{name: "level not a string", path: "/admin/loggers/root", body: `{"level":3}`, status: 400, msg: `"level" must be a string`},
		{name: "unknown level", path: "/admin/loggers/root", body: `{"level":"LOUD"}`, status: 404, msg: "invalid log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t)
			r := ts.do("PUT", tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
					t.Fatalf("message %q, want %q", msg, tt.msg)
				}
				return
			}
			if got := r.json(t); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
