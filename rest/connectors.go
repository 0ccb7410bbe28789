package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/worker/api"
)

// expanded is one connector in GET /connectors?expand=status&expand=info.
type expanded struct {
	Status *api.ConnectorStatus `json:"status,omitempty"`
	Info   *api.ConnectorInfo   `json:"info,omitempty"`
}

// listConnectors answers GET /connectors: the names, or with ?expand=status and/or
// ?expand=info (repeated, or comma-separated) a map from name to the asked expansions.
// Unknown expansions are ignored and a connector deleted meanwhile is left out, as in Kafka
// Connect.
func (a *handlers) listConnectors(w http.ResponseWriter, r *http.Request) error {
	names, err := call(a, r, "listing connectors", a.w.Connectors)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("expand") {
		writeJSON(w, http.StatusOK, orEmpty(names))
		return nil
	}
	var withStatus, withInfo bool
	for _, v := range q["expand"] {
		for e := range strings.SplitSeq(v, ",") {
			switch strings.ToLower(strings.TrimSpace(e)) {
			case "status":
				withStatus = true
			case "info":
				withInfo = true
			default:
				a.log.Debug("ignoring unknown expansion", "expand", e)
			}
		}
	}
	out := make(map[string]expanded, len(names))
	for _, name := range names {
		var e expanded
		if withStatus {
			st, err := call(a, r, fmt.Sprintf("reading the status of connector %q", name),
				func(ctx context.Context) (api.ConnectorStatus, error) { return a.w.ConnectorStatus(ctx, name) })
			if errors.Is(err, api.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			st = normalizeStatus(st)
			e.Status = &st
		}
		if withInfo {
			info, err := call(a, r, fmt.Sprintf("reading connector %q", name),
				func(ctx context.Context) (api.ConnectorInfo, error) { return a.w.ConnectorInfo(ctx, name) })
			if errors.Is(err, api.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			info = normalizeInfo(info)
			e.Info = &info
		}
		out[name] = e
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createRequest is the body of POST /connectors.
type createRequest struct {
	Name         *string   `json:"name"`
	Config       configMap `json:"config"`
	InitialState *string   `json:"initial_state"`
}

// initialStates are the values initial_state takes (case-insensitive, as in Kafka Connect).
var initialStates = []string{"RUNNING", "PAUSED", "STOPPED"}

// createConnector answers POST /connectors: 201 with a Location header and the
// ConnectorInfo; 400 for a missing name or config, a config "name" that differs from the name,
// or an unknown initial_state; 409 when the connector exists.
func (a *handlers) createConnector(w http.ResponseWriter, r *http.Request) error {
	var req createRequest
	const what = `a JSON object {"name": "...", "config": {...}, "initial_state": "RUNNING|PAUSED|STOPPED"}`
	if err := decodeBody(r, &req, what, decodeOptions{}); err != nil {
		return err
	}
	name := ""
	if req.Name != nil {
		name = strings.TrimSpace(*req.Name) // Kafka Connect trims the name
	}
	if name == "" {
		return badRequest(`the connector name is missing: the request body needs a non-empty "name"`)
	}
	if req.Config == nil {
		return badRequest(`the connector configuration is missing: the request body needs a "config" object`)
	}
	if err := checkConfigName(name, req.Config, `the request's "name"`); err != nil {
		return err
	}
	state := ""
	if req.InitialState != nil {
		state = strings.ToUpper(strings.TrimSpace(*req.InitialState))
		if !slices.Contains(initialStates, state) {
			return badRequest("initial_state must be one of %s, not %q", strings.Join(initialStates, ", "), *req.InitialState)
		}
	}
	info, err := call(a, r, fmt.Sprintf("creating connector %q", name), func(ctx context.Context) (api.ConnectorInfo, error) {
		return a.w.CreateConnector(ctx, name, req.Config, state)
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", connectorLocation(name))
	writeJSON(w, http.StatusCreated, normalizeInfo(info))
	return nil
}

// checkConfigName checks that a config's "name", when it has one, is the connector's name,
// and sets it when it has none, as Kafka Connect does. where says where the name came from.
func checkConfigName(name string, config map[string]string, where string) error {
	got, ok := config["name"]
	if !ok {
		config["name"] = name
		return nil
	}
	if got != name {
		return badRequest("the connector name in the configuration (%q) does not match %s (%q)", got, where, name)
	}
	return nil
}

// connectorLocation is the Location of a created connector.
func connectorLocation(name string) string {
	return "/connectors/" + url.PathEscape(name)
}

// getConnector answers GET /connectors/{connector} with its ConnectorInfo.
func (a *handlers) getConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	info, err := call(a, r, fmt.Sprintf("reading connector %q", name), func(ctx context.Context) (api.ConnectorInfo, error) {
		return a.w.ConnectorInfo(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeInfo(info))
	return nil
}

// deleteConnector answers DELETE /connectors/{connector}: 204.
func (a *handlers) deleteConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	err := call0(a, r, fmt.Sprintf("deleting connector %q", name), func(ctx context.Context) error {
		return a.w.DeleteConnector(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getConnectorConfig answers GET /connectors/{connector}/config: the stored flat map, with
// ${...} placeholders unresolved.
func (a *handlers) getConnectorConfig(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	cfg, err := call(a, r, fmt.Sprintf("reading the configuration of connector %q", name), func(ctx context.Context) (map[string]string, error) {
		return a.w.ConnectorConfig(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orEmptyMap(cfg))
	return nil
}

// configWhat describes the body of PUT .../config and validate, for messages.
const configWhat = `a JSON object of settings {"connector.class": "...", ...}`

// putConnectorConfig answers PUT /connectors/{connector}/config: 201 (with Location) when it
// created the connector, 200 when it replaced the configuration; 400 when the body's "name"
// is not the connector in the path.
func (a *handlers) putConnectorConfig(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	var cfg configMap
	if err := decodeBody(r, &cfg, configWhat, decodeOptions{}); err != nil {
		return err
	}
	if cfg == nil {
		return badRequest("the request body must be %s, not null", configWhat)
	}
	if err := checkConfigName(name, cfg, "the connector name in the URL"); err != nil {
		return err
	}
	type result struct {
		info    api.ConnectorInfo
		created bool
	}
	res, err := call(a, r, fmt.Sprintf("writing the configuration of connector %q", name), func(ctx context.Context) (result, error) {
		info, created, err := a.w.PutConnectorConfig(ctx, name, cfg)
		return result{info, created}, err
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.created {
		w.Header().Set("Location", connectorLocation(name))
		status = http.StatusCreated
	}
	writeJSON(w, status, normalizeInfo(res.info))
	return nil
}

// patchConnectorConfig answers PATCH /connectors/{connector}/config: the body's settings are
// merged into the configuration and a JSON null removes a setting; 200 with the ConnectorInfo.
// The connector's "name" can be neither changed nor removed.
func (a *handlers) patchConnectorConfig(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	var patch patchMap
	const what = `a JSON object of settings to change, null to remove one`
	if err := decodeBody(r, &patch, what, decodeOptions{}); err != nil {
		return err
	}
	if patch == nil {
		return badRequest("the request body must be %s, not null", what)
	}
	if v, ok := patch["name"]; ok {
		if v == nil {
			return badRequest("the connector's \"name\" setting cannot be removed")
		}
		if *v != name {
			return badRequest("the connector name in the patch (%q) does not match the connector name in the URL (%q)", *v, name)
		}
	}
	info, err := call(a, r, fmt.Sprintf("patching the configuration of connector %q", name), func(ctx context.Context) (api.ConnectorInfo, error) {
		return a.w.PatchConnectorConfig(ctx, name, patch)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeInfo(info))
	return nil
}

// connectorStatus answers GET /connectors/{connector}/status.
func (a *handlers) connectorStatus(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	st, err := call(a, r, fmt.Sprintf("reading the status of connector %q", name), func(ctx context.Context) (api.ConnectorStatus, error) {
		return a.w.ConnectorStatus(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeStatus(st))
	return nil
}

// restartConnector answers POST /connectors/{connector}/restart?includeTasks=&onlyFailed=.
// With both false (the default) it restarts the connector alone and answers 204 with no body,
// as Kafka Connect does for compatibility; otherwise 202 with the status, the instances being
// restarted shown RESTARTING.
func (a *handlers) restartConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	includeTasks, err := boolQuery(r, "includeTasks", false)
	if err != nil {
		return err
	}
	onlyFailed, err := boolQuery(r, "onlyFailed", false)
	if err != nil {
		return err
	}
	st, err := call(a, r, fmt.Sprintf("restarting connector %q", name), func(ctx context.Context) (*api.ConnectorStatus, error) {
		return a.w.RestartConnector(ctx, name, includeTasks, onlyFailed)
	})
	if err != nil {
		return err
	}
	if !includeTasks && !onlyFailed {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if st == nil {
		a.log.Warn("the worker restarted a connector's tasks but returned no status", "connector", name)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	writeJSON(w, http.StatusAccepted, normalizeStatus(*st))
	return nil
}

// pauseConnector answers PUT /connectors/{connector}/pause: 202, the pause happens
// asynchronously.
func (a *handlers) pauseConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	err := call0(a, r, fmt.Sprintf("pausing connector %q", name), func(ctx context.Context) error {
		return a.w.PauseConnector(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// resumeConnector answers PUT /connectors/{connector}/resume: 202. It also starts a STOPPED
// connector.
func (a *handlers) resumeConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	err := call0(a, r, fmt.Sprintf("resuming connector %q", name), func(ctx context.Context) error {
		return a.w.ResumeConnector(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// stopConnector answers PUT /connectors/{connector}/stop: 204, idempotent.
func (a *handlers) stopConnector(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	err := call0(a, r, fmt.Sprintf("stopping connector %q", name), func(ctx context.Context) error {
		return a.w.StopConnector(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
