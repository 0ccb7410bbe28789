// Package api holds the shapes of Kafka Connect's REST API that the worker answers with
// (ConnectorInfo, ConnectorStatus, ConfigInfos, ...), Sluice's additions (the cluster view,
// health), and the error kinds that the rest package turns into status codes.
package api

import (
	"errors"
	"fmt"
	"time"
)

// The types below are the shapes of Kafka Connect's REST API; the rest package serves them
// as JSON unchanged.

// ServerInfo answers GET /.
type ServerInfo struct {
	Version        string      `json:"version"`
	Commit         string      `json:"commit"`
	KafkaClusterID string      `json:"kafka_cluster_id"`
	Worker         *WorkerInfo `json:"sluice,omitempty"`
}

// WorkerInfo is Sluice's addition to GET / and /health: who this worker is in the cluster.
type WorkerInfo struct {
	WorkerID     string   `json:"worker_id"`
	Leader       bool     `json:"leader"`
	LeaderURL    string   `json:"leader_url,omitempty"`
	Generation   int32    `json:"generation"`
	ConfigOffset int64    `json:"config_offset"`
	Connectors   []string `json:"connectors"`
	Tasks        []TaskID `json:"tasks"`
}

// ClusterInfo answers GET /cluster, Sluice's addition: the worker group as the last rebalance
// left it, seen from the worker that answers.
type ClusterInfo struct {
	Generation int32 `json:"generation"`
	// Leader is the leader's worker id, and LeaderURL its REST URL; empty while not known.
	Leader    string `json:"leader"`
	LeaderURL string `json:"leader_url"`
	// ConfigOffset is how far the leader had read the config topic when it assigned the work;
	// a worker whose own offset is lower is catching up.
	ConfigOffset int64 `json:"config_offset"`
	// Rebalancing says a rebalance round is underway (or this worker has no assignment yet).
	Rebalancing bool            `json:"rebalancing"`
	Workers     []ClusterWorker `json:"workers"`
	// Held is the work of a worker that left, waiting scheduled.rebalance.max.delay.ms for it
	// to come back before it moves; absent when nothing waits.
	Held *HeldWork `json:"held,omitempty"`
	// Unassigned is configured work no worker runs: between the two rounds of a move, or
	// before the leader has assigned a new connector.
	Unassigned ClusterWork `json:"unassigned"`
}

// ClusterWork is a set of connectors and tasks.
type ClusterWork struct {
	Connectors []string `json:"connectors"`
	Tasks      []TaskID `json:"tasks"`
}

// ClusterWorker is one worker of the group.
type ClusterWorker struct {
	WorkerID string `json:"worker_id"`
	URL      string `json:"url"`
	Leader   bool   `json:"leader"`
	// Self marks the worker that answered.
	Self      bool      `json:"self"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	UptimeMs  int64     `json:"uptime_ms"`
	// ConfigOffset is how far the worker had read the config topic when it last joined (now,
	// for the worker that answers).
	ConfigOffset int64 `json:"config_offset"`
	// CatchingUp says why the worker's view of the configurations is behind the leader's
	// (known for the worker that answers only); empty when it is not.
	CatchingUp string   `json:"catching_up,omitempty"`
	Connectors []string `json:"connectors"`
	Tasks      []TaskID `json:"tasks"`
}

// HeldWork is lost work waiting for its worker.
type HeldWork struct {
	Connectors []string  `json:"connectors"`
	Tasks      []TaskID  `json:"tasks"`
	Since      time.Time `json:"since"`
	MovesAt    time.Time `json:"moves_at"`
}

// Health answers GET /health.
type Health struct {
	Status  string      `json:"status"` // healthy, starting, unhealthy
	Message string      `json:"message"`
	Worker  *WorkerInfo `json:"sluice,omitempty"`
}

// TaskID names a task of a connector.
type TaskID struct {
	Connector string `json:"connector"`
	Task      int    `json:"task"`
}

func (t TaskID) String() string { return fmt.Sprintf("%s-%d", t.Connector, t.Task) }

// ConnectorInfo answers GET /connectors/{name}.
type ConnectorInfo struct {
	Name   string            `json:"name"`
	Config map[string]string `json:"config"`
	Tasks  []TaskID          `json:"tasks"`
	Type   string            `json:"type"`
}

// State is a connector's or task's state.
type State string

// The states of connectors and tasks.
const (
	StateUnassigned State = "UNASSIGNED"
	StateRunning    State = "RUNNING"
	StatePaused     State = "PAUSED"
	StateFailed     State = "FAILED"
	StateRestarting State = "RESTARTING"
	StateStopped    State = "STOPPED"
	StateDestroyed  State = "DESTROYED"
)

// TargetState is the state a user asked a connector to be in.
type TargetState string

// The target states.
const (
	TargetStarted TargetState = "STARTED"
	TargetPaused  TargetState = "PAUSED"
	TargetStopped TargetState = "STOPPED"
)

// ConnectorState is the connector part of a status.
type ConnectorState struct {
	State    State  `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
}

