package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// TestFailedRewindConsumesNothingUntilItSucceeds runs a task against the real Kafka, makes a
// transaction fail and then the rewind to the last committed transaction fail twice: the
// task consumes nothing until a rewind succeeds, then consumes the aborted frames again, so
// the window result counts each frame once. Before the rewind was retried, the task went on
// from its position past the aborted frames with an empty state, and lost them and the
// window's earlier frames.
func TestFailedRewindConsumesNothingUntilItSucceeds(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	raw, out, group := sluicetest.UniqueName("raw"), sluicetest.UniqueName("agg"), sluicetest.UniqueName("group")
	sluicetest.CreateTopic(t, bootstrap, raw, 1)
	base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
	produce := func(seconds ...int) {
		t.Helper()
		var msgs []*kafka.Message
		for _, s := range seconds {
			b, _ := json.Marshal(map[string]any{"device_id": "d1", "ts": base + int64(s)*1000, "frame_id": fmt.Sprint(s), "temperature": s})
			msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &raw, Partition: 0}, Value: b})
		}
		sluicetest.Produce(t, bootstrap, raw, msgs...)
	}
	checker, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = checker.Close() })
	committed := func() int64 {
		// The group's coordinator may be loading or moving ("Not coordinator", "Coordinator
		// load in progress"): ask again, as a client would.
		var last error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			got, err := checker.Committed([]kafka.TopicPartition{{Topic: &raw, Partition: 0}}, 5000)
			if err == nil {
				return int64(got[0].Offset)
			}
			if kerr, ok := err.(kafka.Error); !ok || !kerr.IsRetriable() && kerr.Code() != kafka.ErrNotCoordinator && kerr.Code() != kafka.ErrCoordinatorLoadInProgress {
				t.Fatal(err)
			}
			last = err
		}
		t.Fatalf("the committed offset: %v", last)
		return 0
	}

	task := &Task{}
	tc := connecttest.NewSourceContext(t, 0)
	cfg := connect.Config{"kafka.bootstrap.servers": bootstrap, "kafka.group.id": group, "source.topic": raw, "output.topic": out,
		"changelog.topic": sluicetest.UniqueName("changelog"), "group.by": "device_id", "value.fields": "temperature",
		"event.time.field": "ts", "dedupe.field": "frame_id", "window.size": "10s", "watermark.out.of.order": "2s",
		"allowed.lateness": "5s", "commit.interval": "200ms", "topic.replication.factor": "-1"}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop() })
	pollUntil := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for committed() != want {
			if time.Now().After(deadline) {
				t.Fatalf("committed offset %d, want %d", committed(), want)
			}
			if _, err := task.Poll(t.Context()); err != nil && !connect.IsRetriable(err) {
				t.Fatalf("Poll: %v", err)
			} else if err != nil {
				t.Logf("Poll: %v", err) // e.g. a topic just created not in the metadata yet
			}
		}
	}

	produce(1, 2, 3)
	pollUntil(3)

	// The next transaction fails, and so do the first two rewinds after it.
	var commitFails, resumeFails atomic.Int32
	commitFails.Store(1)
	resumeFails.Store(2)
	task.fault = func(stage string) error {
		switch {
		case stage == "commit" && commitFails.Add(-1) >= 0:
			return errors.New("injected commit failure")
		case stage == "resume" && resumeFails.Add(-1) >= 0:
			return errors.New("injected resume failure")
		}
		return nil
	}
	produce(4, 5)
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !connect.IsRetriable(err) {
			t.Fatalf("%s: Poll = %v, want a retriable error", what, err)
		}
		if !task.rewindDue || task.inTxn || len(task.consumed) != 0 {
			t.Fatalf("%s: rewind due %v, transaction open %v, consumed %v: the task went on before its rewind succeeded",
				what, task.rewindDue, task.inTxn, task.consumed)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for commitFails.Load() > 0 { // until a transaction with frames fails
		if time.Now().After(deadline) {
			t.Fatal("no transaction within a minute")
		}
		if _, err = task.Poll(t.Context()); commitFails.Load() == 0 {
			check("the failed transaction", err)
		} else if err != nil {
			t.Fatalf("Poll: %v", err)
		}
	}
	_, err = task.Poll(t.Context())
	check("the retried rewind", err)
	if got := committed(); got != 3 {
		t.Fatalf("committed offset %d after the failed transaction, want 3", got)
	}
	pollUntil(5) // the rewind succeeds and the frames 4 and 5 are consumed again
	if task.rewindDue || resumeFails.Load() >= 0 {
		t.Fatalf("rewind due %v, resume failures left %d", task.rewindDue, resumeFails.Load())
	}
	produce(60) // closes the window
	pollUntil(6)

	results := sluicetest.ConsumeAll(t, bootstrap, out, 2, 10*time.Second)
	if len(results) != 1 {
		t.Fatalf("output has %d records, want the one window", len(results))
	}
	var v map[string]any
	if err := json.Unmarshal(results[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	if v["frames"] != 5.0 || v["temperature_sum"] != 15.0 || v["revision"] != 0.0 {
		t.Errorf("window result %s, want 5 frames summing to 15, revision 0", results[0].Value)
	}
}
