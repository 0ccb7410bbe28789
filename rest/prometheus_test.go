package rest

import (
	"reflect"
	"testing"
)

func TestPrometheusTargets(t *testing.T) {
	t.Parallel()
	ts := setup(t, "a")
	r := ts.do("GET", "/connectors/a/prometheus-targets", "")
	want := []any{map[string]any{"targets": []any{"w1:9400"},
		"labels": map[string]any{"__metrics_path__": "/metrics", "connector": "a", "task": "0"}}}
	if r.status != 200 || !reflect.DeepEqual(r.json(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/connectors/nope/prometheus-targets", ""); r.status != 404 {
		t.Fatalf("unknown connector: %d", r.status)
	}
}
