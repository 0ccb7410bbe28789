package rest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBrowserRequestsAreRefused replays what a web page could make a user's browser send to a
// worker on localhost: form-encoded and text bodies (no preflight needed), cross-origin calls,
// and a DNS-rebound host name. Kafka Connect clients (JSON bodies, no Origin) still pass.
func TestBrowserRequestsAreRefused(t *testing.T) {
	const create = `{"name":"evil","config":{"connector.class":"mqtt-source","tasks.max":"1"}}`
	for _, tt := range []struct {
		name         string
		opts         Options
		method, path string
		body         string
		headers      []string // name, value pairs; "Host" sets the request's host
		want         int
		wantHeader   []string // name, value pairs the answer must carry
	}{
		{name: "text/plain create (CSRF)", method: "POST", path: "/connectors", body: create,
			headers: []string{"Content-Type", "text/plain"}, want: 415},
		{name: "form create (CSRF)", method: "POST", path: "/connectors", body: "name=evil",
			headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, want: 415},
		{name: "form restart with no body (CSRF)", method: "POST", path: "/connectors/c1/restart",
			headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, want: 415},
		{name: "body without a content type", method: "PUT", path: "/connectors/c1/config", body: `{"tasks.max":"1"}`, want: 415},
		{name: "JSON with a charset", method: "POST", path: "/connectors", body: create,
			headers: []string{"Content-Type", "application/json; charset=utf-8"}, want: 201},
		{name: "restart without a body or content type", method: "POST", path: "/connectors/c1/restart", want: 204},
		{name: "cross-origin read", method: "GET", path: "/connectors", headers: []string{"Origin", "https://evil.example"}, want: 403},
		{name: "cross-origin JSON create", method: "POST", path: "/connectors", body: create,
			headers: []string{"Content-Type", "application/json", "Origin", "https://evil.example"}, want: 403},
		{name: "preflight from an origin not allowed", method: "OPTIONS", path: "/connectors",
			headers: []string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, want: 403},
		{name: "same origin", method: "GET", path: "/connectors", headers: []string{"Origin", "http://{host}"}, want: 200},
		{name: "allowed origin", opts: Options{CORS: CORS{AllowOrigins: []string{"https://console.example"}}},
			method: "GET", path: "/connectors", headers: []string{"Origin", "https://console.example"}, want: 200,
			wantHeader: []string{"Access-Control-Allow-Origin", "https://console.example"}},
		{name: "allowed origin, preflight", opts: Options{CORS: CORS{AllowOrigins: []string{"https://console.example"}}},
			method: "OPTIONS", path: "/connectors", headers: []string{"Origin", "https://console.example", "Access-Control-Request-Method", "POST"},
			want: 204, wantHeader: []string{"Access-Control-Allow-Methods", "GET,POST,HEAD"}},
		{name: "allowed origin, method not allowed", opts: Options{CORS: CORS{AllowOrigins: []string{"*"}}},
			method: "DELETE", path: "/connectors/c1", headers: []string{"Origin", "https://console.example"}, want: 403},
		{name: "allowed origin and method", opts: Options{CORS: CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"GET", "DELETE"}}},
			method: "DELETE", path: "/connectors/c1", headers: []string{"Origin", "https://console.example"}, want: 204},
		{name: "DNS rebinding on loopback", method: "GET", path: "/connectors", headers: []string{"Host", "attacker.example:8083"}, want: 403},
		{name: "localhost on loopback", method: "GET", path: "/connectors", headers: []string{"Host", "localhost:8083"}, want: 200},
		{name: "an allowed host on loopback", opts: Options{AllowedHosts: []string{"worker-1.internal"}},
			method: "GET", path: "/connectors", headers: []string{"Host", "worker-1.internal:8083"}, want: 200},
		{name: "DNS rebinding reaches not even /health", method: "GET", path: "/health", headers: []string{"Host", "attacker.example"}, want: 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorker("w1:8083")
			w.add("c1", mqttConfig(), "RUNNING")
			ts := newServer(t, w, tt.opts)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, ts.srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.headers); i += 2 {
				v := strings.ReplaceAll(tt.headers[i+1], "{host}", req.Host)
				if tt.headers[i] == "Host" {
					req.Host = v
				} else {
					req.Header.Set(tt.headers[i], v)
				}
			}
			resp, err := ts.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s answered %d %s, want %d", tt.method, tt.path, resp.StatusCode, b, tt.want)
			}
			out := response{status: resp.StatusCode, header: resp.Header, body: b}
			if tt.want >= 400 {
				t.Logf("message: %s", out.errorMessage(t))
			}
			if tt.method != http.MethodOptions {
				ts.checkSpec(req, out)
			}
			for i := 0; i+1 < len(tt.wantHeader); i += 2 {
				if got := resp.Header.Get(tt.wantHeader[i]); got != tt.wantHeader[i+1] {
					t.Errorf("header %s = %q, want %q", tt.wantHeader[i], got, tt.wantHeader[i+1])
				}
			}
			if tt.want == 415 || tt.want == 403 {
				w.mu.Lock()
				defer w.mu.Unlock()
				if len(w.calls) > 0 {
					t.Errorf("the refused request reached the worker: %v", w.calls)
				}
			}
		})
	}
}
