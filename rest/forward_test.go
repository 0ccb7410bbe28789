package rest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

// notLeaderFor makes w answer the given methods with a NotLeaderError pointing at *target
// (read when the method is called, so servers can point at each other).
func notLeaderFor(w *fakeWorker, target *string, what string, methods ...string) {
	w.setHook(func(_ context.Context, method string, _ ...any) error {
		for _, m := range methods {
			if m == method {
				return &api.NotLeaderError{URL: *target, What: what}
			}
		}
		return nil
	})
}

// lastRequest returns the request a server received last.
func lastRequest(t *testing.T, ts *testServer) seenRequest {
	t.Helper()
	reqs := ts.requests()
	if len(reqs) == 0 {
		t.Fatal("the server received no request")
	}
	return reqs[len(reqs)-1]
}

func query(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestForwardOneHop(t *testing.T) {
	t.Parallel()
	follower := newServer(t, newFakeWorker("follower:8083"), Options{})
	leader := newServer(t, newFakeWorker("leader:8083"), Options{})
	leaderURL := leader.srv.URL + "/" // a trailing slash on the advertised URL is fine
	notLeaderFor(follower.worker, &leaderURL, "leader", "CreateConnector", "RestartConnector", "PutConnectorConfig", "DeleteConnector")

	body := `{"name":"a","config":{"connector.class":"mqtt-source"}}`
	r := follower.do("POST", "/connectors", body, "Authorization", "Bearer s3cret")
	if r.status != 201 || r.header.Get("Location") != "/connectors/a" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d Location %q Content-Type %q: %s", r.status, r.header.Get("Location"), r.header.Get("Content-Type"), r.body)
	}
	if r.obj(t)["name"] != "a" || !leader.worker.called("CreateConnector") {
		t.Fatalf("the leader did not create the connector: %s", r.body)
	}
	got := lastRequest(t, leader)
	if got.method != "POST" || got.path != "/connectors" || got.body != body ||
		got.query != "forward=true" || got.header.Get("Authorization") != "Bearer s3cret" ||
		got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("the leader received %+v", got)
	}

	// Query parameters travel with the request, and the leader's answer comes back as is.
	r = follower.do("POST", "/connectors/a/restart?includeTasks=true&onlyFailed=false", "")
	if r.status != 202 || r.obj(t)["connector"].(map[string]any)["worker_id"] != "leader:8083" {
		t.Fatalf("restart: %d %s", r.status, r.body)
	}
	q := query(t, lastRequest(t, leader).query)
	if !reflect.DeepEqual(q, url.Values{"includeTasks": {"true"}, "onlyFailed": {"false"}, "forward": {"true"}}) {
		t.Fatalf("the leader received query %v", q)
	}

	// 200 versus 201 of PUT config, and 204 of delete, relayed.
	if r := follower.do("PUT", "/connectors/a/config", `{"connector.class":"mqtt-source"}`); r.status != 200 || r.header.Get("Location") != "" {
		t.Fatalf("put existing: %d Location %q", r.status, r.header.Get("Location"))
	}
	if r := follower.do("PUT", "/connectors/b/config", `{"connector.class":"mqtt-source"}`); r.status != 201 || r.header.Get("Location") != "/connectors/b" {
		t.Fatalf("put new: %d Location %q", r.status, r.header.Get("Location"))
	}
	if r := follower.do("DELETE", "/connectors/b", ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}

	// The leader's errors are relayed too.
	r = follower.do("DELETE", "/connectors/nope", "")
	if r.status != 404 || r.errorMessage(t) != `connector "nope" not found` {
		t.Fatalf("relayed error: %d %s", r.status, r.body)
	}
	if follower.worker.called("ConnectorInfo") {
		t.Fatal("reads must not be forwarded")
	}
}

