package timescalesink

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/connect"
)

func decode(t testing.TB, kv ...string) *Config {
	t.Helper()
	cfg := connect.Config{"connection.url": "postgres://u:p@localhost/db"}
	for i := 0; i < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestCreateTableSQL(t *testing.T) {
	id := pgx.Identifier{"iot", "agg_sensor"}
	cols := []colDef{{"device_id", "text"}, {"temp", "double precision"}}
	got := ddl{decode(t, "insert.mode", "upsert", "key.columns", "device_id,time", "fields.catchall.column", "extra")}.createTable(id, cols)
	want := `CREATE TABLE IF NOT EXISTS "iot"."agg_sensor" (
  "time" timestamptz NOT NULL,
  "device_id" text NOT NULL,
  "temp" double precision,
  "extra" jsonb,
  PRIMARY KEY ("device_id", "time")
)`
	if got != want {
		t.Errorf("upsert table:\n%s\nwant\n%s", got, want)
	}
	got = ddl{decode(t, "time.column", "ts")}.createTable(pgx.Identifier{`we"ird`}, cols[1:])
	want = "CREATE TABLE IF NOT EXISTS \"we\"\"ird\" (\n  \"ts\" timestamptz NOT NULL,\n  \"temp\" double precision\n)"
	if got != want {
		t.Errorf("append table:\n%s\nwant\n%s", got, want)
	}
}

func TestHypertableSQL(t *testing.T) {
	id := pgx.Identifier{"iot", "agg"}
	stmts, err := ddl{decode(t, "timescale.chunk.interval", "24h")}.hypertable(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`SELECT create_hypertable('"iot"."agg"', 'time', chunk_time_interval => INTERVAL '86400 seconds', if_not_exists => TRUE)`}
	if strings.Join(stmts, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain hypertable:\n%s\nwant\n%s", strings.Join(stmts, "\n"), strings.Join(want, "\n"))
	}

	stmts, err = ddl{decode(t, "insert.mode", "upsert", "key.columns", "device_id,time", "timescale.compression.after", "168h",
		"timescale.retention", "720h", "timescale.chunk.interval", "1500ms")}.hypertable(id)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		`SELECT create_hypertable('"iot"."agg"', 'time', chunk_time_interval => INTERVAL '1500 milliseconds', if_not_exists => TRUE)`,
		`ALTER TABLE "iot"."agg" SET (timescaledb.compress, timescaledb.compress_segmentby = '"device_id"', timescaledb.compress_orderby = '"time" DESC')`,
		`SELECT add_compression_policy('"iot"."agg"', INTERVAL '604800 seconds', if_not_exists => TRUE)`,
		`SELECT add_retention_policy('"iot"."agg"', INTERVAL '2592000 seconds', if_not_exists => TRUE)`,
	}
	if strings.Join(stmts, "\n") != strings.Join(want, "\n") {
		t.Errorf("with policies:\n%s\nwant\n%s", strings.Join(stmts, "\n"), strings.Join(want, "\n"))
	}

	stmts, _ = ddl{decode(t, "timescale.compression.after", "1h", "timescale.compression.segmentby", "place,device")}.hypertable(pgx.Identifier{"o'brien"})
	if !strings.Contains(stmts[1], `timescaledb.compress_segmentby = '"place", "device"'`) || !strings.Contains(stmts[0], `'"o''brien"'`) {
		t.Errorf("segmentby or quoting wrong:\n%s", strings.Join(stmts, "\n"))
	}

	_, err = ddl{decode(t, "insert.mode", "upsert", "key.columns", "device_id")}.hypertable(id)
	if err == nil || !strings.Contains(err.Error(), `must include the time column "time"`) {
		t.Errorf("upsert key without the time column: %v, want an error", err)
	}
}

