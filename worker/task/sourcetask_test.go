package task

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
)

// sourceRecords makes records of the given source partitions (nil: untracked), each with the
// offset {"n": i} unless its index is in noOffset.
func sourceRecords(partitions []map[string]any, noOffset ...int) []connect.Record {
	recs := make([]connect.Record, len(partitions))
	for i, p := range partitions {
		recs[i] = connect.Record{Topic: "t", SourcePartition: p, SourceOffset: map[string]any{"n": i}}
	}
	for _, i := range noOffset {
		recs[i].SourceOffset = nil
	}
	return recs
}

func committedN(t *testing.T, s *submitted) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, o := range s.committable() {
		out[o.Partition["p"].(string)] = o.Offset["n"]
	}
	return out
}

func TestSubmittedStoresOnlyTheAcknowledgedPrefixOfEachPartition(t *testing.T) {
	a, b := map[string]any{"p": "a"}, map[string]any{"p": "b"}
	tests := []struct {
		name     string
		parts    []map[string]any
		noOffset []int
		acked    []int
		want     map[string]any
	}{
		{name: "nothing acknowledged", parts: []map[string]any{a, a}, want: map[string]any{}},
		{name: "in order", parts: []map[string]any{a, a, a}, acked: []int{0, 1}, want: map[string]any{"a": 1}},
		{name: "a gap holds back what follows it", parts: []map[string]any{a, a, a}, acked: []int{0, 2}, want: map[string]any{"a": 0}},
		{name: "partitions are independent", parts: []map[string]any{a, b, a, b}, acked: []int{1, 2, 3}, want: map[string]any{"b": 3}},
		{name: "a record without an offset moves nothing", parts: []map[string]any{a, a, a}, noOffset: []int{1, 2}, acked: []int{0, 1, 2}, want: map[string]any{"a": 0}},
		{name: "a record without an offset still holds back what follows it", parts: []map[string]any{a, a, a}, noOffset: []int{1}, acked: []int{0, 2}, want: map[string]any{"a": 0}},
		{name: "untracked records are ignored", parts: []map[string]any{nil, a, nil}, acked: []int{1}, want: map[string]any{"a": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubmitted()
			recs := sourceRecords(tt.parts, tt.noOffset...)
			entries := make([]submittedRecord, len(recs))
			s.add(entries, recs, false)
			for _, i := range tt.acked {
				s.ack(&entries[i])
			}
			got := committedN(t, s)
			if len(got) != len(tt.want) {
				t.Fatalf("committable %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("committable %v, want %v", got, tt.want)
				}
			}
			if again := s.committable(); len(again) != 0 {
				t.Errorf("a second committable returned %v, want nothing new", again)
			}
		})
	}
}

func TestSubmittedLetsGoOfTheAcknowledgedPrefixBeforeTheFlush(t *testing.T) {
	s := newSubmitted()
	p := map[string]any{"p": "a"}
	const batches, size = 50, 100
	for range batches {
		recs := sourceRecords(slicesRepeat(p, size))
		entries := make([]submittedRecord, size)
		s.add(entries, recs, false)
		for i := range entries {
			s.ack(&entries[i])
		}
	}
	q := s.partitions[partitionKey(p)]
	if held := len(q.records) - q.head; held > size {
		t.Fatalf("%d acknowledged records still held after %d batches, want at most one batch (%d)", held, batches, size)
	}
	if got := committedN(t, s); got["a"] != size-1 {
		t.Fatalf("committable %v, want the last record's offset %d", got, size-1)
	}
}

func slicesRepeat(p map[string]any, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = p
	}
	return out
}

// delivery is the report Kafka gives for a message produced to topic/partition at offset
// (a negative offset: not written, with an error).
func delivery(topic *string, partition int32, offset int64) *kafka.Message {
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: topic, Partition: partition, Offset: kafka.Offset(offset)}}
	if offset < 0 {
		m.TopicPartition.Offset = kafka.OffsetInvalid
		m.TopicPartition.Error = kafka.NewError(kafka.ErrMsgTimedOut, "timed out", false)
	}
	return m
}

