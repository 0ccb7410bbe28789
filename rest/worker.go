package rest

import (
	"context"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// Worker is what the API needs of the runtime. Errors wrap worker.ErrNotFound (404),
// worker.ErrExists (409), worker.ErrBadRequest (400) or worker.ErrRebalance (409); a
// *worker.NotLeaderError makes the API forward the request; anything else is a 500.
type Worker interface {
	ServerInfo(ctx context.Context) api.ServerInfo
	Health(ctx context.Context) api.Health
	// Cluster describes the worker group as the last rebalance left it.
	Cluster(ctx context.Context) api.ClusterInfo
	// WorkerMetrics says where the metrics of the named worker are: nil for this worker, a
	// *worker.NotLeaderError for another member (the API forwards), worker.ErrNotFound for
	// a name that is not a member.
	WorkerMetrics(ctx context.Context, worker string) error

	Connectors(ctx context.Context) ([]string, error)
	ConnectorInfo(ctx context.Context, name string) (api.ConnectorInfo, error)
	// ConnectorConfig returns the stored configuration, placeholders unresolved and literal
	// secrets redacted.
	ConnectorConfig(ctx context.Context, name string) (map[string]string, error)
	// CreateConnector creates a connector; initialState is "", RUNNING, PAUSED or STOPPED.
	CreateConnector(ctx context.Context, name string, config map[string]string, initialState string) (api.ConnectorInfo, error)
	// PutConnectorConfig creates or replaces a connector's configuration; created says which.
	PutConnectorConfig(ctx context.Context, name string, config map[string]string) (info api.ConnectorInfo, created bool, err error)
	// PatchConnectorConfig merges patch into the configuration; a nil value removes the key.
	PatchConnectorConfig(ctx context.Context, name string, patch map[string]*string) (api.ConnectorInfo, error)
	DeleteConnector(ctx context.Context, name string) error

	ConnectorStatus(ctx context.Context, name string) (api.ConnectorStatus, error)
	TaskConfigs(ctx context.Context, name string) ([]api.TaskInfo, error)
	// PutTaskConfigs writes a connector's task configurations; the leader does it, others
	// return a *worker.NotLeaderError.
	PutTaskConfigs(ctx context.Context, name string, configs []map[string]string, sig sessionkey.Signature) error
	TaskStatus(ctx context.Context, name string, task int) (api.TaskState, error)
	RestartTask(ctx context.Context, name string, task int) error
	// RestartConnector restarts the connector and, as asked, its tasks; it returns the status
	// with the instances being restarted shown RESTARTING (nil when only the connector was
	// restarted, which the API answers with 204).
	RestartConnector(ctx context.Context, name string, includeTasks, onlyFailed bool) (*api.ConnectorStatus, error)
	PauseConnector(ctx context.Context, name string) error
	ResumeConnector(ctx context.Context, name string) error
	StopConnector(ctx context.Context, name string) error

	ConnectorOffsets(ctx context.Context, name string) (api.ConnectorOffsets, error)
	// AlterOffsets and ResetOffsets return the message the API shows on success.
	AlterOffsets(ctx context.Context, name string, offsets api.ConnectorOffsets) (string, error)
	ResetOffsets(ctx context.Context, name string) (string, error)

	ConnectorTopics(ctx context.Context, name string) ([]string, error)
	ResetConnectorTopics(ctx context.Context, name string) error
	// PrometheusTargets returns the Prometheus HTTP service-discovery document of the
	// connector's RUNNING tasks that serve scrape endpoints.
	PrometheusTargets(ctx context.Context, name string) ([]api.TargetGroup, error)

	Plugins(ctx context.Context, connectorsOnly bool) []api.PluginInfo
	PluginConfig(ctx context.Context, plugin string) ([]api.ConfigKeyInfo, error)
	// ValidateConfig validates config for plugin; the API answers 200 even when it is invalid.
	ValidateConfig(ctx context.Context, plugin string, config map[string]string) (api.ConfigInfos, error)

	Loggers(ctx context.Context) map[string]api.LoggerLevel
	Logger(ctx context.Context, name string) (api.LoggerLevel, error)
	// SetLoggerLevel sets the level of a logger (and the loggers below it) and returns the
	// names it changed.
	SetLoggerLevel(ctx context.Context, name, level string) ([]string, error)
}
