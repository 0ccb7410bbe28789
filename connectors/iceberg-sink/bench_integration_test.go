package icebergsink_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// TestThroughput measures records/s of 1 KB JSON records through a worker into an Iceberg
// table at a 10 s commit interval, against appending the same rows with iceberg-go directly
// (Arrow built from the same JSON, 10 appends) in the same run, before and after the sink (the
// better run is the baseline). The records are in Kafka before the connector starts, so a run
// is one interval: the sustained rate is records over the time from the first record handed to
// the task to the last plus the commits' own time (at a steady load each interval is that work,
// one after the other in the task's loop); the end-to-end rate, which includes start-up and the
// idle wait for the interval to end, is logged too. SLUICE_BENCH=1 runs it;
// SLUICE_BENCH_RECORDS sets the count (default 200000).
func TestThroughput(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 to run it")
	}
	n := 200_000
	if v := os.Getenv("SLUICE_BENCH_RECORDS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("SLUICE_BENCH_RECORDS=%q: %v", v, err)
		}
	}
	pad := strings.Repeat("x", 800)
	msgs := make([]*kafka.Message, n)
	for i := range msgs {
		b, _ := json.Marshal(map[string]any{"seq": i, "device_id": fmt.Sprintf("dev-%d", i%100), "place_id": fmt.Sprintf("place-%d", i%10),
			"event_time": time.UnixMilli(1714564800000 + int64(i)).UTC().Format(time.RFC3339Nano), "temperature": 20.05 + float64(i%100)/10,
			"humidity": 40.5, "payload": pad})
		msgs[i] = &kafka.Message{Key: []byte(fmt.Sprintf("dev-%d", i%100)), Value: b}
	}
	t.Logf("record size: %d bytes", len(msgs[0].Value))

	// Raw: iceberg-go appends of the same rows, decoded from the same JSON.
	l := newLake(t)
	raw1 := rawAppend(t, l, "raw1", msgs)

	// Sluice: produce first, then time the connector from its start to the last commit.
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("ice-bench")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	w := c.StartWorker(map[string]string{"offset.flush.interval.ms": "60000"})
	name := sluicetest.UniqueName("ice-bench")
	start := time.Now()
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(l, topic, "commit.interval", "10s", "consumer.max.batch.records", "2000",
		"table.partition.by", "", "commit.buffer.records", "1000000"))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	tbl := tableOf(topic)
	// The time until the task has been handed every record: consumed, converted from JSON and
	// buffered as Arrow. The commit (Parquet files and snapshot) follows at the interval.
	// From the first record handed to the task (the connector and its consumer group have
	// started) to the last.
	var putFirst, putDone time.Duration
	for deadline := time.Now().Add(10 * time.Minute); putDone == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 minutes the task was handed %.0f of %d records", putTotal(t, w, name), n)
		}
		got := putTotal(t, w, name)
		if got > 0 && putFirst == 0 {
			putFirst = time.Since(start)
		}
		if got >= float64(n) {
			putDone = time.Since(start)
		}
	}
	sluicetest.Eventually(t, 10*time.Minute, "every record committed", func() (bool, string) {
		got := committed(l.load(t, tbl))
		return got == int64(n), fmt.Sprint(got)
	})
	total := time.Since(start)
	// Raw again after the sink, on a machine that may be busy with other work: the better of
	// the two runs is the baseline.
	raw2 := rawAppend(t, l, "raw2", msgs)
	raw := max(raw1, raw2)
	// The commits' own durations, from the task's log lines.
	var commits time.Duration
	for _, m := range regexp.MustCompile(`msg=committed .*took=(\S+)`).FindAllStringSubmatch(c.Logs.String(), -1) {
		d, _ := time.ParseDuration(m[1])
		commits += d
	}
	endToEnd := float64(n) / total.Seconds()
	// Sustained: at a steady load each interval is ingest then commit, one after the other in the
	// task's loop, so the rate is records over (ingest + commit) time; the idle wait for the
	// interval to end, which a finite run has once, is left out.
	sustained := float64(n) / (putDone - putFirst + commits).Seconds()
	t.Logf("iceberg-sink: %d records; handed to the task from %v to %v after the start, commits took %v, last commit after %v",
		n, putFirst.Round(time.Millisecond), putDone.Round(time.Millisecond), commits.Round(time.Millisecond), total.Round(time.Millisecond))
	t.Logf("iceberg-sink sustained: %.0f records/s (ratio to raw %.2f); end to end including start-up and the wait for the 10 s interval: %.0f records/s (ratio %.2f); raw iceberg-go appends: %.0f records/s (best of %.0f and %.0f)",
		sustained, sustained/raw, endToEnd, endToEnd/raw, raw, raw1, raw2)
}

