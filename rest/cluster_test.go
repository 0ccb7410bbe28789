package rest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/worker/api"
)

// metricsOf is a /metrics handler that names its worker.
func metricsOf(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(`sluice_worker_up{worker="` + id + `"} 1` + "\n"))
	})
}

func TestClusterAnswersWithArrays(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFakeWorker("w1:8083"), Options{})
	r := s.do("GET", "/cluster", "")
	if r.status != 200 {
		t.Fatalf("GET /cluster: %d %s", r.status, r.body)
	}
	// Empty lists are [] rather than null, as everywhere else in the API.
	for _, want := range []string{`"unassigned":{"connectors":[],"tasks":[]}`, `"connectors":[],"tasks":[]`, `"worker_id":"w1:8083"`, `"self":true`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("GET /cluster lacks %s: %s", want, r.body)
		}
	}
}

func TestWorkerMetricsThroughAnyWorker(t *testing.T) {
	t.Parallel()
	other := newServer(t, newFakeWorker("other:8083"), Options{Metrics: metricsOf("other:8083")})
	here := newServer(t, newFakeWorker("here:8083"), Options{Metrics: metricsOf("here:8083")})
	otherURL := other.srv.URL
	here.worker.setHook(func(_ context.Context, method string, args ...any) error {
		if method == "WorkerMetrics" && args[0] == "other:8083" {
			return &api.NotLeaderError{URL: otherURL, What: "worker other:8083"}
		}
		return nil
	})

	tests := []struct {
		name, worker string
		status       int
		body         string
	}{
		{"this worker's own", "here:8083", 200, `worker="here:8083"`},
		{"another member's, forwarded", "other:8083", 200, `worker="other:8083"`},
		{"a name that is no member", "elsewhere:80", 404, "Worker elsewhere:80 is not a member of this cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := here.do("GET", "/cluster/workers/"+tc.worker+"/metrics", "", "Authorization", "Bearer s3cret")
			if r.status != tc.status || !strings.Contains(string(r.body), tc.body) {
				t.Fatalf("got %d %s, want %d with %s", r.status, r.body, tc.status, tc.body)
			}
		})
	}
	got := lastRequest(t, other)
	if got.path != "/cluster/workers/other:8083/metrics" || got.query != "forward=true" || got.header.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("the other worker received %+v", got)
	}
	if len(other.requests()) != 1 {
		t.Fatalf("the other worker received %d requests, want only the forward", len(other.requests()))
	}
}
