package icebergsink

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

var tp0 = connect.TopicPartition{Topic: "iot.raw", Partition: 0}

func frame(off int64, device string, temp float64, when time.Time) connect.Record {
	return connect.Record{Topic: "iot.raw", KafkaPartition: 0, KafkaOffset: off, Value: map[string]any{
		"device_id": device, "place_id": "p" + device[len(device)-1:], "temperature": temp,
		"seq": off, "event_time": when.Format(time.RFC3339Nano),
	}}
}

func startTask(t *testing.T, cfg connect.Config) (*Task, *connecttest.SinkContext) {
	t.Helper()
	task := &Task{}
	sc := connecttest.NewSinkContext(t, 0)
	if err := task.Start(t.Context(), cfg, sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop() })
	return task, sc
}

func TestWritesPartitionedRowsWithOffsetsInTheSnapshot(t *testing.T) {
	cfg := localConfig(t, connect.Config{"table.partition.by": "day(event_time),place_id", "schema.timestamp.fields": "event_time"})
	task, _ := startTask(t, cfg)
	if err := task.Open(t.Context(), []connect.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var batch []connect.Record
	for i := range 6 {
		batch = append(batch, frame(int64(i), fmt.Sprintf("dev%d", i%3), 20+float64(i)/2, day1.Add(time.Duration(i)*8*time.Hour)))
	}
	if err := task.Put(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	safe, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 6})
	if err != nil {
		t.Fatal(err)
	}
	if safe[tp0] != 6 {
		t.Fatalf("PreCommit = %v, want %s at 6", safe, tp0)
	}
	tbl := openTable(t, cfg, "iot_raw")
	rows := scanRows(t, tbl, "seq")
	if len(rows) != 6 {
		t.Fatalf("table has %d rows, want 6: %v", len(rows), rows)
	}
	for i, r := range rows {
		want := day1.Add(time.Duration(i) * 8 * time.Hour)
		if r["seq"] != int64(i) || r["device_id"] != fmt.Sprintf("dev%d", i%3) || r["temperature"] != 20+float64(i)/2 || r["event_time"] != want {
			t.Errorf("row %d = %v", i, r)
		}
	}
	if got := tbl.Schema().Field(0); got.Type.String() == "" {
		t.Fatal("no schema")
	}
	if f, ok := tbl.Schema().FindFieldByName("event_time"); !ok || f.Type.String() != "timestamptz" {
		t.Errorf("event_time column = %v", f)
	}
	spec := tbl.Spec()
	if spec.NumFields() != 2 || spec.Field(0).Transform.String() != "day" || spec.Field(1).Name != "place_id" {
		t.Errorf("partition spec = %v", spec)
	}
	// Three days and three places: the files are split by partition.
	files := 0
	tasks, err := tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]bool{}
	for _, ft := range tasks {
		files++
		parts[fmt.Sprint(ft.File.Partition())] = true
	}
	if len(parts) != 6 {
		t.Errorf("%d files in %d partitions, want 6 partitions (day x place)", files, len(parts))
	}
	snap := tbl.CurrentSnapshot()
	if got := snap.Summary.Properties[offsetsKey("test")]; got != `{"iot.raw/0":6}` {
		t.Errorf("snapshot summary offsets = %q", got)
	}
}