func TestRouterMatchesAcknowledgementsByOrderWithinEachPartition(t *testing.T) {
	r := newSourceRouter(nil, true)
	topic := "t"
	entries := make([]*submittedRecord, 5)
	for i := range entries {
		entries[i] = &submittedRecord{offset: map[string]any{"n": i}}
	}
	// Messages 0, 2, 4 go to partition 0, 1 and 3 to partition 1; message 2 has a handle.
	msgs := make([]kafka.Message, 5)
	for i := range msgs {
		msgs[i].TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: int32(i % 2)}
	}
	msgs[2].Opaque = entries[2]
	r.expect(msgs, []*submittedRecord{entries[0], entries[1], entries[3], entries[4]})

	for _, d := range []struct {
		partition int32
		offset    int64
		want      int
	}{{1, 10, 1}, {0, 20, 0}, {0, 21, 4}, {1, 11, 3}} {
		got, err := r.delivered(delivery(&topic, d.partition, d.offset))
		if err != nil {
			t.Fatal(err)
		}
		if got != entries[d.want] {
			t.Fatalf("acknowledgement of %d@%d matched record %v, want %d", d.partition, d.offset, got.offset, d.want)
		}
	}
	if _, err := r.delivered(delivery(&topic, 0, 22)); err == nil || !strings.Contains(err.Error(), "matches no record") {
		t.Fatalf("an acknowledgement with nothing produced: %v, want an error", err)
	}
}

func TestRouterRefusesAcknowledgementsOutOfOrder(t *testing.T) {
	r := newSourceRouter(nil, true)
	topic := "t"
	msgs := make([]kafka.Message, 3)
	routed := make([]*submittedRecord, 3)
	for i := range msgs {
		msgs[i].TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: 0}
		routed[i] = &submittedRecord{}
	}
	r.expect(msgs, routed)
	if _, err := r.delivered(delivery(&topic, 0, 5)); err != nil {
		t.Fatal(err)
	}
	// A failed message has no offset and is matched like any other.
	if got, err := r.delivered(delivery(&topic, 0, -1)); err != nil || got != routed[1] {
		t.Fatalf("failed delivery matched %v, %v; want the second record", got, err)
	}
	if _, err := r.delivered(delivery(&topic, 0, 4)); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("offset 4 after 5: %v, want an out-of-order error", err)
	}
}

// A task stopped while Kafka is stalled and the producer's queue is full produces no more of
// its batch, and the messages it did not produce are taken back from the router: the
// acknowledgements of later messages cannot be matched to them (they would be acknowledged
// upstream, and their offsets stored, without being in Kafka).
func TestStopWithAFullQueueTakesBackWhatWasNotProduced(t *testing.T) {
	// A producer whose broker never answers: a stalled Kafka. Its queue holds two messages.
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 2,
		"enable.idempotence": true, "message.timeout.ms": 600000, "log_level": 0, "go.logs.channel.enable": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	go func() {
		for range p.Events() {
		}
	}()
	l := &sourceLoop{producer: p, router: newSourceRouter(p, true)}
	topic := "stalled"
	b := &polled{}
	for i := range 5 {
		b.messages = append(b.messages, kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte{byte(i)}})
		b.routed = append(b.routed, &submittedRecord{offset: map[string]any{"n": i}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.produceBatch(ctx, b) }()
	// The third message waits for room that never comes; then the task is stopped.
	for l.inflight.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, errStopped) {
		t.Fatalf("produceBatch = %v, want errStopped", err)
	}
	if n := l.inflight.Load(); n != 2 {
		t.Fatalf("%d messages produced, want 2", n)
	}
	q := l.router.queues[topicPartition{topic, 0}]
	if got := len(q.entries) - q.head; got != 2 {
		t.Fatalf("the router expects acknowledgements for %d records, want the 2 produced", got)
	}
	for i, want := range b.routed[:2] {
		if q.entries[q.head+i] != want {
			t.Fatalf("expectation %d is record %v, want %v", i, q.entries[q.head+i].offset, want.offset)
		}
	}
}
