package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// Source records land in the partitions Kafka's Java producer would choose: keyed records by
// the murmur2 hash of the key, the same as librdkafka's murmur2 partitioner, which checks it
// here; records without a key stick to a partition for a while and then move on, so they
// spread over the topic. A partitioner named in the producer settings is used instead.
func TestSourceRecordsLandWhereKafkasJavaProducerPutsThem(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"connector.client.config.override.policy": "All"})
	const partitions, lines2k = 6, 2000

	checkKeyedPartitions(t, c, w, "keyed", partitions, "murmur2", nil)
	checkKeyedPartitions(t, c, w, "keyed-crc32", partitions, "consistent", map[string]string{"producer.override.partitioner": "consistent"})

	// Records without a key (file-source lines). A first line, and once it is in Kafka (the
	// first messages of a topic are left to the producer, which sticks to one partition for
	// some milliseconds), 2,000 lines of 100 bytes: about 200 KB, a dozen partitions' worth of
	// sticky bytes, each next partition chosen at random.
	unkeyed := sluicetest.UniqueName("unkeyed")
	sluicetest.CreateTopic(t, c.Bootstrap, unkeyed, partitions)
	file := filepath.Join(t.TempDir(), "lines.txt")
	if err := os.WriteFile(file, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sluicetest.CreateConnector(t, w.URL, "unkeyed", map[string]string{"connector.class": "file-source", "file": file,
		"kafka.topic": unkeyed, "poll.interval": "50"})
	if got := sluicetest.ConsumeAll(t, c.Bootstrap, unkeyed, 1, time.Minute); len(got) != 1 {
		t.Fatalf("the first line did not arrive")
	}
	var lines strings.Builder
	for i := range lines2k {
		fmt.Fprintf(&lines, "%099d\n", i)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(lines.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	spread := map[int32]int{}
	msgs := sluicetest.ConsumeAll(t, c.Bootstrap, unkeyed, lines2k+1, time.Minute)
	for _, m := range msgs {
		if m.Key != nil {
			t.Fatalf("file-source record with key %q, want none", m.Key)
		}
		if !strings.Contains(string(m.Value), "first") {
			spread[m.TopicPartition.Partition]++
		}
	}
	if len(msgs) != lines2k+1 || len(spread) < 2 {
		t.Fatalf("%d records without a key landed in partitions %v, want %d over more than one", len(msgs), spread, lines2k+1)
	}
}

// Sources start at full speed on topics created a moment before, while the producer is still
// learning about them, with the producer's queue full most of the time, and deliver every
// record without failing: the matching of acknowledgements to records must hold through the
// start and through waiting for room.
func TestSourcesAtFullSpeedOnNewTopics(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"offset.flush.interval.ms": "500", "connector.client.config.override.policy": "All"})
	const n = 200_000
	rounds := []map[string]string{
		{"topic.creation.default.partitions": "1"},
		{"topic.creation.default.partitions": "2"},
		{"topic.creation.default.partitions": "3"},
		// The producer partitions and handles match acknowledgements.
		{"topic.creation.default.partitions": "2", "producer.override.enable.idempotence": "false"},
		{"topic.creation.default.partitions": "2", "producer.override.partitioner": "consistent_random"},
	}
	for round, extra := range rounds {
		name := fmt.Sprintf("fast-%d", round)
		cfg := map[string]string{"connector.class": "datagen", "kafka.topic": sluicetest.UniqueName("fast"),
			"max.records": fmt.Sprint(n), "format": "string", "payload.bytes": "100", "value.converter": "string", "batch.size": "2000",
			"partitions": "4", "topic.creation.default.replication.factor": "-1",
			// A small queue, so producing waits for room often.
			"producer.override.queue.buffering.max.messages": "5000"}
		for k, v := range extra {
			cfg[k] = v
		}
		sluicetest.CreateConnector(t, w.URL, name, cfg)
		sluicetest.Eventually(t, 2*time.Minute, name+" writing every record", func() (bool, string) {
			var st api.ConnectorStatus
			sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
			if len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed {
				t.Fatalf("%s failed: %s", name, st.Tasks[0].Trace)
			}
			written := w.Counter(t, "sluice_source_records_written_total", name)
			return written == n, fmt.Sprintf("%.0f of %d written", written, n)
		})
	}
}

// checkKeyedPartitions runs datagen with 24 keys into a new topic of the given partitions and
// checks that each key landed in the one partition librdkafka's partitioner puts it in.
func checkKeyedPartitions(t *testing.T, c *sluicetest.Cluster, w *sluicetest.Worker, name string, partitions int, partitioner string, extra map[string]string) {
	t.Helper()
	const keys, perKey = 24, 5
	topic := sluicetest.UniqueName(name)
	sluicetest.CreateTopic(t, c.Bootstrap, topic, partitions)
	cfg := map[string]string{"connector.class": "datagen", "kafka.topic": topic,
		"partitions": fmt.Sprint(keys), "max.records": fmt.Sprint(keys * perKey), "format": "string"}
	for k, v := range extra {
		cfg[k] = v
	}
	sluicetest.CreateConnector(t, w.URL, name, cfg)
	got := map[string]map[int32]bool{}
	for _, m := range sluicetest.ConsumeAll(t, c.Bootstrap, topic, keys*perKey, time.Minute) {
		k := string(m.Key)
		if got[k] == nil {
			got[k] = map[int32]bool{}
		}
		got[k][m.TopicPartition.Partition] = true
	}
	if len(got) != keys {
		t.Fatalf("%s: records of %d keys arrived, want %d", name, len(got), keys)
	}

	// The same keys through librdkafka's partitioner.
	reference := sluicetest.UniqueName("reference")
	sluicetest.CreateTopic(t, c.Bootstrap, reference, partitions)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "partitioner": partitioner})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := map[string]int32{}
	for k := range got {
		if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &reference, Partition: kafka.PartitionAny}, Key: []byte(k)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for len(want) < keys {
		select {
		case e := <-p.Events():
			if m, ok := e.(*kafka.Message); ok {
				if m.TopicPartition.Error != nil {
					t.Fatal(m.TopicPartition.Error)
				}
				want[string(m.Key)] = m.TopicPartition.Partition
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("reference records not acknowledged: %d of %d", len(want), keys)
		}
	}
	used := map[int32]bool{}
	for k, parts := range got {
		if len(parts) != 1 || !parts[want[k]] {
			t.Errorf("%s: key %q landed in partitions %v, want only %d (%s)", name, k, parts, want[k], partitioner)
		}
		used[want[k]] = true
	}
	if len(used) < 2 {
		t.Fatalf("the %d keys hash to %d partition(s); the check needs keys that spread", keys, len(used))
	}
}
