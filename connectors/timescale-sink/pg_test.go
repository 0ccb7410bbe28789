package timescalesink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// Task-level tests against the test PostgreSQL. Each test works in a schema of its own.

var schemaSeq struct {
	sync.Mutex
	n int
}

// testDB connects to the test database, which has the timescaledb extension, and creates a
// schema for the test, dropped at its end.
func testDB(t *testing.T) (url string, db *pgxpool.Pool, schema string) {
	t.Helper()
	return testDBOn(t, connecttest.EnvPostgres)
}

// plainDB is testDB on the test database without the timescaledb extension.
func plainDB(t *testing.T) (url string, db *pgxpool.Pool, schema string) {
	t.Helper()
	return testDBOn(t, connecttest.EnvPostgresPlain)
}

// eachDatabase runs test on the database with TimescaleDB and on the one without it.
func eachDatabase(t *testing.T, test func(t *testing.T, url string, db *pgxpool.Pool, schema string)) {
	for name, open := range map[string]func(*testing.T) (string, *pgxpool.Pool, string){"timescaledb": testDB, "plain": plainDB} {
		t.Run(name, func(t *testing.T) {
			url, db, schema := open(t)
			test(t, url, db, schema)
		})
	}
}

func testDBOn(t *testing.T, env string) (url string, db *pgxpool.Pool, schema string) {
	t.Helper()
	url = connecttest.Env(t, env)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	schemaSeq.Lock()
	schemaSeq.n++
	schema = fmt.Sprintf("ts_%d_%d", time.Now().UnixNano()%1e9, schemaSeq.n)
	schemaSeq.Unlock()
	if _, err := db.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	})
	return url, db, schema
}

// logContext is a SinkContext whose log the test can read.
type logContext struct {
	*connecttest.SinkContext
	buf *syncBuffer
}

func (c *logContext) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startPG(t *testing.T, url string, kv ...string) (*Task, *logContext) {
	t.Helper()
	cfg := connect.Config{"connection.url": url}
	for i := 0; i < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	tc := &logContext{SinkContext: connecttest.NewSinkContext(t, 0), buf: &syncBuffer{}}
	task := &Task{}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("task log:\n%s", tc.buf.String())
		}
	})
	return task, tc
}

