package sluicetest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresSchema connects to the test PostgreSQL at url and creates a schema of its own for
// the test (named from prefix), dropped with everything in it at the test's end.
func PostgresSchema(t testing.TB, url, prefix string) (*pgxpool.Pool, string) {
	t.Helper()
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	schema := strings.ReplaceAll(UniqueName(prefix), "-", "_")
	if _, err := db.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	})
	return db, schema
}
