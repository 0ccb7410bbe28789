package rest

import (
	"context"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
)

// cluster answers GET /cluster, Sluice's addition: the worker group as the last rebalance
// left it, which every worker knows alike.
func (a *handlers) cluster(w http.ResponseWriter, r *http.Request) error {
	info, err := call(a, r, "reading the cluster", func(ctx context.Context) (api.ClusterInfo, error) {
		return a.w.Cluster(ctx), nil
	})
	if err != nil {
		return err
	}
	info.Workers = orEmpty(info.Workers)
	for i := range info.Workers {
		info.Workers[i].Connectors = orEmpty(info.Workers[i].Connectors)
		info.Workers[i].Tasks = orEmpty(info.Workers[i].Tasks)
	}
	info.Unassigned.Connectors = orEmpty(info.Unassigned.Connectors)
	info.Unassigned.Tasks = orEmpty(info.Unassigned.Tasks)
	writeJSON(w, http.StatusOK, info)
	return nil
}

// workerMetrics answers GET /cluster/workers/{worker}/metrics: the Prometheus metrics of any
// worker of the group, through this one, so the console (or anyone who reaches a single worker,
// through a proxy say) sees the rates of tasks wherever they run. The worker forwards only to
// members of its group, never to a name it does not know. Mounted only on a worker that
// exports metrics, as /metrics is.
func (a *handlers) workerMetrics(metrics http.Handler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		worker := pathParam(r, "worker")
		if err := call0(a, r, "finding worker "+worker, func(ctx context.Context) error { return a.w.WorkerMetrics(ctx, worker) }); err != nil {
			return err
		}
		metrics.ServeHTTP(w, r)
		return nil
	}
}