func TestResumesFromTheTableAndNeverWritesARecordTwice(t *testing.T) {
	cfg := localConfig(t, nil)
	task, _ := startTask(t, cfg)
	now := time.Now()
	if err := task.Put(t.Context(), []connect.Record{frame(0, "dev1", 1, now), frame(1, "dev2", 2, now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 2}); err != nil {
		t.Fatal(err)
	}
	// Buffered but never committed: lost with the task, delivered again to the next one.
	if err := task.Put(t.Context(), []connect.Record{frame(2, "dev3", 3, now)}); err != nil {
		t.Fatal(err)
	}
	_ = task.Stop()

	next, sc := startTask(t, cfg)
	if err := next.Open(t.Context(), []connect.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	if sc.Seeks[tp0] != 2 {
		t.Fatalf("Open seeked to %v, want %s at 2", sc.Seeks, tp0)
	}
	// The consumer group's offset may be older than the table's: records the table has are skipped.
	if err := next.Put(t.Context(), []connect.Record{frame(0, "dev1", 1, now), frame(1, "dev2", 2, now), frame(2, "dev3", 3, now), frame(3, "dev1", 4, now)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // the commit interval, 1 ms, is up
	if _, err := next.PreCommit(t.Context(), connect.Offsets{tp0: 4}); err != nil {
		t.Fatal(err)
	}
	rows := scanRows(t, openTable(t, cfg, "iot_raw"), "seq")
	var seqs []any
	for _, r := range rows {
		seqs = append(seqs, r["seq"])
	}
	if fmt.Sprint(seqs) != "[0 1 2 3]" {
		t.Fatalf("seq column = %v, want each of 0..3 once", seqs)
	}
}

func TestANewFieldAddsAColumnThatOldRowsReadAsNull(t *testing.T) {
	cfg := localConfig(t, nil)
	task, _ := startTask(t, cfg)
	now := time.Now()
	r2 := frame(1, "dev2", 2, now)
	r2.Value.(map[string]any)["humidity"] = 40.5
	if err := task.Put(t.Context(), []connect.Record{frame(0, "dev1", 1, now), r2}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 2}); err != nil {
		t.Fatal(err)
	}
	// And again after a commit, with the table's schema already known to the task.
	r3 := frame(2, "dev3", 3, now)
	r3.Value.(map[string]any)["pressure"] = int64(1013)
	if err := task.Put(t.Context(), []connect.Record{r3}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 3}); err != nil {
		t.Fatal(err)
	}
	tbl := openTable(t, cfg, "iot_raw")
	rows := scanRows(t, tbl, "seq")
	if len(rows) != 3 {
		t.Fatalf("rows = %v", rows)
	}
	if rows[0]["humidity"] != nil || rows[1]["humidity"] != 40.5 || rows[0]["pressure"] != nil || rows[1]["pressure"] != nil || rows[2]["pressure"] != int64(1013) {
		t.Errorf("rows = %v", rows)
	}
	if f, ok := tbl.Schema().FindFieldByName("pressure"); !ok || f.Type.String() != "long" || f.Required {
		t.Errorf("pressure column = %v", f)
	}
}

func TestSchemaEnvelopeGivesColumnTypes(t *testing.T) {
	cfg := localConfig(t, connect.Config{"table.route": "static", "table.name": "frames"})
	task, _ := startTask(t, cfg)
	sch := &connect.Schema{Type: connect.Struct, Fields: []connect.Field{
		{Name: "id", Schema: &connect.Schema{Type: connect.Int32}},
		{Name: "at", Schema: &connect.Schema{Type: connect.Int64, Name: timestampName}},
		{Name: "ok", Schema: &connect.Schema{Type: connect.Boolean, Optional: true}},
		{Name: "tags", Schema: &connect.Schema{Type: connect.Map, Keys: &connect.Schema{Type: connect.String}, Values: &connect.Schema{Type: connect.String}}},
	}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := connect.Record{Topic: "any", KafkaOffset: 0, ValueSchema: sch, Value: map[string]any{"id": int64(7), "at": at.UnixMilli(), "ok": true, "tags": map[string]any{"a": "b"}}}
	if err := task.Put(t.Context(), []connect.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{{Topic: "any"}: 1}); err != nil {
		t.Fatal(err)
	}
	tbl := openTable(t, cfg, "frames")
	if got := tbl.Schema().String(); !strings.Contains(got, "id: optional int") || !strings.Contains(got, "at: optional timestamptz") || !strings.Contains(got, "ok: optional boolean") || !strings.Contains(got, "tags: optional string") {
		t.Errorf("schema = %s", got)
	}
	rows := scanRows(t, tbl, "id")
	if len(rows) != 1 || rows[0]["id"] != int32(7) || rows[0]["at"] != at || rows[0]["tags"] != `{"a":"b"}` {
		t.Errorf("rows = %v", rows)
	}
}

func TestBadRecordsGoToTheErrorPolicyNamingFieldAndValue(t *testing.T) {
	cfg := localConfig(t, nil)
	task, sc := startTask(t, cfg)
	now := time.Now()
	bad := frame(1, "dev2", 2, now)
	bad.Value.(map[string]any)["seq"] = "twelve"
	if err := task.Put(t.Context(), []connect.Record{frame(0, "dev1", 1, now), bad, {Topic: "iot.raw", KafkaOffset: 2, Value: "not an object"}, frame(3, "dev3", 3, now)}); err != nil {
		t.Fatal(err)
	}
	if len(sc.Reasons) != 2 || !strings.Contains(sc.Reasons[0].Error(), `field "seq": bad value "twelve"`) {
		t.Fatalf("reported %v", sc.Reasons)
	}
	safe, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 4})
	if err != nil || safe[tp0] != 4 {
		t.Fatalf("PreCommit = %v, %v", safe, err)
	}
	if rows := scanRows(t, openTable(t, cfg, "iot_raw"), "seq"); len(rows) != 2 {
		t.Fatalf("rows = %v", rows)
	}
	// A policy that does not tolerate bad records fails the Put.
	sc.ReportErr = errors.New("no tolerance")
	bad.KafkaOffset = 4
	if err := task.Put(t.Context(), []connect.Record{bad}); err == nil || connect.IsRetriable(err) {
		t.Fatalf("Put = %v, want the policy's error", err)
	}
}

func TestAStaleTaskCannotCommitRecordsAnotherTaskCommitted(t *testing.T) {
	cfg := localConfig(t, nil)
	now := time.Now()
	recs := []connect.Record{frame(0, "dev1", 1, now), frame(1, "dev2", 2, now)}
	a, _ := startTask(t, cfg)
	b, sb := startTask(t, cfg)
	// Both buffer the same records: b was given the partition while a still had it.
	for _, task := range []*Task{a, b} {
		if err := task.Put(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PreCommit(t.Context(), connect.Offsets{tp0: 2}); err != nil {
		t.Fatal(err)
	}
	// b finds the table already has them all and drops its buffer instead of writing twice.
	time.Sleep(2 * time.Millisecond) // the commit interval, 1 ms, is up
	if _, err := b.PreCommit(t.Context(), connect.Offsets{tp0: 2}); err != nil {
		t.Fatal(err)
	}
	// a moves on by one record; b, stale, buffered two beyond the table's offset.
	if err := a.Put(t.Context(), []connect.Record{frame(2, "dev3", 3, now)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), []connect.Record{frame(2, "dev3", 3, now), frame(3, "dev1", 4, now)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // the commit interval, 1 ms, is up
	if _, err := a.PreCommit(t.Context(), connect.Offsets{tp0: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PreCommit(t.Context(), connect.Offsets{tp0: 4}); !errors.Is(err, errOverlap) {
		t.Fatalf("stale commit: %v, want an overlap error", err)
	}
	if sb.Seeks[tp0] != 3 {
		t.Errorf("stale task seeked to %v, want 3", sb.Seeks)
	}
	tbl := openTable(t, cfg, "iot_raw")
	if rows := scanRows(t, tbl, "seq"); len(rows) != 3 {
		t.Fatalf("rows = %v", rows)
	}
	if n := numSnapshots(tbl); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
}

func TestRoutesByField(t *testing.T) {
	cfg := localConfig(t, connect.Config{"table.route": "field", "table.route.field": "kind"})
	task, sc := startTask(t, cfg)
	var recs []connect.Record
	for i, kind := range []string{"temp", "hum", "temp", ""} {
		recs = append(recs, connect.Record{Topic: "iot.raw", KafkaOffset: int64(i), Value: map[string]any{"kind": kind, "v": int64(i)}})
	}
	if err := task.Put(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 4}); err != nil {
		t.Fatal(err)
	}
	if n := len(scanRows(t, openTable(t, cfg, "temp"), "v")); n != 2 {
		t.Errorf("temp has %d rows", n)
	}
	if n := len(scanRows(t, openTable(t, cfg, "hum"), "v")); n != 1 {
		t.Errorf("hum has %d rows", n)
	}
	if len(sc.Reported) != 1 || sc.Reported[0].KafkaOffset != 3 {
		t.Errorf("reported %v", sc.Reported)
	}
}

func TestWaitsForTheCommitInterval(t *testing.T) {
	cfg := localConfig(t, connect.Config{"commit.interval": "1h"})
	task, _ := startTask(t, cfg)
	if err := task.Put(t.Context(), []connect.Record{frame(0, "dev1", 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	safe, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 1})
	if err != nil || safe[tp0] != 0 {
		t.Fatalf("PreCommit = %v, %v; want nothing new to commit before the interval", safe, err)
	}
	if tbl := openTable(t, cfg, "iot_raw"); tbl.CurrentSnapshot() != nil {
		t.Fatal("committed before the interval")
	}
}

// A reading that is whole in the first record and fractional later: infer makes a long column
// and the later reading a bad record; schema.json.numbers=double keeps both.
func TestJSONNumbersAsDouble(t *testing.T) {
	for _, tt := range []struct {
		numbers string
		rows    int
		bad     int
	}{{"infer", 1, 1}, {"double", 2, 0}} {
		t.Run(tt.numbers, func(t *testing.T) {
			cfg := localConfig(t, connect.Config{"schema.json.numbers": tt.numbers})
			task, sc := startTask(t, cfg)
			now := time.Now()
			whole, fractional := frame(0, "dev1", 0, now), frame(1, "dev1", 0, now)
			whole.Value.(map[string]any)["temperature"] = int64(21)
			fractional.Value.(map[string]any)["temperature"] = 21.5
			if err := task.Put(t.Context(), []connect.Record{whole, fractional}); err != nil {
				t.Fatal(err)
			}
			if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 2}); err != nil {
				t.Fatal(err)
			}
			rows := scanRows(t, openTable(t, cfg, "iot_raw"), "seq")
			if len(rows) != tt.rows || len(sc.Reasons) != tt.bad {
				t.Fatalf("rows %v, bad records %v", rows, sc.Reasons)
			}
			if tt.numbers == "double" && (rows[0]["temperature"] != 21.0 || rows[1]["temperature"] != 21.5) {
				t.Errorf("temperatures %v and %v, want 21 and 21.5", rows[0]["temperature"], rows[1]["temperature"])
			}
		})
	}
}