// TaskState is one task's status. Restarts is Sluice's addition: how many times the runtime
// restarted the task by itself since it last ran healthy.
type TaskState struct {
	ID       int    `json:"id"`
	State    State  `json:"state"`
	WorkerID string `json:"worker_id"`
	Trace    string `json:"trace,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
}

// ConnectorStatus answers GET /connectors/{name}/status.
type ConnectorStatus struct {
	Name      string         `json:"name"`
	Connector ConnectorState `json:"connector"`
	Tasks     []TaskState    `json:"tasks"`
	Type      string         `json:"type"`
}

// TaskInfo answers GET /connectors/{name}/tasks.
type TaskInfo struct {
	ID     TaskID            `json:"id"`
	Config map[string]string `json:"config"`
}

// ConnectorOffset is one partition's offset: for sources the connector's own partition and
// offset maps; for sinks {kafka_topic, kafka_partition} and {kafka_offset}.
type ConnectorOffset struct {
	Partition map[string]any `json:"partition"`
	Offset    map[string]any `json:"offset"`
}

// ConnectorOffsets answers GET /connectors/{name}/offsets and is the body of PATCH.
type ConnectorOffsets struct {
	Offsets []ConnectorOffset `json:"offsets"`
}

// PluginInfo is one entry of GET /connector-plugins.
type PluginInfo struct {
	Class   string `json:"class"`
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
}

// ConfigKeyInfo is one setting's declaration, as GET /connector-plugins/{p}/config and
// validate show it.
type ConfigKeyInfo struct {
	Name          string   `json:"name"`
	Type          string   `json:"type"`
	Required      bool     `json:"required"`
	DefaultValue  *string  `json:"default_value"`
	Importance    string   `json:"importance"`
	Documentation string   `json:"documentation"`
	Group         *string  `json:"group"`
	OrderInGroup  int      `json:"order"`
	Width         string   `json:"width"`
	DisplayName   string   `json:"display_name"`
	Dependents    []string `json:"dependents"`
}

// ConfigValueInfo is one setting's value and errors in a validation.
type ConfigValueInfo struct {
	Name              string   `json:"name"`
	Value             *string  `json:"value"`
	RecommendedValues []string `json:"recommended_values"`
	Errors            []string `json:"errors"`
	Visible           bool     `json:"visible"`
}

// ConfigInfo pairs a declaration with a value.
type ConfigInfo struct {
	Definition ConfigKeyInfo   `json:"definition"`
	Value      ConfigValueInfo `json:"value"`
}

// ConfigInfos answers PUT /connector-plugins/{p}/config/validate.
type ConfigInfos struct {
	Name       string       `json:"name"`
	ErrorCount int          `json:"error_count"`
	Groups     []string     `json:"groups"`
	Configs    []ConfigInfo `json:"configs"`
}

// LoggerLevel is one logger's level for /admin/loggers.
type LoggerLevel struct {
	Level        string `json:"level"`
	LastModified *int64 `json:"last_modified,omitempty"`
}

// Errors the worker returns; the rest package maps them to Kafka Connect's status codes
// (404, 409, 400, 409, 503, 403). Wrap them with a message that says what went wrong.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("already exists")
	ErrBadRequest = errors.New("bad request")
	// ErrRebalance means the cluster is rebalancing or has no leader: try again shortly.
	ErrRebalance = errors.New("rebalance in progress")
	// ErrUnavailable means the worker cannot answer yet (it is still starting up).
	ErrUnavailable = errors.New("unavailable")
	// ErrForbidden means the request is refused whoever retries it (a forged signature).
	ErrForbidden = errors.New("forbidden")
)

// NotLeaderError is returned for a request that must run on another worker (the leader, or the
// worker that owns a task); the rest package forwards the request to URL.
type NotLeaderError struct {
	URL string
	// What is "leader" or "task owner", for messages.
	What string
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("this request must run on the %s at %s", e.What, e.URL)
}

// Errorf wraps one of the sentinel errors with a message: Errorf(ErrNotFound, "connector %q not found", name).
func Errorf(kind error, format string, args ...any) error {
	return &apiError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

// TargetGroup is one entry of a Prometheus HTTP service-discovery document, as
// GET /connectors/{name}/prometheus-targets answers it.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}
