package rest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/rest/auth"
)

// credentials writes a users file (alice admin, bob reader, carol without a role) and a tokens
// file (deploy-bot admin, grafana reader) and loads them.
func credentials(t *testing.T) *auth.Credentials {
	t.Helper()
	dir := t.TempDir()
	var users strings.Builder
	for _, u := range []string{"alice", "bob", "carol"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users.WriteString(u + ":" + string(h) + "\n")
	}
	var tokens strings.Builder
	for name, tok := range map[string]string{"deploy-bot": "tok-admin-123", "grafana": "tok-read-456"} {
		sum := sha256.Sum256([]byte(tok))
		tokens.WriteString(name + ":sha256:" + hex.EncodeToString(sum[:]) + "\n")
	}
	c := &auth.Credentials{UsersFile: filepath.Join(dir, "users"), TokensFile: filepath.Join(dir, "tokens")}
	if err := os.WriteFile(c.UsersFile, []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.TokensFile, []byte(tokens.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Load(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthenticationAndRoles(t *testing.T) {
	creds := credentials(t)
	opts := Options{Auth: Auth{Authenticator: creds, Admins: []string{"alice", "deploy-bot"}, Readers: []string{"bob", "grafana"}}}
	basic := func(user, pass string) []string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return []string{"Authorization", r.Header.Get("Authorization")}
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	const create = `{"name":"c2","config":{"connector.class":"mqtt-source","tasks.max":"1"}}`
	for _, tt := range []struct {
		name         string
		method, path string
		body         string
		headers      []string
		want         int
	}{
		{"health stays open", "GET", "/health", "", nil, 200},
		{"no credentials", "GET", "/connectors", "", nil, 401},
		{"a wrong password", "GET", "/connectors", "", basic("alice", "guess"), 401},
		{"an unknown user", "GET", "/connectors", "", basic("mallory", "mallory-pw"), 401},
		{"an unknown token", "GET", "/connectors", "", bearer("tok-guess"), 401},
		{"admin reads", "GET", "/connectors", "", basic("alice", "alice-pw"), 200},
		{"admin writes", "POST", "/connectors", create, basic("alice", "alice-pw"), 201},
		{"reader reads", "GET", "/connectors/c1/config", "", basic("bob", "bob-pw"), 200},
		{"reader writes", "PUT", "/connectors/c1/pause", "", basic("bob", "bob-pw"), 403},
		{"reader validates", "PUT", "/connector-plugins/mqtt-source/config/validate", `{"connector.class":"mqtt-source"}`, basic("bob", "bob-pw"), 403},
		{"no role", "GET", "/connectors", "", basic("carol", "carol-pw"), 403},
		{"admin token writes", "DELETE", "/connectors/c1", "", bearer("tok-admin-123"), 204},
		{"reader token reads", "GET", "/", "", bearer("tok-read-456"), 200},
		{"reader token writes", "POST", "/connectors/c1/restart", "", bearer("tok-read-456"), 403},
		{"internal task configs go to the worker's signature check", "POST", "/connectors/c1/tasks", `[]`, nil, 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorker("w1:8083")
			w.add("c1", mqttConfig(), "RUNNING")
			ts := newServer(t, w, opts)
			resp := ts.do(tt.method, tt.path, tt.body, tt.headers...)
			if resp.status != tt.want {
				t.Fatalf("%s %s answered %d %s, want %d", tt.method, tt.path, resp.status, resp.body, tt.want)
			}
			if tt.want == 401 && !strings.Contains(strings.Join(resp.header.Values("WWW-Authenticate"), ","), "Basic") {
				t.Errorf("401 without a Basic challenge: %v", resp.header)
			}
			if tt.want >= 400 {
				msg := resp.errorMessage(t)
				if strings.Contains(msg, "-pw") || strings.Contains(msg, "tok-") {
					t.Errorf("the answer shows a credential: %s", msg)
				}
			}
		})
	}
}

func TestCredentialsFilesAreReadAgainWhenTheyChange(t *testing.T) {
	creds := credentials(t)
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer tok-read-456")
	if name, ok := creds.Authenticate(r); !ok || name != "grafana" {
		t.Fatalf("before: %q %v", name, ok)
	}
	// Revoke grafana's token: the file changes, and the next check (after the recheck
	// interval) no longer knows it.
	if err := os.WriteFile(creds.TokensFile, []byte("# revoked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := creds.RecheckNow()
	if name, ok := creds.Authenticate(r); ok {
		t.Fatalf("after revoking (%v): still %q", future, name)
	}
}

func TestMalformedCredentialsFilesAreRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, users, tokens, want string
	}{
		{"an MD5 password", "alice:$apr1$abc$def\n", "", "bcrypt"},
		{"a plain password", "alice:secret\n", "", "bcrypt"},
		{"a token in clear", "", "bot:tok-123\n", "name:sha256:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &auth.Credentials{}
			if tt.users != "" {
				c.UsersFile = filepath.Join(dir, tt.name+"-users")
				_ = os.WriteFile(c.UsersFile, []byte(tt.users), 0o600)
			}
			if tt.tokens != "" {
				c.TokensFile = filepath.Join(dir, tt.name+"-tokens")
				_ = os.WriteFile(c.TokensFile, []byte(tt.tokens), 0o600)
			}
			if err := c.Load(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
