package rest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/worker/api"
)

func TestServerInfo(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("GET", "/", "")
	want := map[string]any{
		"version": "0.1.0", "commit": "abc123", "kafka_cluster_id": "cluster-1",
		"sluice": map[string]any{"worker_id": "w1:8083", "leader": true, "generation": float64(3),
			"config_offset": float64(7), "connectors": []any{}, "tasks": []any{}},
	}
	if r.status != 200 || !reflect.DeepEqual(r.obj(t), want) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status string
		code   int
	}{
		{"healthy", 200},
		{"starting", 503},
		{"unhealthy", 500},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			t.Parallel()
			ts := setup(t)
			ts.worker.health = api.Health{Status: tt.status, Message: "because"}
			r := ts.do("GET", "/health", "")
			want := map[string]any{"status": tt.status, "message": "because"}
			if r.status != tt.code || !reflect.DeepEqual(r.obj(t), want) {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.code)
			}
		})
	}
	t.Run("no answer in time is unhealthy", func(t *testing.T) {
		t.Parallel()
		w := newFakeWorker("w1:8083")
		w.setHook(func(ctx context.Context, _ string, _ ...any) error { <-ctx.Done(); return ctx.Err() })
		ts := newServer(t, w, Options{RequestTimeout: 20 * time.Millisecond})
		r := ts.do("GET", "/health", "")
		got := r.obj(t)
		if r.status != 500 || got["status"] != "unhealthy" || !strings.Contains(got["message"].(string), "Request timed out while checking the worker's health") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestOpenAPIEndpoint(t *testing.T) {
	t.Parallel()
	ts := setup(t)
	r := ts.do("GET", "/openapi.yaml", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/yaml" || string(r.body) != string(openAPISpec) {
		t.Fatalf("got %d %s", r.status, r.header.Get("Content-Type"))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("sluice_up 1\n"))
	})
	ts := newServer(t, newFakeWorker("w1"), Options{Metrics: metrics})
	if r := ts.do("GET", "/metrics", ""); r.status != 200 || string(r.body) != "sluice_up 1\n" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// Without a metrics handler there is no such route.
	if r := setup(t).do("GET", "/metrics", ""); r.status != 404 {
		t.Fatalf("without metrics: %d", r.status)
	}
}

func TestExtraRoutes(t *testing.T) {
	t.Parallel()
	ts := newServer(t, newFakeWorker("w1"), Options{Extra: func(r chi.Router) {
		r.Get("/internal/ping", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, "pong") })
		r.Get("/internal/panic", func(http.ResponseWriter, *http.Request) { panic("handler bug") })
	}})
	ts.extraRoutes = true
	if r := ts.do("GET", "/internal/ping", ""); r.status != 200 || r.json(t) != "pong" {
		t.Fatalf("extra route: %d %s", r.status, r.body)
	}
	if r := ts.do("POST", "/internal/ping", ""); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Fatalf("extra route, wrong method: %d %q", r.status, r.header.Get("Allow"))
	}
	r := ts.do("GET", "/internal/panic", "")
	if r.status != 500 || !strings.Contains(r.errorMessage(t), "handler bug") {
		t.Fatalf("panicking handler: %d %s", r.status, r.body)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	t.Run("worker honours the deadline", func(t *testing.T) {
		t.Parallel()
		w := newFakeWorker("w1")
		w.setHook(func(ctx context.Context, _ string, _ ...any) error { <-ctx.Done(); return ctx.Err() })
		ts := newServer(t, w, Options{RequestTimeout: 20 * time.Millisecond})
		r := ts.do("POST", "/connectors", `{"name":"a","config":{"connector.class":"mqtt-source"}}`)
		if r.status != 500 || r.errorMessage(t) != `Request timed out while creating connector "a"` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("worker ignores the deadline", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		w := newFakeWorker("w1")
		w.setHook(func(context.Context, string, ...any) error { <-release; return nil })
		ts := newServer(t, w, Options{RequestTimeout: 20 * time.Millisecond})
		t.Cleanup(func() { close(release) })
		r := ts.do("DELETE", "/connectors/a", "")
		if r.status != 500 || r.errorMessage(t) != `Request timed out while deleting connector "a"` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("worker times out on its own", func(t *testing.T) {
		t.Parallel()
		w := newFakeWorker("w1")
		w.setHook(func(context.Context, string, ...any) error {
			return context.DeadlineExceeded // e.g. reading the config topic to its end took too long
		})
		ts := newServer(t, w, Options{})
		r := ts.do("GET", "/connectors/a/status", "")
		if r.status != 500 || r.errorMessage(t) != `Request timed out while reading the status of connector "a"` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(newFakeWorker("w1"), Options{}))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/connectors")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
}
