package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// committedOffset reads the offset the sink connector's group committed for partition 0.
func committedOffset(t *testing.T, bootstrap, connector, topic string) int64 {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": "connect-" + connector})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Committed([]kafka.TopicPartition{{Topic: &topic, Partition: 0}}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return int64(got[0].Offset) // kafka.OffsetInvalid (-1001) when none
}

// Records skipped by a transform (or tolerated as bad) must not move the committed offset past
// records before them that Put has not taken yet: while Put keeps failing, nothing is
// committed past the first unwritten record, and in the end every good record arrives.
func TestSkippedRecordsNeverCommitPastUnwrittenOnes(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, name := sluicetest.UniqueName("skips"), sluicetest.UniqueName("skipper")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	var msgs []*kafka.Message
	for i := 0; i < 10; i++ {
		m := &kafka.Message{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if i%2 == 1 {
			m.Headers = []kafka.Header{{Key: "skip", Value: []byte("yes")}}
		}
		if i == 7 {
			m.Value = []byte(`not json{`) // tolerated: skipped by the converter stage
			m.Headers = nil
		}
		msgs = append(msgs, m)
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "flaky", "flaky.failures": "4", "errors.tolerance": "all",
		"transforms": "drop", "transforms.drop.type": "org.apache.kafka.connect.transforms.Filter",
		"transforms.drop.predicate": "skipped", "predicates": "skipped",
		"predicates.skipped.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
		"predicates.skipped.name": "skip"}}, nil)
	// While Put fails the timed commits (every 500 ms here) go on; none may pass offset 0.
	sluicetest.Eventually(t, 90*time.Second, "the good records written", func() (bool, string) {
		written := len(collectedValues(name))
		if off := committedOffset(t, c.Bootstrap, name, topic); written == 0 && off > 0 {
			t.Fatalf("offset %d committed while the record at offset 0 was not written yet", off)
		}
		return written == 5, fmt.Sprint(collectedValues(name))
	})
	sluicetest.Eventually(t, 30*time.Second, "everything read committed", func() (bool, string) {
		off := committedOffset(t, c.Bootstrap, name, topic)
		return off == 10, fmt.Sprint(off)
	})
}

// Nothing is called on a sink task after its Stop, also when its run failed and closing the
// consumer revokes its partitions.
func TestNothingIsCalledOnASinkTaskAfterStop(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, name := sluicetest.UniqueName("afterstop"), sluicetest.UniqueName("stopped")
	sluicetest.Produce(t, c.Bootstrap, topic, &kafka.Message{Value: []byte(`{"poison":true}`)})
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "fail"}}, nil)
	var st api.ConnectorStatus
	sluicetest.Eventually(t, 60*time.Second, "the task FAILED", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Tasks[0].Trace, "boom") {
		t.Errorf("trace %q does not give the put's error", st.Tasks[0].Trace)
	}
	// The failed run has ended (FAILED is written after the loop returned, consumer closed).
	if n := callsAfterStopCount(name); n != 0 {
		t.Fatalf("the task got %d calls after Stop", n)
	}
	// Stopping the worker closes nothing more on it either.
	w.Stop()
	if n := callsAfterStopCount(name); n != 0 {
		t.Fatalf("the task got %d calls after Stop", n)
	}
}

// A seek a sink task asks for outside Open, of a partition the consumer has read nothing from
// and holds no committed offset for, is not lost: franz-go cannot move such a partition yet,
// so the loop makes the seek when the partition's first records arrive and drops those.
func TestASeekBeforeAPartitionsFirstRecordIsKept(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"connector.client.config.override.policy": "All"})
	topic, name := sluicetest.UniqueName("seeks"), sluicetest.UniqueName("seeker")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	produceTo := func(partition int32, values ...string) {
		var msgs []*kafka.Message
		for _, v := range values {
			msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: partition}, Value: []byte(v)})
		}
		sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	}
	produceTo(1, `{"p1":0}`, `{"p1":1}`, `{"p1":2}`) // before the connector: latest skips them
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "seek-later",
		"consumer.override.auto.offset.reset": "latest"})
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	// Partition 0's first record makes the task seek partition 1 to 0; then partition 1
	// gets a record, and everything from its offset 0 on must reach the task.
	sluicetest.Eventually(t, time.Minute, "the task to read partition 0", func() (bool, string) {
		produceTo(0, `{"p0":0}`)
		return len(collectedValues(name)) > 0, fmt.Sprint(collectedValues(name))
	})
	produceTo(1, `{"p1":3}`)
	sluicetest.Eventually(t, time.Minute, "partition 1 from offset 0", func() (bool, string) {
		seen := map[string]int{}
		for _, v := range collectedValues(name) {
			if m, ok := v.(map[string]any); ok {
				if n, ok := m["p1"]; ok {
					seen[fmt.Sprint(n)]++
				}
			}
		}
		return seen["0"] == 1 && seen["1"] == 1 && seen["2"] == 1 && seen["3"] == 1, fmt.Sprint(seen)
	})
}

