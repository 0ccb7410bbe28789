package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The throughput harness compares the aggregate connector with a plain consume-and-produce
// copy of the same records, and with the same copy in transactions, in the same run. It is
// slow, so it runs only with SLUICE_BENCH=1.

const benchRounds = 3

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func TestBenchAggregateVsCopy(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 to run it")
	}
	const n = 300_000
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	raw := sluicetest.UniqueName("bench-raw")
	sluicetest.CreateTopic(t, c.Bootstrap, raw, 1)
	produceBenchFrames(t, c.Bootstrap, raw, n)

	var agg, plain, txn []float64
	for round := 0; round < benchRounds; round++ {
		name := sluicetest.UniqueName("bench-agg")
		sluicetest.CreateConnector(t, w.URL, name, map[string]string{
			"connector.class": "aggregate", "tasks.max": "1", "kafka.bootstrap.servers": c.Bootstrap,
			"source.topic": raw, "output.topic": sluicetest.UniqueName("bench-out"), "metrics.topic": sluicetest.UniqueName("bench-metrics"),
			"group.by": "device_id", "value.fields": "temperature,humidity,pressure,luminosity", "dedupe.field": "frame_id",
			"window.size": "10s", "topic.replication.factor": "-1"})
		agg = append(agg, sluicetest.SteadyRate(t, 5*time.Minute, "aggregated", n, func() int64 { return committedOne(t, c.Bootstrap, "sluice-aggregate-"+name, raw) }))
		sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil)
		plain = append(plain, copyRound(t, c.Bootstrap, raw, n, false))
		txn = append(txn, copyRound(t, c.Bootstrap, raw, n, true))
	}
	a, p, x := median(agg), median(plain), median(txn)
	t.Logf("aggregate %.0f frames/s, plain copy %.0f records/s, transactional copy %.0f records/s", a, p, x)
	fmt.Printf("BENCH aggregate frames/s=%.0f copy=%.0f ratio=%.2f\n", a, p, a/p)
	fmt.Printf("BENCH aggregate frames/s=%.0f transactional_copy=%.0f ratio=%.2f\n", a, x, a/x)
}

func produceBenchFrames(t *testing.T, bootstrap, topic string, n int) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all", "go.delivery.reports": false})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go func() {
		for range p.Events() {
		}
	}()
	base := baseTime()
	for i := 0; i < n; i++ {
		d := i % 100
		v, _ := json.Marshal(map[string]any{"frame_id": fmt.Sprintf("f%d", i), "device_id": fmt.Sprintf("d%d", d), "place_id": fmt.Sprintf("p%d", d%10),
			"ts": time.UnixMilli(base + int64(i/100)*100).UTC().Format(time.RFC3339Nano), "temperature": float64(i%400) / 10,
			"humidity": float64(i % 100), "pressure": 1000 + float64(i%50), "luminosity": float64(i % 1000)})
		for {
			err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0}, Key: []byte(fmt.Sprintf("d%d", d)), Value: v}, nil)
			if err == nil {
				break
			}
			p.Flush(100)
		}
	}
	if left := p.Flush(60_000); left > 0 {
		t.Fatalf("%d frames not delivered", left)
	}
}

func committedOne(t *testing.T, bootstrap, group, topic string) int64 {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Committed([]kafka.TopicPartition{{Topic: &topic, Partition: 0}}, 5000)
	if err != nil || len(got) == 0 || got[0].Offset < 0 {
		return 0
	}
	return int64(got[0].Offset)
}

// copyRound consumes the raw topic read_committed and produces each record unchanged to a new
// topic; transactional commits every second (or 50,000 records) with the offsets, as the
// connector does. It returns records/s from the first record consumed to the last delivered.
func copyRound(t *testing.T, bootstrap, raw string, n int, transactional bool) float64 {
	t.Helper()
	out := sluicetest.UniqueName("bench-copy")
	sluicetest.CreateTopic(t, bootstrap, out, 1)
	group := sluicetest.UniqueName("bench-copy")
	cons, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group,
		"isolation.level": "read_committed", "enable.auto.commit": false, "auto.offset.reset": "earliest"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pcfg := kafka.ConfigMap{"bootstrap.servers": bootstrap, "linger.ms": 20, "go.delivery.reports": false}
	if transactional {
		pcfg["transactional.id"] = group
	}
	prod, err := kafka.NewProducer(&pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	go func() {
		for range prod.Events() {
		}
	}()
	ctx := context.Background()
	if transactional {
		if err := prod.InitTransactions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := cons.Subscribe(raw, nil); err != nil {
		t.Fatal(err)
	}
	var t0 time.Time
	inTxn, batch, got := false, 0, 0
	var last kafka.TopicPartition
	commit := func() {
		if !inTxn {
			return
		}
		md, _ := cons.GetConsumerGroupMetadata()
		next := last
		next.Offset++
		if err := prod.SendOffsetsToTransaction(ctx, []kafka.TopicPartition{next}, md); err != nil {
			t.Fatal(err)
		}
		if err := prod.CommitTransaction(ctx); err != nil {
			t.Fatal(err)
		}
		inTxn, batch = false, 0
	}
	deadline := time.Now().Add(5 * time.Minute)
	txnStart := time.Now()
	for got < n && time.Now().Before(deadline) {
		ev := cons.Poll(100)
		m, ok := ev.(*kafka.Message)
		if !ok {
			if transactional && time.Since(txnStart) > time.Second {
				commit()
			}
			continue
		}
		if t0.IsZero() {
			t0 = time.Now()
		}
		if transactional && !inTxn {
			if err := prod.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			inTxn, txnStart = true, time.Now()
		}
		for prod.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &out, Partition: kafka.PartitionAny}, Key: m.Key, Value: m.Value}, nil) != nil {
			prod.Flush(100)
		}
		got++
		batch++
		last = m.TopicPartition
		if transactional && (batch >= 50_000 || time.Since(txnStart) > time.Second) {
			commit()
		}
	}
	if transactional {
		commit()
	} else if left := prod.Flush(60_000); left > 0 {
		t.Fatalf("%d records not delivered", left)
	}
	if got < n {
		t.Fatalf("copy consumed %d of %d", got, n)
	}
	return float64(n) / time.Since(t0).Seconds()
}
