package worker_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The throughput harness compares Sluice with the raw clients doing the same work in the same
// run, confluent-kafka-go (the client Sluice uses) and franz-go (a second anchor: a pure Go
// client that fetches and produces whole batches), and reports records/s and the ratios. It is slow, so it runs only with
// SLUICE_BENCH=1 (make bench).

func benchRecords(t *testing.T) int {
	t.Helper()
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 (make bench) to run it")
	}
	return 1_000_000
}

// discardConnector is a sink that drops every record: what is measured is the runtime.
type discardConnector struct{ connect.Base }
type discardConfig struct{}
type discardTask struct{}

func (*discardConnector) NewTask() connect.SinkTask { return discardTask{} }
func (discardTask) Start(context.Context, connect.Config, connect.SinkTaskContext) error {
	return nil
}
func (discardTask) Put(context.Context, []connect.Record) error { return nil }
func (discardTask) PreCommit(_ context.Context, o connect.Offsets) (connect.Offsets, error) {
	return o, nil
}
func (discardTask) Stop() error { return nil }

func report(t *testing.T, what string, s, r float64) {
	t.Helper()
	t.Logf("%s: sluice %.0f records/s, raw client %.0f records/s, ratio %.2f", what, s, r, s/r)
	fmt.Printf("BENCH %s sluice=%.0f raw=%.0f ratio=%.2f\n", strings.ReplaceAll(what, " ", "_"), s, r, s/r)
}

func TestThroughputSourceVsRawProducer(t *testing.T) {
	n := benchRecords(t)
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"offset.flush.interval.ms": "1000"})
	var sluice, raw, franz []float64
	for round := 0; round <= benchRounds; round++ {
		s, r, f := sourceRound(t, c, w, n, round), rawProducerRound(t, c, n), franzProducerRound(t, c, n)
		if round > 0 { // round 0 warms Kafka up for both sides
			sluice, raw, franz = append(sluice, s), append(raw, r), append(franz, f)
		}
	}
	t.Logf("rounds: sluice %.0f, raw %.0f, franz-go %.0f", sluice, raw, franz)
	report(t, "source to Kafka", median(sluice), median(raw))
	report(t, "source to Kafka vs franz-go", median(sluice), median(franz))
}

// franzProducerRound produces the same records with franz-go, the second raw anchor:
// idempotent, acks=all, the same 5 ms linger.
func franzProducerRound(t *testing.T, c *sluicetest.Cluster, n int) float64 {
	topic := sluicetest.UniqueName("bench-franz")
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var acked atomic.Int64
	rate := make(chan float64, 1)
	go func() {
		rate <- sluicetest.SteadyRate(t, 5*time.Minute, "franz-go records acknowledged", int64(n), func() int64 { return acked.Load() })
	}()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte("0-0"), Value: []byte(fmt.Sprintf("%0100d", i))}, func(_ *kgo.Record, err error) {
			if err == nil {
				acked.Add(1)
			}
		})
	}
	return <-rate
}

// benchRounds is how many times each side runs after a warm-up round; the medians are
// compared.
const benchRounds = 5

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// sourceRound runs datagen -> Kafka with 100-byte string values in one task.
func sourceRound(t *testing.T, _ *sluicetest.Cluster, w *sluicetest.Worker, n, round int) float64 {
	name := fmt.Sprintf("bench-gen-%d", round)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
		"connector.class": "datagen", "kafka.topic": sluicetest.UniqueName("bench-src"), "max.records": fmt.Sprint(n), "format": "string",
		"payload.bytes": "100", "value.converter": "string", "batch.size": "2000",
		"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}}, nil)
	rate := sluicetest.SteadyRate(t, 5*time.Minute, "records acknowledged", int64(n), func() int64 {
		return int64(w.Counter(t, "sluice_source_records_written_total", name))
	})
	sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil)
	return rate
}

