package icebergsink

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/connect"
)

// localConfig is a configuration on a SQLite catalog and a warehouse in a temporary directory.
func localConfig(t testing.TB, extra connect.Config) connect.Config {
	dir := t.TempDir()
	cfg := connect.Config{
		"topics":          "iot.raw",
		"catalog.uri":     "sqlite://" + filepath.Join(dir, "catalog.db"),
		"warehouse":       "file://" + filepath.Join(dir, "warehouse"),
		"commit.interval": "1ms",
		// The fixtures' seq is a whole number the tests read back as long; the workers'
		// tests keep the default (double).
		"schema.json.numbers": "infer",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// openTable loads a table the way a reader would, with its own catalog connection.
func openTable(t testing.TB, cfg connect.Config, name string) *table.Table {
	t.Helper()
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := openCatalog(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeCatalog(cat) }()
	tbl, err := cat.LoadTable(context.Background(), catalog.ToIdentifier(c.Namespace, name))
	if err != nil {
		t.Fatalf("loading table %s: %v", name, err)
	}
	return tbl
}

// scanRows reads the whole table through iceberg-go's scan, as maps sorted by sortKey.
func scanRows(t testing.TB, tbl *table.Table, sortKey string) []map[string]any {
	t.Helper()
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	defer at.Release()
	var rows []map[string]any
	rdr := array.NewTableReader(at, 1024)
	defer rdr.Release()
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = cell(rec.Column(c), i)
			}
			rows = append(rows, row)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return fmt.Sprint(rows[i][sortKey]) < fmt.Sprint(rows[j][sortKey]) })
	return rows
}

func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC()
	}
	return a.ValueStr(i)
}

func numSnapshots(tbl *table.Table) int { return len(tbl.Metadata().Snapshots()) }
