package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
)

var _ Worker = (*fakeWorker)(nil)

// loadSpec parses and validates the embedded OpenAPI document once per test binary.
var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPISpec)
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

func spec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadSpec()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// testServer is one worker's API over HTTP, with the router kept for matching requests to
// the spec.
type testServer struct {
	t      *testing.T
	srv    *httptest.Server
	mux    *chi.Mux
	worker *fakeWorker
	// extraRoutes marks a server with routes added through Options.Extra, which the spec
	// does not describe: their answers are not checked against it.
	extraRoutes bool
	// seen records the requests the server received (method, escaped path and query, body).
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method, path, query, body string
	header                    http.Header
}

// newServer starts a test server over w. opts.Logger defaults to one that writes to t.Log.
func newServer(t *testing.T, w *fakeWorker, opts Options) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ts := &testServer{t: t, worker: w, mux: newRouter(w, opts)}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ts.mu.Lock()
		ts.seen = append(ts.seen, seenRequest{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery,
			body: string(body), header: r.Header.Clone()})
		ts.mu.Unlock()
		ts.mux.ServeHTTP(rw, r)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

// requests returns what the server received.
func (ts *testServer) requests() []seenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seenRequest(nil), ts.seen...)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is an answer, decoded.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return v
}

// obj decodes the body as a JSON object.
func (r response) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("body %s is not a JSON object", r.body)
	}
	return m
}

// errorMessage checks the body is exactly Kafka Connect's error body for the status and
// returns the message.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	m := r.obj(t)
	if len(m) != 2 || m["error_code"] != float64(r.status) {
		t.Fatalf("error body %s: want exactly {error_code: %d, message}", r.body, r.status)
	}
	msg, ok := m["message"].(string)
	if !ok || msg == "" {
		t.Fatalf("error body %s has no message", r.body)
	}
	return msg
}

// do sends a request (body "" for none) and checks the answer against the OpenAPI document.
func (ts *testServer) do(method, path, body string, headers ...string) response {
	t := ts.t
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	ts.checkSpec(req, out)
	return out
}

// checkSpec checks that the answer is one the spec declares for the route: a declared status
// (or the operation's default), and a body that matches the declared schema. Answers for paths
// with no route (404) and wrong methods (405) must be error bodies.
func (ts *testServer) checkSpec(req *http.Request, resp response) {
	t := ts.t
	t.Helper()
	doc := spec(t)
	path := req.URL.EscapedPath()
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	pattern := ts.mux.Find(chi.NewRouteContext(), req.Method, path)
	var op *openapi3.Operation
	if item := doc.Paths.Value(pattern); pattern != "" && item != nil {
		op = item.GetOperation(req.Method)
	}
	if op == nil {
		if ts.extraRoutes && pattern != "" {
			return
		}
		if resp.status != http.StatusNotFound && resp.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s answered %d but the spec has no such operation", req.Method, req.URL.Path, resp.status)
		}
		checkSchema(t, doc.Components.Schemas["Error"].Value, resp)
		return
	}
	ref := op.Responses.Status(resp.status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil {
		t.Errorf("%s %s answered %d, which the spec does not declare", req.Method, pattern, resp.status)
		return
	}
	declared := ref.Value.Content
	if len(declared) == 0 {
		if len(resp.body) != 0 {
			t.Errorf("%s %s %d: the spec declares no body, got %s", req.Method, pattern, resp.status, resp.body)
		}
		return
	}
	ct := resp.header.Get("Content-Type")
	mt := declared.Get(ct)
	if mt == nil {
		t.Errorf("%s %s %d: Content-Type %q is not one the spec declares", req.Method, pattern, resp.status, ct)
		return
	}
	if ct == "application/json" {
		checkSchema(t, mt.Schema.Value, resp)
	}
}

func checkSchema(t *testing.T, schema *openapi3.Schema, resp response) {
	t.Helper()
	var v any
	if err := json.Unmarshal(resp.body, &v); err != nil {
		t.Errorf("answer %d body %q is not JSON: %v", resp.status, resp.body, err)
		return
	}
	if err := schema.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		t.Errorf("answer %d body %s does not match the spec: %v", resp.status, resp.body, err)
	}
}

// mqttConfig is a valid source configuration.
func mqttConfig() map[string]string {
	return map[string]string{"connector.class": "mqtt-source", "tasks.max": "1", "mqtt.server.uri": "tcp://localhost:1883"}
}

// setup starts a server over a fresh fake with the given connectors (RUNNING).
func setup(t *testing.T, connectors ...string) *testServer {
	t.Helper()
	w := newFakeWorker("w1:8083")
	for _, c := range connectors {
		w.add(c, mqttConfig(), "RUNNING")
	}
	return newServer(t, w, Options{})
}