// rawProducerRound produces the same records with the same producer settings from one
// producer, waiting a moment when its queue is full as the source loop does.
func rawProducerRound(t *testing.T, c *sluicetest.Cluster, n int) float64 {
	rawTopic := sluicetest.UniqueName("bench-raw")
	admin, _ := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap})
	_, _ = admin.CreateTopics(context.Background(), []kafka.TopicSpecification{{Topic: rawTopic, NumPartitions: 1, ReplicationFactor: -1}})
	admin.Close()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "enable.idempotence": true, "acks": "all",
		"linger.ms": 5, "partitioner": "murmur2_random", "go.delivery.report.fields": "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var acked atomic.Int64
	go func() {
		for e := range p.Events() {
			if m, ok := e.(*kafka.Message); ok && m.TopicPartition.Error == nil {
				acked.Add(1)
			}
		}
	}()
	rawRate := make(chan float64, 1)
	go func() {
		rawRate <- sluicetest.SteadyRate(t, 5*time.Minute, "raw records acknowledged", int64(n), func() int64 { return int64(acked.Load()) })
	}()
	for i := 0; i < n; i++ {
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &rawTopic, Partition: kafka.PartitionAny},
			Key: []byte("0-0"), Value: []byte(fmt.Sprintf("%0100d", i))}
		for {
			err := p.Produce(m, nil)
			if err == nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return <-rawRate
}

func TestThroughputSinkVsRawConsumer(t *testing.T) {
	n := benchRecords(t)
	c := newCluster(t)
	c.Registry.Register(connect.Plugin{Name: "discard", Doc: "Drops records.", Config: discardConfig{},
		New: func() connect.Connector { return &discardConnector{} }})
	w := c.StartWorker(nil)

	// Fill a topic with n 100-byte records.
	topic := sluicetest.UniqueName("bench-sink")
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "linger.ms": 20})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range p.Events() {
		}
	}()
	value := []byte(strings.Repeat("x", 100))
	for i := 0; i < n; i++ {
		for p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}, Value: value}, nil) != nil {
			p.Flush(100)
		}
	}
	for p.Flush(1000) > 0 {
	}
	p.Close()

	var sluice, raw, franz []float64
	for round := 0; round <= benchRounds; round++ {
		r, f := rawConsumerRound(t, c, topic, n), franzConsumerRound(t, c, topic, n)
		// Sluice: a sink task that discards, byte-array converters (no decoding), one task.
		name := fmt.Sprintf("bench-discard-%d", round)
		sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
			"connector.class": "discard", "topics": topic, "value.converter": "bytearray", "key.converter": "bytearray"}}, nil)
		s := sluicetest.SteadyRate(t, 5*time.Minute, "records put", int64(n), func() int64 {
			return int64(w.Counter(t, "sluice_sink_records_put_total", name))
		})
		sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil)
		if round > 0 { // round 0 warms up both sides
			sluice, raw, franz = append(sluice, s), append(raw, r), append(franz, f)
		}
	}
	t.Logf("rounds: sluice %.0f, raw %.0f, franz-go %.0f", sluice, raw, franz)
	report(t, "Kafka to sink", median(sluice), median(raw))
	report(t, "Kafka to sink vs franz-go", median(sluice), median(franz))
}

// franzConsumerRound reads all n records with franz-go, the second raw anchor: whole fetches
// at a time, without a consumer group.
func franzConsumerRound(t *testing.T, c *sluicetest.Cluster, topic string, n int) float64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	read, t0 := 0, time.Time{}
	for read < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go read %d of %d records", read, n)
		}
		fs.EachRecord(func(*kgo.Record) {
			if read++; read == 1 {
				t0 = time.Now()
			}
		})
	}
	return float64(n-1) / time.Since(t0).Seconds()
}

// rawConsumerRound reads all n records with one consumer in a group of its own.
func rawConsumerRound(t *testing.T, c *sluicetest.Cluster, topic string, n int) float64 {
	cons, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "group.id": sluicetest.UniqueName("raw"),
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	_ = cons.Subscribe(topic, nil)
	read, t0 := 0, time.Time{}
	for read < n {
		if ev := cons.Poll(100); ev != nil {
			if _, ok := ev.(*kafka.Message); ok {
				if read++; read == 1 {
					t0 = time.Now()
				}
			}
		}
	}
	return float64(n-1) / time.Since(t0).Seconds()
}