// A sink task's Pause and Seek take effect at once, although the loop reads the next batch
// while Put writes one: what was read ahead of them is dropped and read again from where they
// put the partition, nothing lost and nothing twice.
func TestPauseAndSeekFromPutDropWhatWasReadAhead(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("readahead")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	var msgs []*kafka.Message
	for i := range 100 {
		msgs = append(msgs, &kafka.Message{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	seq := func(from, to int) (out []string) {
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"pause-once", seq(0, 100)},
		{"seek-back", append(seq(0, 10), seq(0, 100)...)}, // the first batch, then from offset 0
	} {
		t.Run(tc.mode, func(t *testing.T) {
			name := sluicetest.UniqueName(tc.mode)
			sluicetest.CreateConnector(t, w.URL, name, map[string]string{
				"connector.class": "probe-sink", "topics": topic, "mode": tc.mode, "consumer.max.batch.records": "10"})
			sluicetest.Eventually(t, time.Minute, "the records in order", func() (bool, string) {
				var got []string
				for _, v := range collectedValues(name) {
					if m, ok := v.(map[string]any); ok {
						got = append(got, fmt.Sprint(m["n"]))
					}
				}
				return strings.Join(got, ",") == strings.Join(tc.want, ","), strings.Join(got, ",")
			})
			if n := deliveredWhilePausedCount(name); n != 0 {
				t.Errorf("the task got %d records of its partition while it was paused", n)
			}
		})
	}
}

// A partition revoked while the loop reads ahead leaves the batch in hand, and only that
// partition: the batch's records of the others still reach Put, also when a transformation
// renamed their topic (the loop once matched records to partitions by the renamed topic and
// dropped a whole batch it then committed past). Another member joins the connector's group
// under load and leaves again; every record arrives.
func TestARevocationUnderLoadDropsOnlyTheRevokedPartition(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, name := sluicetest.UniqueName("revokes"), sluicetest.UniqueName("revoked")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	const perPartition = 1500
	var msgs []*kafka.Message
	for p := range int32(2) {
		for i := range perPartition {
			msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: p},
				Value: []byte(fmt.Sprintf(`{"p":%d,"n":%d}`, p, i))})
		}
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "slow", "consumer.max.batch.records": "10",
		"transforms": "rename", "transforms.rename.type": "org.apache.kafka.connect.transforms.RegexRouter",
		"transforms.rename.regex": ".*", "transforms.rename.replacement": "renamed"})
	sluicetest.Eventually(t, time.Minute, "the task to read", func() (bool, string) {
		return len(collectedValues(name)) > 0, ""
	})
	// A member that takes a partition, reads nothing and commits nothing, then leaves.
	other, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "group.id": "connect-" + name,
		"partition.assignment.strategy": "cooperative-sticky", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Subscribe(topic, func(k *kafka.Consumer, ev kafka.Event) error {
		if a, ok := ev.(kafka.AssignedPartitions); ok {
			err := k.IncrementalAssign(a.Partitions)
			if err == nil {
				err = k.Pause(a.Partitions)
			}
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := func() int { return len(collectedValues(name)) }
	sluicetest.Eventually(t, time.Minute, "the other member to hold a partition", func() (bool, string) {
		other.Poll(100)
		as, _ := other.Assignment()
		return len(as) > 0, fmt.Sprint(got())
	})
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	sluicetest.Eventually(t, 2*time.Minute, "every record of both partitions", func() (bool, string) {
		seen := map[string]bool{}
		for _, v := range collectedValues(name) {
			if m, ok := v.(map[string]any); ok {
				seen[fmt.Sprint(m["p"], "/", m["n"])] = true
			}
		}
		var missing []string
		for p := range 2 {
			for i := range perPartition {
				if k := fmt.Sprint(p, "/", i); !seen[k] {
					missing = append(missing, k)
				}
			}
		}
		if len(missing) > 5 {
			missing = append(missing[:5], "...")
		}
		return len(missing) == 0, fmt.Sprintf("%d records collected; missing %v", got(), missing)
	})
}
