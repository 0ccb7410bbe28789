package rest

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestConsoleIsServedWithTheAPIsAuthentication: the console's page and files are served under
// /ui/ with a Content-Security-Policy, need the read role like every GET, and the answers tell
// the page the caller's role.
func TestConsoleIsServedWithTheAPIsAuthentication(t *testing.T) {
	creds := credentials(t)
	opts := Options{Auth: Auth{Authenticator: creds, Admins: []string{"alice"}, Readers: []string{"bob"}}}
	w := newFakeWorker("w1:8083")
	ts := newServer(t, w, opts)
	basic := func(user string) []string {
		return []string{"Authorization", "Basic " + b64(user+":"+user+"-pw")}
	}
	for _, tt := range []struct {
		path, user       string
		status           int
		contentType, has string
		role             string
	}{
		{"/ui/", "", 401, "", "", ""},
		{"/ui/", "alice", 200, "text/html", `<script src="/ui/app.js">`, "admin"},
		{"/ui", "bob", 200, "text/html", `<main id="view">`, "read"},
		{"/ui/app.js", "bob", 200, "text/javascript", "X-Sluice-Role", "read"},
		{"/ui/app.css", "alice", 200, "text/css", "body.read-only .admin-only", "admin"},
		{"/ui/connectors", "alice", 200, "text/html", `<main id="view">`, "admin"},
		{"/ui/..%2f..%2fetc%2fpasswd", "alice", 200, "text/html", `<main id="view">`, "admin"},
	} {
		var headers []string
		if tt.user != "" {
			headers = basic(tt.user)
		}
		resp := ts.do("GET", tt.path, "", headers...)
		if resp.status != tt.status {
			t.Errorf("GET %s as %q: %d, want %d", tt.path, tt.user, resp.status, tt.status)
			continue
		}
		if tt.status != 200 {
			continue
		}
		if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.contentType)
		}
		if !strings.Contains(string(resp.body), tt.has) {
			t.Errorf("GET %s: body without %q", tt.path, tt.has)
		}
		if csp := resp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
		if role := resp.header.Get(RoleHeader); role != tt.role {
			t.Errorf("GET %s as %s: role %q, want %q", tt.path, tt.user, role, tt.role)
		}
	}
}
