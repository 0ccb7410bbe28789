package rest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Auth says who may call the API. With no Authenticator every caller may do everything (a
// worker on a loopback listener, or behind a proxy that authenticates).
//
// With one, every request but GET /health (for probes) and the internal, signed
// POST /connectors/{name}/tasks must carry credentials the Authenticator accepts (401
// otherwise), and the caller's name must have a role: Admins may do everything, Readers only
// GET and HEAD (403 otherwise). "*" in a list stands for every authenticated caller.
type Auth struct {
	Authenticator Authenticator
	Admins        []string
	Readers       []string
}

// Authenticator tells who sent a request, from its credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (name string, ok bool)
}

// RoleHeader is the answer header that tells an authenticated caller its role: admin or
// read (absent when authentication is off, when every caller may do everything).
const RoleHeader = "X-Sluice-Role"

type callerKey struct{}

// Caller is the authenticated name of the caller of a request, "" when authentication is off.
func Caller(ctx context.Context) string {
	name, _ := ctx.Value(callerKey{}).(string)
	return name
}

// authorize applies Auth.
func (a *handlers) authorize(next http.Handler) http.Handler {
	if a.auth.Authenticator == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimSuffix(urlPath(r), "/")
		if r.Method == http.MethodGet && path == "/health" || r.Method == http.MethodPost && internalTasksPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		name, ok := a.auth.Authenticator.Authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="sluice", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "Authentication required: send a user and password (HTTP Basic) or a bearer token")
			return
		}
		admin, reader := listed(a.auth.Admins, name), listed(a.auth.Readers, name)
		switch {
		case admin:
		case reader && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		case reader:
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s may only read: %s %s needs the admin role (rest.auth.admin.users)", name, r.Method, r.URL.Path))
			return
		default:
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s has no role on this worker (rest.auth.admin.users, rest.auth.read.users)", name))
			return
		}
		// The console shows a reader no actions.
		if admin {
			w.Header().Set(RoleHeader, "admin")
		} else {
			w.Header().Set(RoleHeader, "read")
		}
		a.log.Debug("REST caller", "name", name, "method", r.Method, "path", r.URL.Path)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, name)))
	})
}

// internalTasksPath reports whether path is /connectors/{name}/tasks, whose POST is the
// internal endpoint the worker verifies by its signature.
func internalTasksPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/connectors/")
	if !ok {
		return false
	}
	name, ok := strings.CutSuffix(rest, "/tasks")
	return ok && name != "" && !strings.Contains(name, "/")
}

func listed(names []string, name string) bool {
	return slices.Contains(names, "*") || slices.Contains(names, name)
}
