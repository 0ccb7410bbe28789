package rest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
)

// prometheusTargets answers GET /connectors/{connector}/prometheus-targets with a Prometheus
// HTTP service-discovery document: one target group per scrape endpoint of the connector's
// RUNNING tasks, wherever in the cluster they run. Point an http_sd_configs entry at it and
// Prometheus follows the tasks as they move between workers.
func (a *handlers) prometheusTargets(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	groups, err := call(a, r, fmt.Sprintf("listing the Prometheus targets of connector %q", name), func(ctx context.Context) ([]api.TargetGroup, error) {
		return a.w.PrometheusTargets(ctx, name)
	})
	if err != nil {
		return err
	}
	if groups == nil {
		groups = []api.TargetGroup{}
	}
	writeJSON(w, http.StatusOK, groups)
	return nil
}
