package connect

import (
	"context"
	"fmt"
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

// TypedBase is Base for a connector declared by the config struct C, the usual case:
//
//	type Connector struct{ connect.TypedBase[Config] }
//
// Start decodes the configuration into Typed once, so that an invalid one fails the connector,
// where the user sees it, rather than each of its tasks. TaskConfigs hands every task the
// connector's settings, which the task decodes with Decode[C] in its own Start: tasks may run
// on other workers, so what travels is the settings, never the struct.
type TypedBase[C any] struct {
	Base
	Typed C
}

// Start decodes the configuration into Typed and keeps it.
func (b *TypedBase[C]) Start(ctx context.Context, cfg Config, cc ConnectorContext) error {
	c, err := Decode[C](cfg)
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	b.Typed = c
	return b.Base.Start(ctx, cfg, cc)
}
