package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The source loop matches Kafka's acknowledgements to records by their order within each
// partition (worker/sourcerouting.go). This checks what that rests on, with the source
// producer's settings: as long as nobody calls the producer's Flush, the delivery reports of a
// partition arrive in the order of their offsets, also while the producer's queue is full.
func TestDeliveryReportsOfAPartitionArriveInOffsetOrder(t *testing.T) {
	c := newCluster(t)
	topic := sluicetest.UniqueName("order")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "enable.idempotence": true, "acks": "all",
		"linger.ms": 5, "go.delivery.report.fields": "none", "queue.buffering.max.messages": 20000})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 400_000
	value := make([]byte, 100)
	done := make(chan error, 1)
	go func() {
		last := map[int32]kafka.Offset{0: -1, 1: -1}
		for got := 0; got < n; {
			m, ok := (<-p.Events()).(*kafka.Message)
			if !ok {
				continue
			}
			got++
			tp := m.TopicPartition
			if tp.Error != nil {
				done <- tp.Error
				return
			}
			if tp.Offset <= last[tp.Partition] {
				done <- fmt.Errorf("partition %d: offset %v reported after %v (report %d)", tp.Partition, tp.Offset, last[tp.Partition], got)
				return
			}
			last[tp.Partition] = tp.Offset
		}
		done <- nil
	}()
	full := 0
	for i := range n {
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(i / 1000 % 2)}, Value: value}
		for p.Produce(m, nil) != nil {
			full++
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("not every message was reported on within 2 minutes")
	}
	if full == 0 {
		t.Log("the producer's queue never filled up")
	}
}
