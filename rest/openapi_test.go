package rest

import (
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/worker/api"
)

// TestSpecParses checks that openapi.yaml is a valid OpenAPI 3.0 document.
func TestSpecParses(t *testing.T) {
	doc := spec(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s %s has no operationId or summary", method, path)
			}
		}
	}
}

// TestSpecMatchesRoutes checks that the router and the spec list the same (method, path)
// pairs, both ways, so neither can drift from the other.
func TestSpecMatchesRoutes(t *testing.T) {
	mux := newRouter(newFakeWorker("w1"), Options{Metrics: http.NotFoundHandler()})
	var routes []string
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var specOps []string
	for path, item := range spec(t).Paths.Map() {
		for method := range item.Operations() {
			specOps = append(specOps, method+" "+path)
		}
	}
	sort.Strings(routes)
	sort.Strings(specOps)
	for _, r := range routes {
		if !slices.Contains(specOps, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, o := range specOps {
		if !slices.Contains(routes, o) {
			t.Errorf("openapi.yaml has %s, which the router does not", o)
		}
	}
	if len(routes) < 30 {
		t.Errorf("only %d routes walked: %v", len(routes), routes)
	}
}

// TestSpecSchemasMatchTypes checks each response schema against the Go type the API encodes:
// the same JSON properties, and required exactly when the field is not omitempty. A field
// added to worker/api.go then fails here until the spec describes it.
func TestSpecSchemasMatchTypes(t *testing.T) {
	schemas := spec(t).Components.Schemas
	types := map[string]any{
		"Error":                  errorBody{},
		"ServerInfo":             api.ServerInfo{},
		"WorkerInfo":             api.WorkerInfo{},
		"Health":                 api.Health{},
		"ClusterInfo":            api.ClusterInfo{},
		"ClusterWork":            api.ClusterWork{},
		"ClusterWorker":          api.ClusterWorker{},
		"HeldWork":               api.HeldWork{},
		"TaskID":                 api.TaskID{},
		"ConnectorInfo":          api.ConnectorInfo{},
		"ConnectorState":         api.ConnectorState{},
		"TaskState":              api.TaskState{},
		"ConnectorStatus":        api.ConnectorStatus{},
		"TaskInfo":               api.TaskInfo{},
		"ConnectorOffset":        api.ConnectorOffset{},
		"ConnectorOffsets":       api.ConnectorOffsets{},
		"Message":                message{},
		"PluginInfo":             api.PluginInfo{},
		"ConfigKeyInfo":          api.ConfigKeyInfo{},
		"ConfigValueInfo":        api.ConfigValueInfo{},
		"ConfigInfo":             api.ConfigInfo{},
		"ConfigInfos":            api.ConfigInfos{},
		"LoggerLevel":            api.LoggerLevel{},
		"LevelRequest":           levelRequest{},
		"CreateConnectorRequest": createRequest{},
	}
	for name, v := range types {
		ref := schemas[name]
		if ref == nil {
			t.Errorf("openapi.yaml has no schema %s", name)
			continue
		}
		props, required := jsonFields(reflect.TypeOf(v))
		var specProps []string
		for p := range ref.Value.Properties {
			specProps = append(specProps, p)
		}
		sort.Strings(specProps)
		if !slices.Equal(props, specProps) {
			t.Errorf("schema %s has properties %v, the Go type %v", name, specProps, props)
		}
		specRequired := slices.Sorted(slices.Values(ref.Value.Required))
		// Request bodies may be stricter than the Go types that decode them.
		if !strings.HasSuffix(name, "Request") && !slices.Equal(required, specRequired) {
			t.Errorf("schema %s requires %v, the Go type always has %v", name, specRequired, required)
		}
		if ap := ref.Value.AdditionalProperties.Has; !strings.HasSuffix(name, "Request") && (ap == nil || *ap) {
			t.Errorf("schema %s should say additionalProperties: false", name)
		}
	}
}

// jsonFields returns a struct's JSON property names and those always present (not omitempty),
// both sorted.
func jsonFields(typ reflect.Type) (props, required []string) {
	for f := range typ.Fields() {
		tag, ok := f.Tag.Lookup("json")
		if !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		props = append(props, name)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	sort.Strings(props)
	sort.Strings(required)
	return props, required
}
