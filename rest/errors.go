package rest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
)

// errorBody is Kafka Connect's error answer: {"error_code": 404, "message": "..."}.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

// httpError is a failure whose status the API decides itself: a bad query parameter, a body
// that is not what the endpoint takes.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// badRequest is a 400 with a formatted message.
func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// conflict is a 409 with a formatted message.
func conflict(format string, args ...any) error {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf(format, args...)}
}

// timeoutError says a request ran past the request timeout and what it was waiting for.
type timeoutError struct {
	what string // "creating connector \"x\"", "forwarding the request to ..."
	err  error
}

func (e *timeoutError) Error() string { return "Request timed out while " + e.what }
func (e *timeoutError) Unwrap() error { return e.err }

// statusOf maps an error to its HTTP status the way Kafka Connect does.
func statusOf(err error) int {
	var he *httpError
	var te *timeoutError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &te):
		return http.StatusInternalServerError
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, api.ErrExists), errors.Is(err, api.ErrRebalance):
		return http.StatusConflict
	case errors.Is(err, api.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, api.ErrForbidden):
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// fail answers a request that failed: a *worker.NotLeaderError forwards the request to the
// worker it belongs on, anything else becomes an error body with the mapped status.
func (a *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var nl *api.NotLeaderError
	if errors.As(err, &nl) {
		a.forward(w, r, nl)
		return
	}
	status := statusOf(err)
	level := slog.LevelDebug
	if status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	a.log.Log(r.Context(), level, "REST request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	writeError(w, status, err.Error())
}

// writeError writes Kafka Connect's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{ErrorCode: status, Message: msg})
}
