package rest

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

// healthTimeout bounds GET /health (Kafka Connect's health check timeout), or the request
// timeout when that is shorter.
const healthTimeout = 10 * time.Second

// serverInfo answers GET /: version, commit and Kafka cluster id, plus Sluice's worker info.
func (a *handlers) serverInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := call(a, r, "reading the server info", func(ctx context.Context) (api.ServerInfo, error) {
		return a.w.ServerInfo(ctx), nil
	})
	if err != nil {
		return err
	}
	info.Worker = normalizeWorkerInfo(info.Worker)
	writeJSON(w, http.StatusOK, info)
	return nil
}

// health answers GET /health: 200 healthy, 503 starting, 500 unhealthy (also when the worker
// does not answer in time), always with the {status, message} body.
func (a *handlers) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), min(healthTimeout, a.timeout))
	defer cancel()
	h, err := call(a, r.WithContext(ctx), "checking the worker's health", func(ctx context.Context) (api.Health, error) {
		return a.w.Health(ctx), nil
	})
	if err != nil {
		a.log.Error("health check failed", "error", err)
		h = api.Health{Status: "unhealthy", Message: err.Error()}
	}
	h.Worker = normalizeWorkerInfo(h.Worker)
	writeJSON(w, healthCode(h.Status), h)
}

// healthCode maps a health status to the code Kafka Connect answers it with.
func healthCode(status string) int {
	switch strings.ToLower(status) {
	case "healthy":
		return http.StatusOK
	case "starting":
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
