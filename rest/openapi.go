package rest

import (
	_ "embed"
	"net/http"
)

// openAPISpec is the OpenAPI 3.0 description of the API, served at GET /openapi.yaml. Tests
// check that it lists exactly the router's routes and that the answers match its schemas.
//
//go:embed openapi.yaml
var openAPISpec []byte

// serveSpec answers GET /openapi.yaml.
func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPISpec)
}
