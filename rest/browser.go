package rest

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Browser safety: a web page the user of a worker opens can make the browser send requests to
// the worker (a worker on localhost, or on the user's network). Three checks keep such pages
// out, as Kafka Connect's settings name them where it has them:
//
//   - Request bodies must be JSON (415 otherwise). A page can send a cross-site POST without
//     asking first only with a form's content types (text/plain, form encodings); a JSON
//     body needs a preflight, which the origin check refuses.
//   - A request that names an Origin other than the worker's own is refused (403) unless
//     access.control.allow.origin allows it, with a method access.control.allow.methods
//     allows; an allowed one gets the CORS answer headers, and preflights are answered.
//   - A request that reached the worker on a loopback address must name a loopback host
//     (localhost, 127.0.0.1, [::1]) or one of rest.allowed.hosts (403 otherwise): a page whose
//     DNS name an attacker points at 127.0.0.1 (DNS rebinding) is same-origin to the browser
//     and would pass the other checks.

// CORS are the cross-origin settings: Kafka Connect's access.control.allow.origin and
// access.control.allow.methods.
type CORS struct {
	// AllowOrigins are the origins (scheme://host[:port]) whose pages may call the API; "*"
	// allows every origin. Empty allows none but the worker's own.
	AllowOrigins []string
	// AllowMethods are the methods cross-origin requests may use; empty means GET, POST and
	// HEAD (Kafka Connect's default).
	AllowMethods []string
}

// defaultCORSMethods are the methods allowed cross-origin when none are configured.
var defaultCORSMethods = []string{http.MethodGet, http.MethodPost, http.MethodHead}

// corsAllowedHeaders are the request headers a cross-origin caller may send.
const corsAllowedHeaders = "Content-Type, Accept, Authorization, X-Requested-With, Origin"

// guardBrowsers applies the checks above.
func (a *handlers) guardBrowsers(next http.Handler) http.Handler {
	methods := a.cors.AllowMethods
	if len(methods) == 0 {
		methods = defaultCORSMethods
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.hostAllowed(r) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Host %q is not allowed on a loopback listener: name the worker "+
				"by localhost or its IP address, or add the host to rest.allowed.hosts", r.Host))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(r, origin) {
			if !a.originAllowed(origin) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("Cross-origin request from %q refused: the origin is not "+
					"in access.control.allow.origin", origin))
				return
			}
			method := r.Method
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				method = r.Header.Get("Access-Control-Request-Method")
			}
			if !slices.ContainsFunc(methods, func(m string) bool { return strings.EqualFold(m, method) }) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("Cross-origin %s request from %q refused: the method is not "+
					"in access.control.allow.methods (%s)", method, origin, strings.Join(methods, ",")))
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if preflight {
				h.Set("Access-Control-Allow-Methods", strings.Join(methods, ","))
				h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
				h.Set("Access-Control-Max-Age", "1800")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if err := jsonBodyOnly(r); err != nil {
			writeError(w, http.StatusUnsupportedMediaType, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// jsonBodyOnly refuses a request that carries a body, or names a content type, other than JSON.
func jsonBodyOnly(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	ct := r.Header.Get("Content-Type")
	hasBody := r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
	if ct == "" {
		if hasBody {
			return fmt.Errorf("the request has a body but no Content-Type: send it as application/json")
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q is not supported: send application/json", ct)
	}
	return nil
}

// sameOrigin reports whether origin is the worker's own, as the request reached it.
func sameOrigin(r *http.Request, origin string) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(origin, scheme+"://"+r.Host)
}

func (a *handlers) originAllowed(origin string) bool {
	for _, o := range a.cors.AllowOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// hostAllowed checks the Host of a request that reached the worker on a loopback address.
func (a *handlers) hostAllowed(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true
	}
	tcp, ok := local.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return true // DNS rebinding needs a name; an address is what the caller meant
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, h := range a.allowedHosts {
		if h == "*" || strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}
