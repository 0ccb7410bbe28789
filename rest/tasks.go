package rest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// taskConfigs answers GET /connectors/{connector}/tasks: [{id:{connector,task}, config}].
func (a *handlers) taskConfigs(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	tasks, err := call(a, r, fmt.Sprintf("reading the tasks of connector %q", name), func(ctx context.Context) ([]api.TaskInfo, error) {
		return a.w.TaskConfigs(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeTaskInfos(tasks))
	return nil
}

// taskStatus answers GET /connectors/{connector}/tasks/{task}/status.
func (a *handlers) taskStatus(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	task, err := taskParam(r)
	if err != nil {
		return err
	}
	st, err := call(a, r, fmt.Sprintf("reading the status of task %d of connector %q", task, name), func(ctx context.Context) (api.TaskState, error) {
		return a.w.TaskStatus(ctx, name, task)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// restartTask answers POST /connectors/{connector}/tasks/{task}/restart: 204. The worker
// that owns the task runs it; others forward.
func (a *handlers) restartTask(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	task, err := taskParam(r)
	if err != nil {
		return err
	}
	err = call0(a, r, fmt.Sprintf("restarting task %d of connector %q", task, name), func(ctx context.Context) error {
		return a.w.RestartTask(ctx, name, task)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putTaskConfigs answers POST /connectors/{connector}/tasks, Kafka Connect's internal endpoint
// through which the worker running a connector hands its task configurations to the leader:
// 204; 400 when the body is not an array of objects. Workers that are not the leader forward it.
func (a *handlers) putTaskConfigs(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	var configs []map[string]string
	if err := decodeBody(r, &configs, "a JSON array of task configurations (objects of strings)", decodeOptions{}); err != nil {
		return err
	}
	if configs == nil {
		return badRequest("the request body must be a JSON array of task configurations, not null")
	}
	for i, c := range configs {
		if c == nil {
			return badRequest("task configuration %d is null: each task's configuration is a JSON object of strings", i)
		}
	}
	err := call0(a, r, fmt.Sprintf("writing the task configurations of connector %q", name), func(ctx context.Context) error {
		return a.w.PutTaskConfigs(ctx, name, configs, sessionkey.Signature{
			Algorithm: r.Header.Get(sessionkey.AlgorithmHeader), Signature: r.Header.Get(sessionkey.Header), Body: requestBody(r)})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
