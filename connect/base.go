package connect

import (
	"context"
	"maps"
)

// Base is a Connector for the common case: every task gets the connector's configuration, and
// there are as many tasks as tasks.max allows. Embed it and add NewTask:
//
//	type Connector struct{ connect.Base }
//	func (*Connector) NewTask() connect.SinkTask { return &Task{} }
type Base struct {
	Config  Config
	Context ConnectorContext
}

// Start keeps the configuration.
func (b *Base) Start(_ context.Context, cfg Config, cc ConnectorContext) error {
	b.Config, b.Context = cfg, cc
	return nil
}

// TaskConfigs returns maxTasks copies of the configuration.
func (b *Base) TaskConfigs(maxTasks int) ([]Config, error) {
	out := make([]Config, maxTasks)
	for i := range out {
		out[i] = maps.Clone(b.Config)
	}
	return out, nil
}

// Stop does nothing.
func (b *Base) Stop() error { return nil }
