package timescalesink

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect"
)

// Tests of the hypertable paths on the test database, which has the timescaledb extension
// (scripts/testenv builds TimescaleDB from its source). Each checks what TimescaleDB made of
// the sink's statements through the timescaledb_information views, not through the sink.

// tsInfo answers one of the timescaledb_information questions about a table, as lines.
func tsInfo(t *testing.T, db *pgxpool.Pool, schema, table, query string) string {
	t.Helper()
	return strings.Join(queryStrings(t, db, query, schema, table), "; ")
}

const (
	infoHypertable = `SELECT num_dimensions, compression_enabled FROM timescaledb_information.hypertables
		WHERE hypertable_schema = $1 AND hypertable_name = $2`
	infoDimensions = `SELECT column_name, dimension_type, coalesce(time_interval::text, '-'), coalesce(num_partitions::text, '-')
		FROM timescaledb_information.dimensions WHERE hypertable_schema = $1 AND hypertable_name = $2 ORDER BY dimension_number`
	infoCompression = `SELECT coalesce(segmentby, '-'), coalesce(orderby, '-') FROM timescaledb_information.hypertable_compression_settings
		WHERE hypertable = format('%I.%I', $1::text, $2::text)::regclass`
	infoJobs = `SELECT proc_name, (config - 'hypertable_id')::text FROM timescaledb_information.jobs
		WHERE hypertable_schema = $1 AND hypertable_name = $2 ORDER BY proc_name`
	infoChunks = `SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks
		WHERE hypertable_schema = $1 AND hypertable_name = $2`
)

