package rest

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/rest/console"
)

// DefaultRequestTimeout is how long a request may wait on the worker when Options.RequestTimeout
// is zero: Kafka Connect's 90 seconds.
const DefaultRequestTimeout = 90 * time.Second

// Options configures the handler New builds. The zero value is usable.
type Options struct {
	// Logger receives request logs (debug) and server-side failures (error). Nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, is served at GET /metrics (a Prometheus scrape handler).
	Metrics http.Handler
	// Extra, when not nil, is called with the router after the API's own routes are mounted,
	// so the runtime can add routes of its own (internal endpoints, debugging). Those routes
	// get the same middleware (timeout, body buffering, logging, JSON 404/405) but are not
	// in the OpenAPI spec.
	Extra func(chi.Router)
	// HTTPClient forwards requests to the leader or a task's owner. Nil means a client that
	// does not follow redirects; the request's own deadline bounds each forward.
	HTTPClient *http.Client
	// RequestTimeout bounds how long a request waits on the worker (and on a forward). Past
	// it the API answers 500 "Request timed out". Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// CORS are the cross-origin settings (see guardBrowsers).
	CORS CORS
	// AllowedHosts are the host names, besides localhost and addresses, that requests reaching
	// the worker on a loopback address may name in their Host header (see guardBrowsers);
	// the worker's own names belong here. "*" allows any.
	AllowedHosts []string
	// Auth says who may call the API; the zero value lets everyone do everything.
	Auth Auth
}

// New returns the HTTP handler of Sluice's REST API, Kafka Connect 4.0's API over w. Every
// route is listed in the OpenAPI document served at GET /openapi.yaml.
func New(w Worker, opts Options) http.Handler {
	return newRouter(w, opts)
}

// NewServer returns the HTTP server for the API's handler, with time limits on every stage of
// a request that a slow or idle client could otherwise hold open: the headers (10 s), the
// whole request with its body (30 s) and an idle keep-alive connection (2 minutes). Writing
// the answer is bounded by the request timeout.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}

// handlers holds what the API's handlers share.
type handlers struct {
	w       Worker
	log     *slog.Logger
	client  *http.Client
	timeout time.Duration

	cors         CORS
	allowedHosts []string
	auth         Auth
}

// newRouter builds the chi router; tests use it to walk the routes.
func newRouter(w Worker, opts Options) *chi.Mux {
	a := &handlers{w: w, log: opts.Logger, client: opts.HTTPClient, timeout: opts.RequestTimeout, cors: opts.CORS, allowedHosts: opts.AllowedHosts, auth: opts.Auth}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.client == nil {
		a.client = &http.Client{
			// Relay the target's answer as it is, redirects included.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if a.timeout <= 0 {
		a.timeout = DefaultRequestTimeout
	}

	r := chi.NewRouter()
	// The 404 and 405 handlers come first so every route below inherits them.
	r.NotFound(a.notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) { a.methodNotAllowed(r, w, req) })
	r.Use(a.logRequests, a.recoverPanics, a.guardBrowsers, a.authorize, stripSlashes, a.withTimeout, bufferBody)

	r.Get("/", func(w http.ResponseWriter, r *http.Request) { // answers while starting, too
		if err := a.serverInfo(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
	r.Get("/health", a.health)
	r.Get("/openapi.yaml", serveSpec)
	ui := console.Handler()
	r.Method(http.MethodGet, "/ui", ui)
	r.Method(http.MethodGet, "/ui/{file}", ui)
	if opts.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", opts.Metrics)
		r.Get("/cluster/workers/{worker}/metrics", a.handle(a.workerMetrics(opts.Metrics)))
	}
	r.Get("/cluster", a.handle(a.cluster))

	r.Get("/connectors", a.handle(a.listConnectors))
	r.Post("/connectors", a.handle(a.createConnector))
	r.Get("/connectors/{connector}", a.handle(a.getConnector))
	r.Delete("/connectors/{connector}", a.handle(a.deleteConnector))
	r.Get("/connectors/{connector}/config", a.handle(a.getConnectorConfig))
	r.Put("/connectors/{connector}/config", a.handle(a.putConnectorConfig))
	r.Patch("/connectors/{connector}/config", a.handle(a.patchConnectorConfig))
	r.Get("/connectors/{connector}/status", a.handle(a.connectorStatus))
	r.Post("/connectors/{connector}/restart", a.handle(a.restartConnector))
	r.Put("/connectors/{connector}/pause", a.handle(a.pauseConnector))
	r.Put("/connectors/{connector}/resume", a.handle(a.resumeConnector))
	r.Put("/connectors/{connector}/stop", a.handle(a.stopConnector))

	r.Get("/connectors/{connector}/tasks", a.handle(a.taskConfigs))
	r.Post("/connectors/{connector}/tasks", a.handle(a.putTaskConfigs))
	r.Get("/connectors/{connector}/tasks/{task}/status", a.handle(a.taskStatus))
	r.Post("/connectors/{connector}/tasks/{task}/restart", a.handle(a.restartTask))

	r.Get("/connectors/{connector}/offsets", a.handle(a.getOffsets))
	r.Patch("/connectors/{connector}/offsets", a.handle(a.alterOffsets))
	r.Delete("/connectors/{connector}/offsets", a.handle(a.resetOffsets))

	r.Get("/connectors/{connector}/topics", a.handle(a.connectorTopics))
	r.Put("/connectors/{connector}/topics/reset", a.handle(a.resetConnectorTopics))
	r.Get("/connectors/{connector}/prometheus-targets", a.handle(a.prometheusTargets))

	r.Get("/connector-plugins", a.handle(a.listPlugins))
	r.Get("/connector-plugins/{pluginName}/config", a.handle(a.pluginConfig))
	r.Put("/connector-plugins/{pluginName}/config/validate", a.handle(a.validateConfig))

	r.Get("/admin/loggers", a.handle(a.listLoggers))
	r.Get("/admin/loggers/{logger}", a.handle(a.getLogger))
	r.Put("/admin/loggers/{logger}", a.handle(a.setLoggerLevel))

	if opts.Extra != nil {
		opts.Extra(r)
	}
	return r
}

// handlerFunc is a handler that reports failure by returning an error; handle turns it into
// an http.HandlerFunc that answers errors with Kafka Connect's error body (or forwards).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// starter is a worker that can say when it has started: until then the API holds requests
// (within the request timeout) rather than answer them from a worker that has not read its
// topics yet.
type starter interface {
	AwaitStarted(ctx context.Context) error
}

func (a *handlers) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s, ok := a.w.(starter); ok {
			if err := s.AwaitStarted(r.Context()); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	}
}
