package rest

import (
	"context"
	"fmt"
	"net/http"
)

// activeTopics is one connector's entry in GET /connectors/{connector}/topics.
type activeTopics struct {
	Topics []string `json:"topics"`
}

// connectorTopics answers GET /connectors/{connector}/topics: {"<name>": {"topics": [...]}},
// the topics the connector has used since it was created or its topics were last reset.
func (a *handlers) connectorTopics(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	topics, err := call(a, r, fmt.Sprintf("reading the active topics of connector %q", name), func(ctx context.Context) ([]string, error) {
		return a.w.ConnectorTopics(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]activeTopics{name: {Topics: orEmpty(topics)}})
	return nil
}

// resetConnectorTopics answers PUT /connectors/{connector}/topics/reset: 202.
func (a *handlers) resetConnectorTopics(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	err := call0(a, r, fmt.Sprintf("resetting the active topics of connector %q", name), func(ctx context.Context) error {
		return a.w.ResetConnectorTopics(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
