package icebergsink_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	icebergsink "github.com/sluicehq/sluice/connectors/iceberg-sink"
)

// iceberg-sink against a SQL catalog, on the test PostgreSQL (a database of its own) and on a
// SQLite file, with a warehouse in a temporary directory: the table is created from the
// records and read back with iceberg-go's scan through a catalog connection of the test's
// own, as another reader would. The sink is exactly once: a task that is given partitions
// resumes after the offsets in the table's snapshot (its Seeks), and records below them are
// never written again, so a replay leaves no duplicate.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catalog func(t *testing.T) (uri, driver, dsn string, dialect sqlcat.SupportedDialect)
	}{
		{"postgres catalog", func(t *testing.T) (string, string, string, sqlcat.SupportedDialect) {
			uri := pgDatabase(t)
			return uri, "pgx", uri, sqlcat.Postgres
		}},
		{"sqlite catalog", func(t *testing.T) (string, string, string, sqlcat.SupportedDialect) {
			path := filepath.Join(t.TempDir(), "catalog.db")
			return "sqlite://" + path, "sqlite", "file:" + path + "?_pragma=busy_timeout(30000)&mode=ro", sqlcat.SQLite
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri, driver, dsn, dialect := tc.catalog(t)
			warehouse := "file://" + t.TempDir()
			connecttest.CheckSink(t, connecttest.Registered(t, icebergsink.Name), connecttest.SinkAcceptance{
				Config: connect.Config{"catalog.uri": uri, "warehouse": warehouse, "table.route": "static",
					"table.name": "acceptance", "commit.interval": "1"},
				Read: func(ctx context.Context, _ connect.SinkTask) ([]map[string]any, error) {
					return scanTable(ctx, driver, dsn, dialect, warehouse, "acceptance")
				},
				Idempotent: true,
			})
		})
	}
}

// scanTable reads a table through a SQL catalog connection of its own and returns its rows as
// maps by column; none while the table does not exist.
func scanTable(ctx context.Context, driver, dsn string, dialect sqlcat.SupportedDialect, warehouse, name string) ([]map[string]any, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, dialect, iceberg.Properties{"warehouse": warehouse})
	if err != nil {
		return nil, fmt.Errorf("opening the catalog: %w", err)
	}
	defer cat.Close()
	tbl, err := cat.LoadTable(ctx, catalog.ToIdentifier("sluice", name))
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading table %s: %w", name, err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("scanning table %s: %w", name, err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 1024)
	defer rdr.Release()
	var rows []map[string]any
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := range int(rec.NumRows()) {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = cellValue(rec.Column(c), i)
			}
			rows = append(rows, row)
		}
	}
	return rows, rdr.Err()
}

// cellValue is a cell of an Arrow column as a plain Go value.
func cellValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Binary:
		return a.Value(i)
	}
	return a.ValueStr(i)
}
