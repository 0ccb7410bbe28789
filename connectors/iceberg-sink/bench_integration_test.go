package icebergsink_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	"github.com/sluicehq/sluice/runtime"
)

// TestThroughput measures records/s of 1 KB JSON records through a worker into an Iceberg
// table at a 10 s commit interval, against appending the same rows with iceberg-go directly
// (Arrow built from the same JSON, one append per 10 s worth of the sink's rate) in the same
// run. SLUICE_BENCH=1 runs it; SLUICE_BENCH_RECORDS sets the count (default 200000).
func TestThroughput(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 to run it")
	}
	n := 200_000
	if v := os.Getenv("SLUICE_BENCH_RECORDS"); v != "" {
		fmt.Sscan(v, &n)
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
	raw := rawAppend(t, l, msgs)

	// Sluice: produce first, then time the connector from its start to the last commit.
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("ice-bench")
	createTopic(t, c.Bootstrap, topic, 2)
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	w := c.StartWorker(map[string]string{"offset.flush.interval.ms": "60000"})
	name := sluicetest.UniqueName("ice-bench")
	start := time.Now()
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(l, topic, "commit.interval", "10s", "consumer.max.batch.records", "2000",
		"table.partition.by", "", "commit.buffer.records", "1000000"))
	sluicetest.WaitState(t, w.URL, name, runtime.StateRunning, 1)
	tbl := tableOf(topic)
	sluicetest.Eventually(t, 10*time.Minute, "every record committed", func() (bool, string) {
		got := committed(l.load(t, tbl))
		return got == int64(n), fmt.Sprint(got)
	})
	sink := float64(n) / time.Since(start).Seconds()
	t.Logf("iceberg-sink: %d records in %v: %.0f records/s; raw iceberg-go appends: %.0f records/s; ratio %.2f",
		n, time.Since(start).Round(time.Millisecond), sink, raw, sink/raw)
}

// rawAppend decodes the messages as the JSON converter would, builds Arrow columns and appends
// them to a table with iceberg-go, 10 appends in all; it returns records/s.
func rawAppend(t *testing.T, l lake, msgs []*kafka.Message) float64 {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.dir, "raw.db")+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("raw", db, sqlcat.SQLite, iceberg.Properties{"warehouse": l.warehouse, "init_catalog_tables": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier("raw"), nil); err != nil {
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
	tbl, err := cat.CreateTable(ctx, catalog.ToIdentifier("raw", "frames"), sc)
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
