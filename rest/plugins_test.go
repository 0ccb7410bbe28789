package rest

import (
	"reflect"
	"strings"
	"testing"
)

func TestListPlugins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query  string
		status int
		n      int
	}{
		{"", 200, 2},
		{"?connectorsOnly=true", 200, 2},
		{"?connectorsOnly=false", 200, 3},
		{"?connectorsOnly=nah", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			ts := setup(t)
			r := ts.do("GET", "/connector-plugins"+tt.query, "")
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tt.status != 200 {
				r.errorMessage(t)
				return
			}
			list := r.json(t).([]any)
			if len(list) != tt.n {
				t.Fatalf("got %s", r.body)
			}
			want := map[string]any{"class": "mongodb-sink", "type": "sink", "version": "0.1.0"}
			if !reflect.DeepEqual(list[0], want) {
				t.Fatalf("first plugin %v", list[0])
			}
		})
	}
}

func TestPluginConfig(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("GET", "/connector-plugins/mqtt-sourceConnector/config", "")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	keys := r.json(t).([]any)
	first := keys[0].(map[string]any)
	want := map[string]any{
		"name": "mqtt.server.uri", "type": "STRING", "required": true, "default_value": nil,
		"importance": "HIGH", "documentation": "The broker's URI.", "group": nil, "order": float64(0),
		"width": "LONG", "display_name": "Server URI", "dependents": []any{},
	}
	if len(keys) != 2 || !reflect.DeepEqual(first, want) {
		t.Fatalf("got %s", r.body)
	}
	if r := ts.do("GET", "/connector-plugins/nope/config", ""); r.status != 404 {
		t.Fatalf("unknown plugin: %d", r.status)
	}
}

func TestValidateConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		plugin     string
		body       string
		status     int
		errorCount float64
		msg        string
	}{
		{name: "valid", plugin: "mqtt-source", body: `{"connector.class":"mqtt-source","mqtt.server.uri":"tcp://x:1883"}`, status: 200},
		{name: "alias", plugin: "mqtt-sourceConnector", body: `{"connector.class":"mqtt-source","mqtt.server.uri":"tcp://x:1883"}`, status: 200},
		{name: "invalid is still 200", plugin: "mqtt-source", body: `{"connector.class":"mqtt-source"}`, status: 200, errorCount: 1},
		{name: "no connector.class", plugin: "mqtt-source", body: `{"mqtt.server.uri":"tcp://x:1883"}`, status: 400, msg: `no "connector.class"`},
		{name: "empty connector.class", plugin: "mqtt-source", body: `{"connector.class":""}`, status: 400, msg: `no "connector.class"`},
		{name: "class does not match the plugin", plugin: "mqtt-source", body: `{"connector.class":"mongodb-sink"}`, status: 400, msg: "does not match request type"},
		{name: "unknown plugin", plugin: "nope", body: `{"connector.class":"nope"}`, status: 404, msg: "not found"},
		{name: "null body", plugin: "mqtt-source", body: `null`, status: 400, msg: "not null"},
		{name: "malformed", plugin: "mqtt-source", body: `{`, status: 400, msg: "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := setup(t)
			r := ts.do("PUT", "/connector-plugins/"+tt.plugin+"/config/validate", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.msg) {
					t.Fatalf("message %q, want %q", msg, tt.msg)
				}
				return
			}
			got := r.obj(t)
			if got["error_count"] != tt.errorCount || got["name"] != "mqtt-source" || len(got["configs"].([]any)) != 2 {
				t.Fatalf("got %s", r.body)
			}
			if args := ts.worker.lastCall("ValidateConfig"); args[0] != tt.plugin {
				t.Fatalf("worker got plugin %v", args[0])
			}
		})
	}
}