func putPG(t *testing.T, task *Task, recs ...connect.Record) {
	t.Helper()
	if err := task.Put(t.Context(), recs); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func queryStrings(t *testing.T, db *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339Nano)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func columnTypes(t *testing.T, db *pgxpool.Pool, schema, table string) string {
	t.Helper()
	return strings.Join(queryStrings(t, db, `SELECT column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table), ", ")
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func reading(topic string, offset int64, value map[string]any) connect.Record {
	return connect.Record{Topic: topic, KafkaPartition: 0, KafkaOffset: offset, Key: fmt.Sprint("dev-", offset%3),
		Time: t0.Add(time.Duration(offset) * time.Second), Value: value}
}

// TestAutoCreateAppendAndEvolve runs on PostgreSQL without TimescaleDB, which users run too.
func TestAutoCreateAppendAndEvolve(t *testing.T) {
	url, db, schema := plainDB(t)
	task, tc := startPG(t, url, "table", schema+".${topic}", "auto.create", "true", "auto.evolve", "true", "auto.create.json.numbers", "infer")
	putPG(t, task,
		reading("iot.raw", 0, map[string]any{"device_id": "d1", "reading": map[string]any{"temp": 21.5, "hum": int64(40)}, "ok": true, "tags": []any{"a"}}),
		reading("iot.raw", 1, map[string]any{"device_id": "d2", "reading": map[string]any{"temp": int64(22), "hum": int64(41)}, "ok": false, "note": nil}),
	)
	if got, want := columnTypes(t, db, schema, "iot_raw"),
		"time timestamp with time zone, device_id text, ok boolean, reading_hum bigint, reading_temp double precision, tags jsonb"; got != want {
		t.Errorf("created columns:\n%s\nwant\n%s", got, want)
	}
	// A new field arrives mid-stream; and a null one that now has a value.
	putPG(t, task,
		reading("iot.raw", 2, map[string]any{"device_id": "d1", "reading": map[string]any{"temp": 23.0, "hum": int64(42), "lux": int64(300)}, "note": "new battery"}),
		reading("iot.raw", 3, map[string]any{"device_id": "d3", "reading": map[string]any{"temp": 24.25}}),
	)
	if got, want := columnTypes(t, db, schema, "iot_raw"),
		"time timestamp with time zone, device_id text, ok boolean, reading_hum bigint, reading_temp double precision, tags jsonb, note text, reading_lux bigint"; got != want {
		t.Errorf("evolved columns:\n%s\nwant\n%s", got, want)
	}
	got := queryStrings(t, db, `SELECT time, device_id, coalesce(ok::text, '-'), coalesce(reading_hum, -1), reading_temp, coalesce(tags::text, '-'),
		coalesce(note, '-'), coalesce(reading_lux, -1) FROM `+schema+`.iot_raw ORDER BY time`)
	want := []string{
		"2024-05-01T12:00:00Z|d1|true|40|21.5|[\"a\"]|-|-1",
		"2024-05-01T12:00:01Z|d2|false|41|22|-|-|-1",
		"2024-05-01T12:00:02Z|d1|-|42|23|-|new battery|300",
		"2024-05-01T12:00:03Z|d3|-|-1|24.25|-|-|-1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(tc.buf.String(), "timescaledb extension is not installed"); n != 1 {
		t.Errorf("the log says %d times that timescaledb is missing, want once:\n%s", n, tc.buf.String())
	}
	if len(tc.Reported) != 0 {
		t.Errorf("reported %v", tc.Reasons)
	}
}

func TestWithoutAutoEvolveUnknownFieldsGoToTheCatchAll(t *testing.T) {
	url, db, schema := testDB(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".m (time timestamptz NOT NULL, device_id text, temp double precision, extra jsonb)"); err != nil {
		t.Fatal(err)
	}
	task, _ := startPG(t, url, "table", schema+".m", "fields.catchall.column", "extra", "time.field", "ts")
	putPG(t, task, reading("x", 0, map[string]any{"ts": "2024-05-01T12:00:00Z", "device_id": "d1", "temp": 1.5, "fw": "1.2", "gps": map[string]any{"lat": 1.5}}))
	got := queryStrings(t, db, "SELECT time, device_id, temp, extra::text FROM "+schema+".m")
	if want := `2024-05-01T12:00:00Z|d1|1.5|{"fw": "1.2", "gps_lat": 1.5}`; len(got) != 1 || got[0] != want {
		t.Errorf("rows %q, want %q", got, want)
	}
}

func TestMissingTableWithoutAutoCreateFailsTheTask(t *testing.T) {
	url, _, schema := testDB(t)
	task, _ := startPG(t, url, "table", schema+".nope")
	err := task.Put(t.Context(), []connect.Record{reading("x", 0, map[string]any{"a": int64(1)})})
	if err == nil || connect.IsRetriable(err) || !strings.Contains(err.Error(), `table "`+schema+`"."nope" does not exist`) {
		t.Fatalf("Put = %v, want a non-retriable error naming the table", err)
	}
}

func TestUpsert(t *testing.T) { eachDatabase(t, testUpsert) }

func testUpsert(t *testing.T, url string, db *pgxpool.Pool, schema string) {
	task, _ := startPG(t, url, "table", schema+".agg", "auto.create", "true", "insert.mode", "upsert",
		"key.columns", "device_id,time", "time.field", "window_start")
	w := func(off int64, dev string, start time.Time, avg float64, n int64) connect.Record {
		return connect.Record{Topic: "iot.agg", KafkaOffset: off, Key: dev,
			Value: map[string]any{"window_start": start.Format(time.RFC3339), "avg": avg, "n": n}}
	}
	t1 := t0.Add(time.Minute)
	putPG(t, task, w(0, "d1", t0, 20, 1), w(1, "d2", t0, 30, 1), w(2, "d1", t0, 21, 2)) // d1 twice in a batch: the last wins
	putPG(t, task, w(3, "d1", t0, 22, 3), w(4, "d1", t1, 25, 1))
	got := queryStrings(t, db, "SELECT device_id, time, avg, n FROM "+schema+".agg ORDER BY device_id, time")
	want := []string{"d1|2024-05-01T12:00:00Z|22|3", "d1|2024-05-01T12:01:00Z|25|1", "d2|2024-05-01T12:00:00Z|30|1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if pk := queryStrings(t, db, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, schema+".agg"); len(pk) != 1 || pk[0] != "PRIMARY KEY (device_id, \"time\")" {
		t.Errorf("primary key %q", pk)
	}
}

func TestSchemaEnvelopeTypes(t *testing.T) {
	url, db, schema := testDB(t)
	task, _ := startPG(t, url, "table", schema+".s", "auto.create", "true")
	s := &connect.Schema{Type: connect.Struct, Fields: []connect.Field{
		{Name: "id", Schema: &connect.Schema{Type: connect.Int32}},
		{Name: "level", Schema: &connect.Schema{Type: connect.Int16}},
		{Name: "ratio", Schema: &connect.Schema{Type: connect.Float32}},
		{Name: "price", Schema: &connect.Schema{Type: connect.Bytes, Name: logicalDecimal, Parameters: map[string]string{"scale": "2"}}},
		{Name: "seen", Schema: &connect.Schema{Type: connect.Int64, Name: logicalTimestamp}},
		{Name: "label", Schema: &connect.Schema{Type: connect.String, Optional: true}},
		{Name: "pos", Schema: &connect.Schema{Type: connect.Struct, Fields: []connect.Field{{Name: "x", Schema: &connect.Schema{Type: connect.Float64}}}}},
		{Name: "attrs", Schema: &connect.Schema{Type: connect.Map, Keys: &connect.Schema{Type: connect.String}, Values: &connect.Schema{Type: connect.String}}},
	}}
	rec := reading("t", 0, map[string]any{"id": int64(7), "level": int64(2), "ratio": 0.5, "price": "12.30", "seen": t0,
		"label": "x", "pos": map[string]any{"x": 1.25}, "attrs": map[string]any{"k": "v"}})
	rec.ValueSchema = s
	putPG(t, task, rec)
	if got, want := columnTypes(t, db, schema, "s"),
		"time timestamp with time zone, attrs jsonb, id integer, label text, level smallint, pos_x double precision, price numeric, ratio real, seen timestamp with time zone"; got != want {
		t.Errorf("columns:\n%s\nwant\n%s", got, want)
	}
	got := queryStrings(t, db, "SELECT id, level, ratio, price::text, seen, label, pos_x, attrs::text FROM "+schema+".s")
	if want := `7|2|0.5|12.30|2024-05-01T12:00:00Z|x|1.25|{"k": "v"}`; len(got) != 1 || got[0] != want {
		t.Errorf("row %q, want %q", got, want)
	}
}

func TestBadRowsGoToTheErrorPolicyWithTheDatabasesMessage(t *testing.T) {
	url, db, schema := testDB(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".m (time timestamptz NOT NULL, device_id text NOT NULL, temp double precision, hum double precision CHECK (hum BETWEEN 0 AND 100))"); err != nil {
		t.Fatal(err)
	}
	task, tc := startPG(t, url, "table", schema+".m")
	putPG(t, task,
		reading("x", 0, map[string]any{"device_id": "d0", "temp": 20.5, "hum": 50.0}),
		reading("x", 1, map[string]any{"device_id": "d1", "temp": "warm", "hum": 50.0}), // caught before COPY
		reading("x", 2, map[string]any{"device_id": "d2", "temp": 21.5, "hum": 150.0}),  // the COPY fails
		reading("x", 3, map[string]any{"temp": 22.5}),                                   // not null
		reading("x", 4, map[string]any{"device_id": "d4", "temp": "23.5", "hum": int64(60)}),
		connect.Record{Topic: "x", KafkaOffset: 5, Value: "not an object", Time: t0},
	)
	got := queryStrings(t, db, "SELECT device_id, temp, hum FROM "+schema+".m ORDER BY device_id")
	if want := []string{"d0|20.5|50", "d4|23.5|60"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %q, want the good ones %q", got, want)
	}
	wantReasons := map[int64]string{
		1: `invalid input syntax for type double precision: "warm" [SQLSTATE 22P02]`,
		2: `new row for relation "m" violates check constraint "m_hum_check"`,
		3: `column "device_id": null value in column "device_id"`,
		5: `must be a JSON object or a struct`,
	}
	if len(tc.Reported) != len(wantReasons) {
		t.Fatalf("reported %d records (%v), want %d", len(tc.Reported), tc.Reasons, len(wantReasons))
	}
	for i, rec := range tc.Reported {
		if want := wantReasons[rec.KafkaOffset]; want == "" || !strings.Contains(tc.Reasons[i].Error(), want) {
			t.Errorf("offset %d reported with %q, want %q", rec.KafkaOffset, tc.Reasons[i], want)
		}
	}

	// An error policy that does not tolerate bad records fails the Put, and nothing is written.
	tc.ReportErr = fmt.Errorf("tolerance exceeded")
	err := task.Put(t.Context(), []connect.Record{reading("x", 6, map[string]any{"device_id": "d6", "temp": 1.0}), reading("x", 7, map[string]any{"device_id": "d7", "hum": -1.0})})
	if err == nil || err.Error() != "tolerance exceeded" || connect.IsRetriable(err) {
		t.Fatalf("Put = %v, want the error policy's answer", err)
	}
	if got := queryStrings(t, db, "SELECT count(*) FROM "+schema+".m WHERE device_id = 'd6'"); got[0] != "0" {
		t.Errorf("the good row of a refused batch was written")
	}
}

func TestExactlyOnceSkipsWhatIsStoredAndSeeksOnOpen(t *testing.T) {
	eachDatabase(t, testExactlyOnceSkipsWhatIsStoredAndSeeksOnOpen)
}

func testExactlyOnceSkipsWhatIsStoredAndSeeksOnOpen(t *testing.T, url string, db *pgxpool.Pool, schema string) {
	settings := []string{"table", schema + ".e", "auto.create", "true", "exactly.once", "true", "offsets.table", schema + ".offsets"}
	task, tc := startPG(t, url, settings...)
	p0 := connect.TopicPartition{Topic: "iot.raw", Partition: 0}
	p1 := connect.TopicPartition{Topic: "iot.raw", Partition: 1}
	if err := task.Open(t.Context(), []connect.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	if len(tc.Seeks) != 0 {
		t.Fatalf("seeks %v before anything was stored", tc.Seeks)
	}
	rec := func(p int32, off int64) connect.Record {
		return connect.Record{Topic: "iot.raw", KafkaPartition: p, KafkaOffset: off, Time: t0, Value: map[string]any{"p": int64(p), "off": off}}
	}
	putPG(t, task, rec(0, 0), rec(0, 1), rec(1, 10))
	putPG(t, task, rec(0, 2), rec(1, 11))

	// A new task (a restart) resumes after what was stored ...
	task2, tc2 := startPG(t, url, settings...)
	if err := task2.Open(t.Context(), []connect.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	if tc2.Seeks[p0] != 3 || tc2.Seeks[p1] != 12 || len(tc2.Seeks) != 2 {
		t.Errorf("seeks %v, want %s at 3 and %s at 12", tc2.Seeks, p0, p1)
	}
	// ... and records delivered again anyway (Kafka's older committed offsets) are skipped.
	putPG(t, task2, rec(0, 1), rec(0, 2), rec(0, 3), rec(1, 11), rec(1, 12))
	got := queryStrings(t, db, "SELECT p, off FROM "+schema+".e ORDER BY p, off")
	if want := []string{"0|0", "0|1", "0|2", "0|3", "1|10", "1|11", "1|12"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %v, want each record once: %v", got, want)
	}
	got = queryStrings(t, db, "SELECT connector, topic, kafka_partition, next_offset FROM "+schema+".offsets ORDER BY kafka_partition")
	if want := []string{"test|iot.raw|0|4", "test|iot.raw|1|13"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stored offsets %v, want %v", got, want)
	}
}

func TestConnectionLossIsRetriable(t *testing.T) {
	url, db, schema := testDB(t)
	app := "ts_" + schema // only this task's connections are killed
	task, _ := startPG(t, url+"&application_name="+app, "table", schema+".c", "auto.create", "true")
	putPG(t, task, reading("x", 0, map[string]any{"a": int64(1)}))
	// Kill the task's connections, as a database restart would.
	killed := queryStrings(t, db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app)
	if killed[0] == "0" {
		t.Fatalf("the task has no connection to kill")
	}
	err := task.Put(t.Context(), []connect.Record{reading("x", 1, map[string]any{"a": int64(2)})})
	if err != nil && !connect.IsRetriable(err) {
		t.Fatalf("Put after the connection was killed = %v, want a retriable error", err)
	}
	if err != nil { // the runtime hands the same batch again
		putPG(t, task, reading("x", 1, map[string]any{"a": int64(2)}))
	}
	if got := queryStrings(t, db, "SELECT a FROM "+schema+".c ORDER BY a"); strings.Join(got, ",") != "1,2" {
		t.Errorf("rows %v, want 1,2", got)
	}

	// A database that cannot be reached is retriable too.
	down, _ := startPG(t, "postgres://sluice:x@127.0.0.1:1/db", "table", "x", "connection.timeout", "1s")
	err = down.Put(t.Context(), []connect.Record{reading("x", 0, map[string]any{"a": int64(1)})})
	if !connect.IsRetriable(err) {
		t.Fatalf("Put with the database unreachable = %v, want a retriable error", err)
	}
}

func TestUpsertKeepsRecordOrderAndRefusesBadRows(t *testing.T) {
	url, db, schema := testDB(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".u (time timestamptz NOT NULL, device_id text NOT NULL, n bigint, seen timestamptz, PRIMARY KEY (device_id, time))"); err != nil {
		t.Fatal(err)
	}
	task, tc := startPG(t, url, "table", schema+".u", "insert.mode", "upsert", "key.columns", "device_id,time", "time.field", "ts")
	rec := func(off int64, dev string, n any, seen string) connect.Record {
		return connect.Record{Topic: "x", KafkaOffset: off, Value: map[string]any{"ts": "2024-05-01T12:00:00Z", "device_id": dev, "n": n, "seen": seen}}
	}
	putPG(t, task,
		rec(0, "d1", int64(1), "2024-05-01T12:00:00Z"),
		rec(1, "d1", int64(2), "2024-05-01 12:30:00+00"), // PostgreSQL parses this time, the task does not: written on its own
		rec(2, "d1", int64(3), "2024-05-01T13:00:00Z"),
		rec(3, "d2", "many", "2024-05-01T13:00:00Z"),
	)
	got := queryStrings(t, db, "SELECT device_id, n, seen FROM "+schema+".u ORDER BY device_id")
	if want := []string{"d1|3|2024-05-01T13:00:00Z"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %v, want %v: the last record of the key wins", got, want)
	}
	if len(tc.Reported) != 1 || tc.Reported[0].KafkaOffset != 3 || !strings.Contains(tc.Reasons[0].Error(), `invalid input syntax for type bigint: "many"`) {
		t.Errorf("reported %v %v, want offset 3 with the database's message", tc.Reported, tc.Reasons)
	}
}

// TestUpsertBatchesSmallAndLarge covers both ways an upsert batch is written: up to
// smallUpsert rows as one INSERT ... ON CONFLICT, more through the staging table. A row the
// database refuses in a small batch sends the batch to the row-by-row path, and a table
// without a unique constraint on the key columns is explained either way.
func TestUpsertBatchesSmallAndLarge(t *testing.T) {
	url, db, schema := testDB(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".v (time timestamptz NOT NULL, device_id text NOT NULL, n bigint CHECK (n >= 0), PRIMARY KEY (device_id, time))"); err != nil {
		t.Fatal(err)
	}
	task, tc := startPG(t, url, "table", schema+".v", "insert.mode", "upsert", "key.columns", "device_id,time", "time.field", "ts")
	rec := func(off int64, dev string, n int64) connect.Record {
		return connect.Record{Topic: "x", KafkaOffset: off, Value: map[string]any{"ts": "2024-05-01T12:00:00Z", "device_id": dev, "n": n}}
	}
	putPG(t, task, rec(0, "d1", 1), rec(1, "d2", -1), rec(2, "d3", 2)) // d2 breaks the CHECK
	if got, want := queryStrings(t, db, "SELECT device_id, n FROM "+schema+".v ORDER BY device_id"), []string{"d1|1", "d3|2"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("small batch: rows %v, want %v", got, want)
	}
	if len(tc.Reported) != 1 || tc.Reported[0].KafkaOffset != 1 || !strings.Contains(tc.Reasons[0].Error(), "violates check constraint") {
		t.Errorf("small batch: reported %v %v, want offset 1 with the database's message", tc.Reported, tc.Reasons)
	}

	for round := range int64(2) { // the second round updates every row of the first
		var batch []connect.Record
		for i := range int64(smallUpsert + 50) {
			batch = append(batch, rec(100+round*1000+i, fmt.Sprint("big-", i), i+round))
		}
		putPG(t, task, batch...)
	}
	if got := queryStrings(t, db, "SELECT count(*), sum(n)::bigint FROM "+schema+".v WHERE device_id LIKE 'big-%'"); len(got) != 1 || got[0] != "150|11325" {
		t.Errorf("large batches: count and sum %v, want 150|11325 (each row once, with the second round's value)", got)
	}

	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".nokey (time timestamptz NOT NULL, device_id text NOT NULL, n bigint)"); err != nil {
		t.Fatal(err)
	}
	nokey, _ := startPG(t, url, "table", schema+".nokey", "insert.mode", "upsert", "key.columns", "device_id,time", "time.field", "ts")
	for _, n := range []int{1, smallUpsert + 1} {
		var batch []connect.Record
		for i := range n {
			batch = append(batch, rec(int64(i), fmt.Sprint("d", i), 1))
		}
		if err := nokey.Put(t.Context(), batch); err == nil || !strings.Contains(err.Error(), "has no primary key or unique constraint on key.columns") {
			t.Errorf("a batch of %d into a table without a key: %v, want the missing constraint explained", n, err)
		}
	}
}

func TestAutoEvolveAddsTheCatchAllColumn(t *testing.T) {
	url, db, schema := testDB(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".k (time timestamptz NOT NULL, temp double precision)"); err != nil {
		t.Fatal(err)
	}
	task, _ := startPG(t, url, "table", schema+".k", "auto.evolve", "true", "fields.catchall.column", "extra", "fields.mapping", "t:temp")
	putPG(t, task, reading("x", 0, map[string]any{"t": 1.5, "fw": "2.0"}))
	if got := queryStrings(t, db, "SELECT temp, extra::text FROM "+schema+".k"); len(got) != 1 || got[0] != `1.5|{"fw": "2.0"}` {
		t.Errorf("rows %q", got)
	}
}

// TestLargeBatch covers batches mapped on two goroutines: every row written, bad records of
// both halves reported.
func TestLargeBatch(t *testing.T) {
	url, db, schema := testDB(t)
	task, tc := startPG(t, url, "table", schema+".big", "auto.create", "true", "fields.catchall.column", "extra", "time.field", "ts")
	var batch []connect.Record
	for i := range 600 {
		v := map[string]any{"ts": t0.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano), "n": int64(i),
			"reading": map[string]any{"temp": float64(i) / 10, fmt.Sprintf("extra_%d", i%3): true}}
		if i == 10 || i == 590 {
			delete(v, "ts")
		}
		batch = append(batch, connect.Record{Topic: "big", KafkaPartition: int32(i % 2), KafkaOffset: int64(i), Value: v})
	}
	putPG(t, task, batch...)
	got := queryStrings(t, db, "SELECT count(*), count(DISTINCT n), sum(n)::text, count(reading_extra_0), round(sum(reading_temp)::numeric, 1)::text FROM "+schema+".big")
	if want := "598|598|179100|200|17910.0"; got[0] != want {
		t.Errorf("count, distinct, sum, extra_0, temp sum = %s, want %s", got[0], want)
	}
	if len(tc.Reported) != 2 || tc.Reported[0].KafkaOffset != 10 || tc.Reported[1].KafkaOffset != 590 {
		t.Errorf("reported %v", tc.Reasons)
	}
}