// TestAutoCreateMakesHypertables: the defaults a user starts with, and every timescale.*
// setting, as TimescaleDB reports them.
func TestAutoCreateMakesHypertables(t *testing.T) {
	for _, tc := range []struct {
		name                                string
		settings                            []string
		hypertable, dimensions, compression string
		jobs                                string
	}{{
		name:        "defaults",
		settings:    []string{"auto.create", "true"},
		hypertable:  "1|false",
		dimensions:  "time|Time|7 days|-",
		compression: "-|-",
		jobs:        "",
	}, {
		name: "every setting",
		settings: []string{"auto.create", "true", "insert.mode", "upsert", "key.columns", "device_id,time",
			"timescale.chunk.interval", "24h", "timescale.space.column", "device_id", "timescale.space.partitions", "3",
			"timescale.compression.after", "48h", "timescale.retention", "720h"},
		hypertable:  "2|true",
		dimensions:  "time|Time|1 day|-; device_id|Space|-|3",
		compression: `device_id|"time" DESC`,
		jobs:        `policy_compression|{"compress_after": "48:00:00"}; policy_retention|{"drop_after": "720:00:00"}`,
	}, {
		name: "segment by named columns",
		settings: []string{"auto.create", "true", "timescale.chunk.interval", "1h",
			"timescale.compression.after", "6h", "timescale.compression.segmentby", "device_id,place_id"},
		hypertable:  "1|true",
		dimensions:  "time|Time|01:00:00|-",
		compression: `device_id,place_id|"time" DESC`,
		jobs:        `policy_compression|{"compress_after": "06:00:00"}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			url, db, schema := testDB(t)
			task, _ := startPG(t, url, append([]string{"table", schema + ".h"}, tc.settings...)...)
			putPG(t, task, reading("x", 0, map[string]any{"device_id": "d0", "place_id": "p0", "temp": 21.5}))
			for what, q := range map[string][2]string{
				"hypertable (dimensions|compression)": {infoHypertable, tc.hypertable},
				"dimensions":                          {infoDimensions, tc.dimensions},
				"compression settings":                {infoCompression, tc.compression},
				"jobs":                                {infoJobs, tc.jobs},
			} {
				if got := tsInfo(t, db, schema, "h", q[0]); got != q[1] {
					t.Errorf("%s: %q, want %q", what, got, q[1])
				}
			}
		})
	}
}

// TestPoliciesCompressAndDrop runs the compression and retention jobs the sink set up and
// checks the chunks they leave.
func TestPoliciesCompressAndDrop(t *testing.T) {
	url, db, schema := testDB(t)
	task, _ := startPG(t, url, "table", schema+".p", "auto.create", "true", "time.field", "ts", "timescale.chunk.interval", "24h",
		"timescale.compression.after", "48h", "timescale.retention", "720h")
	now := time.Now().UTC()
	var batch []connect.Record
	for i, age := range []time.Duration{40 * 24 * time.Hour, 4 * 24 * time.Hour, 0} { // dropped, compressed, kept as it is
		for dev := range 3 {
			batch = append(batch, connect.Record{Topic: "x", KafkaOffset: int64(len(batch)),
				Value: map[string]any{"ts": now.Add(-age).Format(time.RFC3339Nano), "device_id": fmt.Sprint("d", dev), "age": int64(i)}})
		}
	}
	putPG(t, task, batch...)
	for _, job := range []string{"policy_compression", "policy_retention"} {
		if _, err := db.Exec(t.Context(), `DO $$ DECLARE j int; BEGIN
			SELECT job_id INTO STRICT j FROM timescaledb_information.jobs WHERE hypertable_schema = '`+schema+`' AND hypertable_name = 'p' AND proc_name = '`+job+`';
			CALL run_job(j); END $$`); err != nil {
			t.Fatalf("running %s: %v", job, err)
		}
	}
	if got, want := tsInfo(t, db, schema, "p", infoChunks), "2|1"; got != want {
		t.Errorf("chunks (all|compressed) %q, want %q: the oldest dropped, the 4-day-old one compressed", got, want)
	}
	if got := queryStrings(t, db, "SELECT age, count(*) FROM "+schema+".p GROUP BY age ORDER BY age"); strings.Join(got, ",") != "1|3,2|3" {
		t.Errorf("rows by age %v, want 3 of ages 1 and 2", got)
	}
}

// compressAll compresses every chunk of a hypertable now.
func compressAll(t *testing.T, db *pgxpool.Pool, schema, table string) {
	t.Helper()
	if _, err := db.Exec(t.Context(), "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks($1::regclass) c", schema+"."+table); err != nil {
		t.Fatal(err)
	}
	if got := tsInfo(t, db, schema, table, infoChunks); !strings.HasSuffix(got, "|"+strings.Split(got, "|")[0]) {
		t.Fatalf("chunks (all|compressed) %q after compressing them all", got)
	}
}

// TestUpsertIntoCompressedChunks: late records for keys that sit in compressed chunks replace
// them. TimescaleDB decompresses the segments an upsert touches and refuses a transaction
// that decompresses more than its limit (100,000 rows by default), which a retry would meet
// again; the sink lifts the limit on its connections unless told otherwise.
func TestUpsertIntoCompressedChunks(t *testing.T) {
	url, db, schema := testDB(t)
	settings := []string{"table", schema + ".u", "auto.create", "true", "insert.mode", "upsert", "key.columns", "device_id,time",
		"time.field", "ts", "timescale.chunk.interval", "24h", "timescale.compression.after", "24h"}
	const n = 120_000 // more than TimescaleDB's default decompression limit
	batch := func(from, count int, v float64) []connect.Record {
		out := make([]connect.Record, count)
		for i := range out {
			seq := from + i
			out[i] = connect.Record{Topic: "x", KafkaOffset: int64(seq), Value: map[string]any{
				"ts": t0.Add(time.Duration(seq) * time.Second).Format(time.RFC3339), "device_id": fmt.Sprint("d", seq%4), "v": v}}
		}
		return out
	}
	task, _ := startPG(t, url, settings...)
	putPG(t, task, batch(0, n, 1)...)
	compressAll(t, db, schema, "u")

	// A limit set by the user is kept, and a batch over it fails the task with TimescaleDB's
	// message instead of being retried for ever.
	limited, _ := startPG(t, url, append(settings, "timescale.decompression.limit", "1000")...)
	err := limited.Put(t.Context(), batch(0, 5000, 2))
	if err == nil || connect.IsRetriable(err) || !strings.Contains(err.Error(), "decompression limit") {
		t.Fatalf("Put over a decompression limit of 1000 = %v, want a non-retriable error with TimescaleDB's message", err)
	}

	// With the defaults, nine tenths of the rows replaced and a tenth more appended, in one
	// batch that decompresses more rows than TimescaleDB's default limit.
	putPG(t, task, batch(n/10, n, 3)...)
	got := queryStrings(t, db, "SELECT v, count(*) FROM "+schema+".u GROUP BY v ORDER BY v")
	if want := []string{fmt.Sprintf("1|%d", n/10), fmt.Sprintf("3|%d", n)}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows by value %v, want %v", got, want)
	}
}

// TestExactlyOnceAppendIntoACompressedChunk: appends with exactly.once whose times fall in
// compressed chunks are written once, replays are skipped, and the chunks stay compressed.
func TestExactlyOnceAppendIntoACompressedChunk(t *testing.T) {
	url, db, schema := testDB(t)
	settings := []string{"table", schema + ".e", "auto.create", "true", "exactly.once", "true", "offsets.table", schema + ".offsets",
		"timescale.chunk.interval", "1h", "timescale.compression.after", "1h"}
	rec := func(off int64) connect.Record {
		return connect.Record{Topic: "x", KafkaOffset: off, Time: t0.Add(time.Duration(off) * time.Minute), Value: map[string]any{"off": off}}
	}
	var first []connect.Record
	for off := range int64(180) { // three hourly chunks
		first = append(first, rec(off))
	}
	task, _ := startPG(t, url, settings...)
	putPG(t, task, first...)
	compressAll(t, db, schema, "e")

	// A restarted task gets some records again, and new ones that belong to the same hours.
	task2, _ := startPG(t, url, settings...)
	if err := task2.Open(t.Context(), []connect.TopicPartition{{Topic: "x"}}); err != nil {
		t.Fatal(err)
	}
	again := []connect.Record{rec(170), rec(179)}
	for off := int64(180); off < 200; off++ {
		r := rec(off)
		r.Time = t0.Add(time.Duration(off-180) * 7 * time.Minute) // back in the compressed hours
		again = append(again, r)
	}
	putPG(t, task2, again...)
	if got := queryStrings(t, db, "SELECT count(*), count(DISTINCT off), min(off), max(off) FROM "+schema+".e"); got[0] != "200|200|0|199" {
		t.Errorf("rows (count|distinct|min|max) %s, want each of 200 records once", got[0])
	}
	if got := tsInfo(t, db, schema, "e", infoChunks); got != "3|3" {
		t.Errorf("chunks (all|compressed) %q, want the three chunks still compressed", got)
	}
}

// TestAutoEvolveACompressedHypertable: a new field adds a column to a hypertable whose
// chunks are compressed, and later rows in those chunks carry it.
func TestAutoEvolveACompressedHypertable(t *testing.T) {
	url, db, schema := testDB(t)
	task, _ := startPG(t, url, "table", schema+".s", "auto.create", "true", "auto.evolve", "true", "insert.mode", "upsert",
		"key.columns", "device_id,time", "timescale.chunk.interval", "1h", "timescale.compression.after", "1h")
	putPG(t, task, reading("x", 0, map[string]any{"device_id": "d0", "temp": 20.0}), reading("x", 1, map[string]any{"device_id": "d1", "temp": 21.0}))
	compressAll(t, db, schema, "s")
	putPG(t, task, reading("x", 1, map[string]any{"device_id": "d1", "temp": 22.0, "hum": 40.0}), reading("x", 2, map[string]any{"device_id": "d2", "hum": 41.0}))
	if got, want := columnTypes(t, db, schema, "s"), "time timestamp with time zone, device_id text, temp double precision, hum double precision"; got != want {
		t.Errorf("columns %q, want %q", got, want)
	}
	got := queryStrings(t, db, "SELECT device_id, coalesce(temp, -1), coalesce(hum, -1) FROM "+schema+".s ORDER BY device_id")
	if want := []string{"d0|20|-1", "d1|22|40", "d2|-1|41"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %v, want %v", got, want)
	}
	if got := tsInfo(t, db, schema, "s", infoHypertable); got != "1|true" {
		t.Errorf("hypertable (dimensions|compression) %q after adding a column", got)
	}
}

// TestHypertableSettingOffMakesPlainTables: with timescale.hypertable=false the task neither
// asks for the extension nor makes hypertables, on a database that has it.
func TestHypertableSettingOffMakesPlainTables(t *testing.T) {
	url, db, schema := testDB(t)
	task, tc := startPG(t, url, "table", schema+".p", "auto.create", "true", "timescale.hypertable", "false")
	putPG(t, task, reading("x", 0, map[string]any{"a": int64(1)}))
	if got := tsInfo(t, db, schema, "p", infoHypertable); got != "" {
		t.Errorf("the table is a hypertable (%s)", got)
	}
	if strings.Contains(tc.buf.String(), "timescaledb") {
		t.Errorf("the log mentions timescaledb with timescale.hypertable=false:\n%s", tc.buf.String())
	}
}
