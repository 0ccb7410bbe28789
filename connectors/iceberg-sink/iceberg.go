// Package icebergsink is a sink connector that writes Kafka records into Apache Iceberg tables,
// exactly once.
//
// Each task buffers its records as Arrow columns, one set per table, and on the commit
// interval writes them as Parquet data files (through iceberg-go). Task 0, the coordinator,
// appends its own data files and those the other tasks handed to it to each table in one
// snapshot per interval; the other tasks hand theirs over in a table property, a metadata-only
// commit (coord.go has the protocol). The snapshot's summary carries, under
// sluice.kafka.offsets.<connector>, the Kafka offset up to which the table holds each
// partition's records, so data and offsets are committed together. When a task is given a
// partition it resumes where the table's latest snapshot and the data files waiting for the
// coordinator end; records below that are never written again, and PreCommit lets the consumer
// group commit only offsets that are in a snapshot. Every commit asserts the branch head it
// read the offsets from, so one that raced another writer is retried on the refreshed table,
// and a stale task (one whose partition moved on) cannot write twice.
//
// Tables are created from the first record's schema (schema envelope or JSON) with the
// configured partition spec, and get a new column when a record brings a new field.
package icebergsink

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "iceberg-sink"

func init() {
	connect.Register(connect.Plugin{
		Name: Name,
		Doc: "Writes records into Apache Iceberg tables as Parquet files, exactly once: the Kafka offsets of each " +
			"commit go into the same Iceberg snapshot, and tasks resume from them; task 0 commits the data files of all tasks " +
			"as one snapshot per table and commit interval. Catalogs: SQL (SQLite, PostgreSQL) " +
			"and REST; warehouse on local files or S3-compatible storage. Tables are routed by topic, a payload field " +
			"or fixed, created from the records' schema with a partition spec, and gain columns for new fields.",
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and the catalog, and gives every task a copy of the
// configuration.
type Connector struct{ connect.TypedBase[Config] }

// Start fails on an invalid configuration or an unreachable catalog, so that it shows on the
// connector rather than on each task.
func (c *Connector) Start(ctx context.Context, cfg connect.Config, cc connect.ConnectorContext) error {
	if err := c.TypedBase.Start(ctx, cfg, cc); err != nil {
		return err
	}
	return CheckCatalog(ctx, c.Typed)
}

// CheckCatalog is the connection test: it opens the catalog and lists its namespaces.
func CheckCatalog(ctx context.Context, conf Config) error {
	cat, err := openCatalog(ctx, conf)
	if err != nil {
		return fmt.Errorf("iceberg-sink: opening the %s catalog: %w", conf.CatalogType, err)
	}
	defer func() { _ = closeCatalog(cat) }() // the check only read from it
	if _, err := cat.ListNamespaces(ctx, nil); err != nil {
		return fmt.Errorf("iceberg-sink: listing the catalog's namespaces: %w", err)
	}
	return nil
}

// NewTask returns a task that writes to the tables.
func (*Connector) NewTask() connect.SinkTask { return &Task{} }
