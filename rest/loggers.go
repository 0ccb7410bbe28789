package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/worker/api"
)

// listLoggers answers GET /admin/loggers: {"<logger>": {"level": ..., "last_modified": ...}}.
func (a *handlers) listLoggers(w http.ResponseWriter, r *http.Request) error {
	loggers, err := call(a, r, "listing loggers", func(ctx context.Context) (map[string]api.LoggerLevel, error) {
		return a.w.Loggers(ctx), nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orEmptyMap(loggers))
	return nil
}

// getLogger answers GET /admin/loggers/{logger}: its level; 404 for an unknown logger.
func (a *handlers) getLogger(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "logger")
	level, err := call(a, r, fmt.Sprintf("reading the level of logger %q", name), func(ctx context.Context) (api.LoggerLevel, error) {
		return a.w.Logger(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, level)
	return nil
}

// levelRequest is the body of PUT /admin/loggers/{logger}.
type levelRequest struct {
	Level *string `json:"level"`
}

// setLoggerLevel answers PUT /admin/loggers/{logger} with body {"level": "DEBUG"}: 200 with
// the names of the loggers it changed (the logger and those below it); 400 without a level,
// 404 for a level the worker does not know (as in Kafka Connect).
// Only the worker scope exists: ?scope=worker (the default; Kafka Connect also treats an
// unknown scope as worker). ?scope=cluster, which would set the level on every worker, is
// refused with 400 rather than silently applied to this worker alone.
func (a *handlers) setLoggerLevel(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "logger")
	scope := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("scope")))
	switch scope {
	case "", "worker":
	case "cluster":
		return badRequest("scope=cluster is not supported yet: set the level on each worker with scope=worker")
	default:
		a.log.Warn("unknown logging scope, using worker", "scope", scope)
	}
	var req levelRequest
	if err := decodeBody(r, &req, `a JSON object {"level": "..."}`, decodeOptions{}); err != nil {
		return err
	}
	if req.Level == nil || strings.TrimSpace(*req.Level) == "" {
		return badRequest(`Desired 'level' parameter was not specified in request: the body needs {"level": "..."}`)
	}
	level := strings.TrimSpace(*req.Level)
	changed, err := call(a, r, fmt.Sprintf("setting the level of logger %q to %s", name, level), func(ctx context.Context) ([]string, error) {
		return a.w.SetLoggerLevel(ctx, name, level)
	})
	if errors.Is(err, api.ErrBadRequest) {
		// The worker refuses only a level it does not know, which Kafka Connect answers 404.
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orEmpty(changed))
	return nil
}
