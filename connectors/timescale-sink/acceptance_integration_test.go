package timescalesink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	timescalesink "github.com/sluicehq/sluice/connectors/timescale-sink"
)

// timescale-sink against the test PostgreSQL, in a schema of its own per case: the table is
// created from the records (a hypertable where the timescaledb extension is installed) and
// read back with a connection of the test's own; the time column holds the record time.
// Append mode is at least once; exactly.once (the offsets stored with the rows) and upsert
// store each record once however often it is delivered.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        string
		cfg        connect.Config
		idempotent bool
	}{
		{"append", connecttest.EnvPostgres, connect.Config{"insert.mode": "append"}, false},
		{"append exactly once", connecttest.EnvPostgres, connect.Config{"insert.mode": "append", "exactly.once": "true"}, true},
		{"upsert", connecttest.EnvPostgres, connect.Config{"insert.mode": "upsert", "key.columns": "id,time"}, true},
		{"upsert without timescaledb", connecttest.EnvPostgresPlain, connect.Config{"insert.mode": "upsert", "key.columns": "id"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := connecttest.Env(t, tc.env)
			db, schema := testSchema(t, url)
			table := schema + ".acceptance"
			tc.cfg["connection.url"] = url
			tc.cfg["table"] = table
			tc.cfg["auto.create"] = "true"
			tc.cfg["offsets.table"] = schema + ".offsets"
			connecttest.CheckSink(t, connecttest.Registered(t, timescalesink.Name), connecttest.SinkAcceptance{
				Config: tc.cfg,
				Read: func(ctx context.Context, _ connect.SinkTask) ([]map[string]any, error) {
					return readRows(ctx, db, table)
				},
				Idempotent: tc.idempotent,
			})
		})
	}
}

// testSchema connects to the test database at url and creates a schema for the test, dropped
// with everything in it at the test's end.
func testSchema(t *testing.T, url string) (*pgxpool.Pool, string) {
	t.Helper()
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	schema := strings.ReplaceAll(connecttest.UniqueName("acc"), "-", "_")
	if _, err := db.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	})
	return db, schema
}

// readRows reads the table's rows as maps by column, the time column as the record time.
// Before the sink created the table there are none.
func readRows(ctx context.Context, db *pgxpool.Pool, table string) ([]map[string]any, error) {
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := db.Query(ctx, "SELECT * FROM "+table)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	maps, err := pgx.CollectRows(rows, pgx.RowToMap)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	for _, m := range maps {
		m[connecttest.MetaTime] = m["time"]
	}
	return maps, nil
}
