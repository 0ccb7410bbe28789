package timescalesink

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect"
)

// The throughput harness compares the connector's Put with raw pgx doing the same work on the
// same rows in the same run: CopyFrom of each batch for append, and for upsert COPY into a
// temporary table merged with INSERT ... ON CONFLICT, in a transaction per batch. The records
// are what the runtime hands a task after the JSON converter (maps), in batches of 500 (the
// runtime's consumer.max.batch.records default); the raw side takes its values out of the
// same maps by hand. Each side gets its own table of the same shape, created beforehand, and
// the sides take turns going first. It is slow, so it runs only with SLUICE_BENCH=1.

const (
	benchRows   = 200_000
	benchBatch  = 500
	benchRounds = 3
)

func benchRecords() []connect.Record {
	recs := make([]connect.Record, benchRows)
	for i := range recs {
		dev := fmt.Sprintf("dev-%03d", i%200)
		recs[i] = connect.Record{Topic: "iot.agg", KafkaPartition: int32(i % 3), KafkaOffset: int64(i / 3), Key: dev,
			Value: map[string]any{
				"device_id": dev, "seq": int64(i),
				"ts":      time.UnixMilli(1714564800000 + int64(i)*10).UTC().Format(time.RFC3339Nano),
				"reading": map[string]any{"temp": 20 + float64(i%100)/10, "hum": 40 + float64(i%50)/10},
			}}
	}
	return recs
}

const benchTable = `(time timestamptz NOT NULL, device_id text NOT NULL, seq bigint, reading_temp double precision, reading_hum double precision%s)`

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func TestThroughputVsRawCopy(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 to run it")
	}
	url, db, schema := testDB(t)
	recs := benchRecords()
	for _, kind := range []string{"hypertable", "plain"} {
		benchModes(t, url, db, schema, recs, kind)
	}
}

// benchModes measures each write mode on tables of a kind: hypertables (TimescaleDB's
// defaults, as the sink's auto-create makes them) or plain PostgreSQL tables.
func benchModes(t *testing.T, url string, db *pgxpool.Pool, schema string, recs []connect.Record, kind string) {
	for _, mode := range []struct {
		name     string
		settings []string
		pk       string
		raw      func(ctx context.Context, db *pgxpool.Pool, table string, batch []connect.Record) error
	}{
		{"append", nil, "", rawAppend},
		{"append exactly once", []string{"exactly.once", "true", "offsets.table", schema + ".offsets"}, "", rawAppend},
		{"upsert", []string{"insert.mode", "upsert", "key.columns", "device_id,time"}, ", PRIMARY KEY (device_id, time)", rawUpsert},
	} {
		var sluice, raw []float64
		for round := range benchRounds {
			mk := func(side string) string {
				name := fmt.Sprintf("%s.%s_%s_%s_%d", schema, kind, strings.ReplaceAll(mode.name, " ", "_"), side, round)
				if _, err := db.Exec(t.Context(), "CREATE TABLE "+name+" "+fmt.Sprintf(benchTable, mode.pk)); err != nil {
					t.Fatal(err)
				}
				if kind == "hypertable" {
					if _, err := db.Exec(t.Context(), "SELECT create_hypertable($1, 'time')", name); err != nil {
						t.Fatal(err)
					}
				}
				return name
			}
			table, rawTable := mk("sluice"), mk("raw")
			settings := []string{"table", table, "time.field", "ts"}
			for _, kv := range mode.settings { // an offsets table per round, so each starts afresh
				settings = append(settings, strings.ReplaceAll(kv, schema+".offsets", fmt.Sprintf("%s.offsets_%s_%d", schema, kind, round)))
			}
			task, _ := startPG(t, url, settings...)
			// The first batch of each side is start-up (connecting, reading the table,
			// preparing statements) and is timed for neither.
			connector := func() {
				var start time.Time
				for i := 0; i < len(recs); i += benchBatch {
					if i == benchBatch {
						start = time.Now()
					}
					putPG(t, task, recs[i:min(i+benchBatch, len(recs))]...)
				}
				sluice = append(sluice, float64(len(recs)-benchBatch)/time.Since(start).Seconds())
			}
			rawSide := func() {
				var start time.Time
				for i := 0; i < len(recs); i += benchBatch {
					if i == benchBatch {
						start = time.Now()
					}
					if err := mode.raw(t.Context(), db, rawTable, recs[i:min(i+benchBatch, len(recs))]); err != nil {
						t.Fatal(err)
					}
				}
				raw = append(raw, float64(len(recs)-benchBatch)/time.Since(start).Seconds())
			}
			if round%2 == 0 { // neither side always goes first
				connector()
				rawSide()
			} else {
				rawSide()
				connector()
			}
			for _, tbl := range []string{table, rawTable} {
				if n := queryStrings(t, db, "SELECT count(*) FROM "+tbl); n[0] != fmt.Sprint(benchRows) {
					t.Fatalf("%s holds %s rows, want %d", tbl, n[0], benchRows)
				}
			}
		}
		s, r := median(sluice), median(raw)
		t.Logf("%s, %s: connector %.0f rows/s, raw pgx %.0f rows/s, ratio %.2f (rounds: %.0f vs %.0f)", mode.name, kind, s, r, s/r, sluice, raw)
		fmt.Printf("BENCH timescale_%s table=%s sluice=%.0f raw=%.0f ratio=%.2f\n", strings.ReplaceAll(mode.name, " ", "_"), kind, s, r, s/r)
	}
}

// rawRows takes the values out of the records by hand.
func rawRows(batch []connect.Record) [][]any {
	rows := make([][]any, len(batch))
	for i, rec := range batch {
		v := rec.Value.(map[string]any)
		r := v["reading"].(map[string]any)
		ts, _ := time.Parse(time.RFC3339Nano, v["ts"].(string))
		rows[i] = []any{ts, v["device_id"], v["seq"], r["temp"], r["hum"]}
	}
	return rows
}

var rawCols = []string{"time", "device_id", "seq", "reading_temp", "reading_hum"}

func rawAppend(ctx context.Context, db *pgxpool.Pool, table string, batch []connect.Record) error {
	_, err := db.CopyFrom(ctx, pgx.Identifier(strings.Split(table, ".")), rawCols, pgx.CopyFromRows(rawRows(batch)))
	return err
}

func rawUpsert(ctx context.Context, db *pgxpool.Pool, table string, batch []connect.Record) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit, a no-op
	stage := "raw_stage_" + strings.ReplaceAll(table, ".", "_")
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stage+" (LIKE "+table+") ON COMMIT DELETE ROWS"); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, rawCols, pgx.CopyFromRows(rawRows(batch))); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" SELECT * FROM "+stage+
		" ON CONFLICT (device_id, time) DO UPDATE SET seq = EXCLUDED.seq, reading_temp = EXCLUDED.reading_temp, reading_hum = EXCLUDED.reading_hum"); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
