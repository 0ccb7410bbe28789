package connect

// Endpoint is a network endpoint a task serves, for others to find: a Prometheus scrape
// target, say. The runtime publishes a task's endpoints with its status, so every worker's
// REST API can list them wherever the task runs.
type Endpoint struct {
	// Kind says what is served; "prometheus" is a scrape endpoint.
	Kind string `json:"kind"`
	// Address is the host:port the task actually listens on. A wildcard or empty host
	// (0.0.0.0, ::) is replaced by the worker's advertised host when published.
	Address string `json:"address"`
	// Path is the HTTP path, like "/metrics".
	Path string `json:"path,omitempty"`
	// Labels describe the endpoint (for Prometheus: target labels).
	Labels map[string]string `json:"labels,omitempty"`
}

// EndpointKindPrometheus is the Kind of a Prometheus scrape endpoint.
const EndpointKindPrometheus = "prometheus"

// Endpointer is implemented by tasks that serve endpoints. The runtime asks once the task's
// Start has returned without error, and forgets the endpoints when the task stops.
type Endpointer interface {
	Endpoints() []Endpoint
}