func TestUpsertSQL(t *testing.T) {
	d := ddl{decode(t, "insert.mode", "upsert", "key.columns", "device_id,time")}
	tbl := &table{name: `"iot"."agg"`, stage: "sluice_stage_1"}
	cols := []string{"time", "device_id", "temp"}
	if got, want := d.merge(tbl, cols), `INSERT INTO "iot"."agg" ("time", "device_id", "temp") SELECT "time", "device_id", "temp" FROM "sluice_stage_1" ON CONFLICT ("device_id", "time") DO UPDATE SET "temp" = EXCLUDED."temp"`; got != want {
		t.Errorf("merge:\n%s\nwant\n%s", got, want)
	}
	if got, want := d.insertRow(tbl, cols), `INSERT INTO "iot"."agg" ("time", "device_id", "temp") VALUES ($1, $2, $3) ON CONFLICT ("device_id", "time") DO UPDATE SET "temp" = EXCLUDED."temp"`; got != want {
		t.Errorf("insertRow:\n%s\nwant\n%s", got, want)
	}
	if got, want := d.insertRows(tbl, cols[:2], 2), `INSERT INTO "iot"."agg" ("time", "device_id") VALUES ($1, $2), ($3, $4) ON CONFLICT ("device_id", "time") DO NOTHING`; got != want {
		t.Errorf("insertRows:\n%s\nwant\n%s", got, want)
	}
	if got, want := d.merge(tbl, []string{"time", "device_id"}), `INSERT INTO "iot"."agg" ("time", "device_id") SELECT "time", "device_id" FROM "sluice_stage_1" ON CONFLICT ("device_id", "time") DO NOTHING`; got != want {
		t.Errorf("merge of keys only:\n%s\nwant\n%s", got, want)
	}
	if got, want := (ddl{decode(t)}).insertRow(tbl, cols[:2]), `INSERT INTO "iot"."agg" ("time", "device_id") VALUES ($1, $2)`; got != want {
		t.Errorf("append insertRow:\n%s\nwant\n%s", got, want)
	}
}

func TestInterval(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour:      "INTERVAL '604800 seconds'",
		2500 * time.Millisecond: "INTERVAL '2500 milliseconds'",
	} {
		if got := interval(d); got != want {
			t.Errorf("interval(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestTableFor(t *testing.T) {
	for _, c := range [][3]string{
		{"${topic}", "iot.agg.sensor", "iot_agg_sensor"},
		{"metrics.${topic}_v2", "iot-raw", "metrics.iot_raw_v2"},
		{"fixed", "iot.raw", "fixed"},
	} {
		if got := tableFor(c[0], c[1]); got != c[2] {
			t.Errorf("tableFor(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestClassify(t *testing.T) {
	for code, want := range map[string]class{
		"08006": classRetry, "57P01": classRetry, "53300": classRetry, "40P01": classRetry,
		"22P02": classData, "23505": classData, "23514": classData, "23502": classData,
		"42P01": classSchema, "42703": classSchema,
		"42501": classFatal, "28P01": classFatal, "42P10": classFatal,
	} {
		if got := classifyCode(code, ""); got != want {
			t.Errorf("classifyCode(%s) = %d, want %d", code, got, want)
		}
	}
	if got := classifyCode("57014", "COPY from stdin failed: unable to encode \"x\" into binary format"); got != classData {
		t.Errorf("a COPY pgx cancelled for a value it cannot encode: %d, want data", got)
	}
}

func TestDedupeKeepsTheLastRowOfAKey(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	a := &assembled{keyPos: []int{0, 1}, fast: [][]any{
		{"d1", t0, 1.0}, {"d2", t0, 2.0}, {"d1", t0, 3.0}, {int64(1), t0, 4.0}, {"1", t0, 5.0}, {"d1", t0.Add(1), 6.0},
	}}
	var got []float64
	for _, r := range dedupe(a) {
		got = append(got, r[2].(float64))
	}
	if want := []float64{2, 3, 4, 5, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dedupe kept %v, want %v", got, want)
	}
}
