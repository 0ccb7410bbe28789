package mongodbsink_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The throughput harness compares the connector with the raw driver's BulkWrite of the same
// documents into the same server in the same run, and reports records/s and their ratio. It is
// slow, so it runs only with SLUICE_BENCH=1 (make bench).

const (
	benchRounds  = 3
	benchBatch   = 1000
	benchDevices = 500
)

func benchRecords(t *testing.T) int {
	t.Helper()
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 (make bench) to run it")
	}
	return 50_000
}

func TestThroughputVsRawBulkWrite(t *testing.T) {
	n := benchRecords(t)
	uri, db := mongoDB(t)
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("bench-mongo")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	msgs := frames(0, n, benchDevices)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "linger.ms": 20})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range p.Events() {
		}
	}()
	for _, m := range msgs {
		m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
		for p.Produce(m, nil) != nil {
			p.Flush(100)
		}
	}
	for p.Flush(1000) > 0 {
	}
	p.Close()
	w := c.StartWorker(nil)

	var sluice, raw []float64
	for round := range benchRounds {
		raw = append(raw, rawRound(t, db, msgs, round))
		sluice = append(sluice, sluiceRound(t, w, uri, db, topic, n, round))
	}
	s, r := median(sluice), median(raw)
	t.Logf("Kafka to MongoDB (upsert by id, bulk writes of %d): sluice %.0f records/s %v, raw driver %.0f records/s %v, ratio %.2f", benchBatch, s, sluice, r, raw, s/r)
	fmt.Printf("BENCH Kafka_to_MongoDB_upsert sluice=%.0f raw=%.0f ratio=%.2f\n", s, r, s/r)
}

// sluiceRound runs the connector over the whole topic into a new collection: one task, upsert
// by seq, bulk writes of benchBatch documents.
func sluiceRound(t *testing.T, w *sluicetest.Worker, uri string, db *mongo.Database, topic string, n, round int) float64 {
	name := fmt.Sprintf("bench-mongo-%d", round)
	coll := fmt.Sprintf("sluice_%d", round)
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "mongodb-sink", "tasks.max": "1", "topics": topic,
		"connection.uri": uri, "database": db.Name(), "collection": coll,
		"write.model": "upsert", "id.strategy": "fields", "id.fields": "seq",
		"batch.size": fmt.Sprint(benchBatch), "consumer.max.batch.records": fmt.Sprint(benchBatch),
	})
	rate := sluicetest.SteadyRate(t, 10*time.Minute, "records put", int64(n), func() int64 { return int64(w.Counter(t, "sluice_sink_records_put_total", name)) })
	sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil)
	if k := count(t, db.Collection(coll)); k != int64(n) {
		t.Fatalf("round %d: %d documents, want %d", round, k, n)
	}
	_ = db.Collection(coll).Drop(context.Background())
	return rate
}

// rawRound writes the same documents with the same write model and bulk size straight with
// the driver: the JSON values decoded, _id set to seq, ReplaceOne upserts, ordered.
func rawRound(t *testing.T, db *mongo.Database, msgs []*kafka.Message, round int) float64 {
	coll := db.Collection(fmt.Sprintf("raw_%d", round))
	ctx := context.Background()
	t0 := time.Now()
	models := make([]mongo.WriteModel, 0, benchBatch)
	flush := func() {
		if _, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
			t.Fatal(err)
		}
		models = models[:0]
	}
	for _, m := range msgs {
		var doc bson.D
		if err := bson.UnmarshalExtJSON(m.Value, false, &doc); err != nil {
			t.Fatal(err)
		}
		var seq any
		for _, e := range doc {
			if e.Key == "seq" {
				seq = e.Value
			}
		}
		doc = append(bson.D{{Key: "_id", Value: seq}}, doc...)
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: seq}}).SetReplacement(doc).SetUpsert(true))
		if len(models) == benchBatch {
			flush()
		}
	}
	if len(models) > 0 {
		flush()
	}
	rate := float64(len(msgs)) / time.Since(t0).Seconds()
	if k := count(t, coll); k != int64(len(msgs)) {
		t.Fatalf("raw round %d: %d documents, want %d", round, k, len(msgs))
	}
	_ = coll.Drop(ctx)
	return rate
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