// putTotal is the worker's count of records handed to the connector's tasks.
func putTotal(t *testing.T, w *sluicetest.Worker, connector string) float64 {
	mfs, err := w.W.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "sluice_sink_records_put_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "connector" && lp.GetValue() == connector {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// rawAppend decodes the messages as the JSON converter would, builds Arrow columns and appends
// them to a table with iceberg-go, 10 appends in all; it returns records/s.
func rawAppend(t *testing.T, l lake, name string, msgs []*kafka.Message) float64 {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.dir, name+".db")+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("raw", db, sqlcat.SQLite, iceberg.Properties{"warehouse": l.warehouse, "init_catalog_tables": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier(name), nil); err != nil {
		t.Fatal(err)
	}
	sc := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "device_id", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 2, Name: "event_time", Type: iceberg.PrimitiveTypes.TimestampTz},
		iceberg.NestedField{ID: 3, Name: "humidity", Type: iceberg.PrimitiveTypes.Float64},
		iceberg.NestedField{ID: 4, Name: "payload", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 5, Name: "place_id", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 6, Name: "seq", Type: iceberg.PrimitiveTypes.Int64},
		iceberg.NestedField{ID: 7, Name: "temperature", Type: iceberg.PrimitiveTypes.Float64})
	tbl, err := cat.CreateTable(ctx, catalog.ToIdentifier(name, "frames"), sc)
	if err != nil {
		t.Fatal(err)
	}
	asc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	chunk := (len(msgs) + 9) / 10
	for lo := 0; lo < len(msgs); lo += chunk {
		b := array.NewRecordBuilder(memory.DefaultAllocator, asc)
		for _, m := range msgs[lo:min(lo+chunk, len(msgs))] {
			var v map[string]any
			d := json.NewDecoder(strings.NewReader(string(m.Value)))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			b.Field(0).(*array.StringBuilder).Append(v["device_id"].(string))
			ts, _ := time.Parse(time.RFC3339Nano, v["event_time"].(string))
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
			h, _ := v["humidity"].(json.Number).Float64()
			b.Field(2).(*array.Float64Builder).Append(h)
			b.Field(3).(*array.StringBuilder).Append(v["payload"].(string))
			b.Field(4).(*array.StringBuilder).Append(v["place_id"].(string))
			s, _ := v["seq"].(json.Number).Int64()
			b.Field(5).(*array.Int64Builder).Append(s)
			f, _ := v["temperature"].(json.Number).Float64()
			b.Field(6).(*array.Float64Builder).Append(f)
		}
		rec := b.NewRecordBatch()
		b.Release()
		rdr, _ := array.NewRecordReader(asc, []arrow.RecordBatch{rec})
		if tbl, err = tbl.Append(ctx, rdr, nil); err != nil {
			t.Fatal(err)
		}
		rdr.Release()
		rec.Release()
	}
	rate := float64(len(msgs)) / time.Since(start).Seconds()
	t.Logf("raw iceberg-go: %d records in %v", len(msgs), time.Since(start).Round(time.Millisecond))
	return rate
}
