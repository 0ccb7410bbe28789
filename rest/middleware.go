package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// maxBodyBytes bounds a request body. Connector configs and offset lists are far smaller.
const maxBodyBytes = 16 << 20

// recoverPanics answers a panicking handler with a 500 error body and logs the stack.
func (a *handlers) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("REST handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", p, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError,
				fmt.Sprintf("internal error while handling %s %s: %v", r.Method, r.URL.Path, p))
		}()
		next.ServeHTTP(w, r)
	})
}

// logRequests logs each request at debug level with its status and duration.
func (a *handlers) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		a.log.LogAttrs(r.Context(), slog.LevelDebug, "REST request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.Int("status", ww.Status()),
			slog.Duration("duration", time.Since(start)))
	})
}

// stripSlashes routes "/connectors/" like "/connectors", as Kafka Connect's server does. Unlike
// chi's middleware of that name it keeps routing on the escaped path when the request has one,
// so a connector name with an escaped "/" still routes as one segment.
func stripSlashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := routingPath(r); len(p) > 1 && strings.HasSuffix(p, "/") {
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				rctx.RoutePath = strings.TrimSuffix(p, "/")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// routingPath is the path chi routes on: the escaped path when it differs from the plain one.
func routingPath(r *http.Request) string {
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
		return rctx.RoutePath
	}
	return urlPath(r)
}

// urlPath is the request's full path as chi sees it at the root: escaped when that differs.
func urlPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// withTimeout gives the request's context the API's request timeout; the worker calls and
// forwards made for the request run under it.
func (a *handlers) withTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type bodyKey struct{}

// bufferBody reads the request body once, so a handler can decode it and, if the worker says
// the request belongs elsewhere, forward the same bytes. The bytes stay readable as r.Body.
func bufferBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit))
				return
			}
			writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the request body: %v", err))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// requestBody returns the bytes bufferBody read (nil when the request had no body).
func requestBody(r *http.Request) []byte {
	b, _ := r.Context().Value(bodyKey{}).([]byte)
	return b
}

// notFound answers a path no route matches.
func (a *handlers) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound,
		fmt.Sprintf("Unknown endpoint %s %s (the API is described at GET /openapi.yaml)", r.Method, r.URL.Path))
}

// allMethods are the methods the 405 answer checks for its Allow header.
var allMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodNotAllowed answers a known path asked with a method it does not have, listing the
// methods it has in the message and the Allow header.
func (a *handlers) methodNotAllowed(root *chi.Mux, w http.ResponseWriter, r *http.Request) {
	path := urlPath(r)
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	var allowed []string
	for _, m := range allMethods {
		if root.Find(chi.NewRouteContext(), m, path) != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		// chi also lands here for methods it does not know; with no route on the path at all
		// the honest answer is 404.
		a.notFound(w, r)
		return
	}
	list := strings.Join(allowed, ", ")
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed,
		fmt.Sprintf("HTTP method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, list))
}
