// Package aggregate is a source connector that aggregates a raw topic of JSON sensor frames
// over event-time windows into an aggregated topic and, optionally, a metrics topic, exactly
// once.
//
// It is a stream processor hosted as a connector, not a connector in Kafka Connect's sense:
// it reads Kafka and writes Kafka (consume, transform, produce, as Kafka Streams does), and
// the runtime only hosts it, for its REST configuration, status, restarts, placement on
// workers and error policy. Each task owns a consumer of the raw topic and a transactional
// producer, and every transaction holds the window results, the changed window state (a
// compacted changelog topic) and the consumed offsets. Its Poll runs one such transaction and
// returns no records.
//
// Why not the runtime's source loop: that loop is at least once (records are produced, then
// their offsets stored in the offsets topic), and a window result produced twice is a wrong
// aggregate downstream. Exactly once needs the consumed offsets, the state and the results in
// one Kafka transaction, which only the task itself can hold. A restarted or moved task
// restores its windows from the changelog and resumes at the committed offsets, so
// read_committed consumers of the output see every window result exactly once.
package aggregate

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "aggregate"

func init() {
	connect.Register(connect.Plugin{
		Name:   Name,
		Doc:    pluginDoc,
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and plans the tasks: up to tasks.max with aligned
// partitioning, one with global partitioning.
type Connector struct{ connect.TypedBase[Config] }

// Start fails on an invalid configuration, kafka.<property> settings included, so that it
// shows on the connector.
func (c *Connector) Start(ctx context.Context, cfg connect.Config, cc connect.ConnectorContext) error {
	if err := connect.CheckClientSettings(cfg, "kafka."); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return c.TypedBase.Start(ctx, cfg, cc)
}

// Validate refuses kafka.<property> settings that would run a program or load code on the
// worker.
func (*Connector) Validate(_ context.Context, cfg connect.Config) error {
	return connect.CheckClientSettings(cfg, "kafka.")
}

// TaskConfigs gives every task the connector's configuration; global partitioning has one.
func (c *Connector) TaskConfigs(maxTasks int) ([]connect.Config, error) {
	if c.Typed.Partitioning == PartitionGlobal {
		maxTasks = 1
	}
	return c.Base.TaskConfigs(maxTasks)
}

// NewTask returns a task.
func (*Connector) NewTask() connect.SourceTask { return &Task{} }
