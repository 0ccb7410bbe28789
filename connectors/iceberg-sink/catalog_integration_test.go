package icebergsink_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// TestRecordsFromKafkaReadBackWithScan runs frames through a worker into a table in a SQL
// catalog, on SQLite and on the test PostgreSQL, with a local warehouse, and reads the table
// back with iceberg-go's scan through a catalog connection of its own: the schema derived from
// the JSON, every value, and the partition (day of event_time, place_id) of every data file.
func TestRecordsFromKafkaReadBackWithScan(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		l := newLake(t)
		writeAndReadBack(t, l.uri, l.warehouse, func(t *testing.T, name string) *table.Table { return l.load(t, name) })
	})
	t.Run("postgres", func(t *testing.T) {
		uri := pgDatabase(t)
		warehouse := "file://" + t.TempDir()
		writeAndReadBack(t, uri, warehouse, func(t *testing.T, name string) *table.Table {
			return loadTable(t, "pgx", uri, sqlcat.Postgres, warehouse, name)
		})
	})
}

// pgDatabase creates a database of its own on the test PostgreSQL, dropped when the test ends,
// and returns its URL.
func pgDatabase(t *testing.T) string {
	t.Helper()
	base := connecttest.Env(t, connecttest.EnvPostgres)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := strings.ReplaceAll(sluicetest.UniqueName("ice_cat"), "-", "_")
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func writeAndReadBack(t *testing.T, uri, warehouse string, load func(*testing.T, string) *table.Table) {
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("ice-scan")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ice-scan")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(lake{uri: uri, warehouse: warehouse}, topic))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	// 3,000 frames a minute apart: three days, three places.
	const n = 3000
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, n, nil)...)
	tname := tableOf(topic)
	sluicetest.Eventually(t, 90*time.Second, "every record in the table", func() (bool, string) {
		got := committed(load(t, tname))
		return got == n, fmt.Sprint(got)
	})
	tbl := load(t, tname)

	// Schema: derived from the JSON, event_time as a timestamp, numbers double (the default
	// schema.json.numbers).
	want := map[string]string{"seq": "double", "device_id": "string", "place_id": "string", "event_time": "timestamptz", "temperature": "double"}
	if got := len(tbl.Schema().Fields()); got != len(want) {
		t.Errorf("schema %s has %d columns, want %d", tbl.Schema(), got, len(want))
	}
	for col, typ := range want {
		if f, ok := tbl.Schema().FindFieldByName(col); !ok || f.Type.String() != typ {
			t.Errorf("column %s = %v, want %s", col, f.Type, typ)
		}
	}

	// Values: every frame once, as produced.
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 4096)
	defer rdr.Release()
	seen := map[int64]bool{}
	bad := 0
	for rdr.Next() {
		rec := rdr.RecordBatch()
		idx := map[string]int{}
		for i, f := range rec.Schema().Fields() {
			idx[f.Name] = i
		}
		seq := rec.Column(idx["seq"]).(*array.Float64)
		dev := rec.Column(idx["device_id"]).(*array.String)
		place := rec.Column(idx["place_id"]).(*array.String)
		ts := rec.Column(idx["event_time"]).(*array.Timestamp)
		temp := rec.Column(idx["temperature"]).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			s := int64(seq.Value(i))
			if seen[s] {
				t.Errorf("seq %d twice", s)
			}
			seen[s] = true
			if dev.Value(i) != fmt.Sprintf("dev-%d", s%7) || place.Value(i) != fmt.Sprintf("place-%d", s%3) ||
				int64(ts.Value(i)) != (1714564800000+s*60_000)*1000 || temp.Value(i) != 20.05+float64(s%100)/10 {
				if bad++; bad < 5 {
					t.Errorf("row seq %d: device %s place %s event_time %d temperature %v", s, dev.Value(i), place.Value(i), ts.Value(i), temp.Value(i))
				}
			}
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct rows, want %d", len(seen), n)
	}

	// Partitions: day(event_time) then place_id, and every data file in the one partition its
	// rows belong to.
	spec := tbl.Spec()
	if spec.NumFields() != 2 || spec.Field(0).Transform.String() != "day" || spec.Field(0).Name != "event_time_day" || spec.Field(1).Name != "place_id" {
		t.Fatalf("partition spec = %v", spec)
	}
	wantParts := map[string]bool{}
	for s := int64(0); s < n; s++ {
		day := (1714564800000 + s*60_000) / 86_400_000
		wantParts[fmt.Sprintf("%d/place-%d", day, s%3)] = true
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gotParts := map[string]bool{}
	for _, ft := range tasks {
		p := ft.File.Partition()
		key := fmt.Sprintf("%v/%v", p[spec.Field(0).FieldID], p[spec.Field(1).FieldID])
		gotParts[key] = true
		// The file's rows are all in its partition: its bounds say so.
		placeCol, _ := tbl.Schema().FindFieldByName("place_id")
		timeCol, _ := tbl.Schema().FindFieldByName("event_time")
		lo, hi := ft.File.LowerBoundValues(), ft.File.UpperBoundValues()
		loDay := int64(binary.LittleEndian.Uint64(lo[timeCol.ID])) / 86_400_000_000
		hiDay := int64(binary.LittleEndian.Uint64(hi[timeCol.ID])) / 86_400_000_000
		if string(lo[placeCol.ID]) != p[spec.Field(1).FieldID] || string(hi[placeCol.ID]) != p[spec.Field(1).FieldID] ||
			fmt.Sprint(loDay) != fmt.Sprint(p[spec.Field(0).FieldID]) || hiDay != loDay {
			t.Errorf("file %s in partition %s holds places %s..%s, days %d..%d", ft.File.FilePath(), key, lo[placeCol.ID], hi[placeCol.ID], loDay, hiDay)
		}
	}
	if fmt.Sprint(sortedKeys(gotParts)) != fmt.Sprint(sortedKeys(wantParts)) {
		t.Errorf("data files are in partitions %v, want %v", sortedKeys(gotParts), sortedKeys(wantParts))
	}
	t.Logf("%d rows in %d data files, partitions %v", len(seen), len(tasks), sortedKeys(gotParts))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
