package connect

import (
	"context"
	"log/slog"
)

// Deleter is implemented by connectors that leave state outside Kafka that outlives a stop
// but not a deletion: broker sessions, replication slots, temporary tables. The runtime stops
// a connector in many cases (a config change, a rebalance that moves it, a worker shutting
// down) and says nothing about why; Deleted is the one signal that the connector is gone for
// good.
//
// Deleted is called once, on the worker that ran the connector, after Stop, when the
// connector's configuration was deleted. It is called on a new instance that was not started,
// with the connector's last configuration (placeholders resolved, "name" set), so it must not
// depend on anything Start set up. Tasks on other workers may still be stopping when it runs.
// It is best effort: a connector deleted while no worker ran it (its worker was down, or it
// was being moved, or a rebalance took it from its worker before that worker had read the
// deletion) is not told, so a connector that cleans up here should also tidy up when a
// connector of the same name starts again. log is the connector's logger. An error is
// logged; the deletion stands.
type Deleter interface {
	Deleted(ctx context.Context, cfg Config, log *slog.Logger) error
}