func TestForwardTwoHops(t *testing.T) {
	t.Parallel()
	// a -> b (forward=true) -> c (forward=false), e.g. the leader changed while forwarding.
	a := newServer(t, newFakeWorker("a"), Options{})
	b := newServer(t, newFakeWorker("b"), Options{})
	c := newServer(t, newFakeWorker("c"), Options{})
	c.worker.add("x", mqttConfig(), api.StateRunning)
	notLeaderFor(a.worker, &b.srv.URL, "task owner", "RestartTask")
	notLeaderFor(b.worker, &c.srv.URL, "task owner", "RestartTask")

	r := a.do("POST", "/connectors/x/tasks/0/restart", "")
	if r.status != 204 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if q := lastRequest(t, b).query; q != "forward=true" {
		t.Errorf("b received %q", q)
	}
	if got := lastRequest(t, c); got.query != "forward=false" || got.path != "/connectors/x/tasks/0/restart" {
		t.Errorf("c received %+v", got)
	}
	if args := c.worker.lastCall("RestartTask"); args[0] != "x" || args[1] != 0 {
		t.Errorf("c's worker got %v", args)
	}
}

func TestForwardGivesUp(t *testing.T) {
	t.Parallel()
	t.Run("after two hops", func(t *testing.T) {
		t.Parallel()
		// a -> b -> c, and c still is not the leader: 409, relayed back to the client.
		a := newServer(t, newFakeWorker("a"), Options{})
		b := newServer(t, newFakeWorker("b"), Options{})
		c := newServer(t, newFakeWorker("c"), Options{})
		notLeaderFor(a.worker, &b.srv.URL, "leader", "StopConnector")
		notLeaderFor(b.worker, &c.srv.URL, "leader", "StopConnector")
		notLeaderFor(c.worker, &a.srv.URL, "leader", "StopConnector")
		r := a.do("PUT", "/connectors/x/stop", "")
		if r.status != 409 || !strings.Contains(r.errorMessage(t), "forwarded twice and this worker is still not the leader") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if n := len(a.requests()); n != 1 {
			t.Errorf("a received %d requests, want 1 (no third hop)", n)
		}
	})
	t.Run("forward=false on arrival", func(t *testing.T) {
		t.Parallel()
		target := "http://127.0.0.1:1" // never contacted
		ts := setup(t)
		notLeaderFor(ts.worker, &target, "leader", "DeleteConnector")
		r := ts.do("DELETE", "/connectors/x?forward=false", "")
		if r.status != 409 || !strings.Contains(r.errorMessage(t), "still not the leader") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("leader unknown", func(t *testing.T) {
		t.Parallel()
		unknown := ""
		ts := setup(t)
		notLeaderFor(ts.worker, &unknown, "leader", "CreateConnector")
		r := ts.do("POST", "/connectors", `{"name":"a","config":{"connector.class":"mqtt-source"}}`)
		if r.status != 409 || !strings.Contains(r.errorMessage(t), "leader unknown") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("bad forward parameter", func(t *testing.T) {
		t.Parallel()
		target := "http://127.0.0.1:1"
		ts := setup(t)
		notLeaderFor(ts.worker, &target, "leader", "DeleteConnector")
		if r := ts.do("DELETE", "/connectors/x?forward=sideways", ""); r.status != 400 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("target unreachable", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		ts := setup(t)
		notLeaderFor(ts.worker, &deadURL, "leader", "DeleteConnector")
		r := ts.do("DELETE", "/connectors/x", "")
		if r.status != 500 || !strings.Contains(r.errorMessage(t), "could not forward the request to the leader at "+deadURL) {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("invalid target URL", func(t *testing.T) {
		t.Parallel()
		bad := "not a url"
		ts := setup(t)
		notLeaderFor(ts.worker, &bad, "leader", "DeleteConnector")
		r := ts.do("DELETE", "/connectors/x", "")
		if r.status != 500 || !strings.Contains(r.errorMessage(t), `invalid URL "not a url"`) {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestForwardTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the stuck handler return
	w := newFakeWorker("w1")
	ts := newServer(t, w, Options{RequestTimeout: 200 * time.Millisecond})
	notLeaderFor(w, &stuck.URL, "leader", "DeleteConnector")
	r := ts.do("DELETE", "/connectors/x", "")
	if r.status != 500 || r.errorMessage(t) != "Request timed out while forwarding the request to the leader at "+stuck.URL {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
