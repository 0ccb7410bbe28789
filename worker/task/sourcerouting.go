package task

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sourceRouter chooses the partition of each record a source task produces and matches
// Kafka's acknowledgements to the records without a per-message handle.
//
// Partitions are chosen as Kafka's Java producer does (KIP-794): the murmur2 hash of the key,
// and for records without a key one partition until stickyBytes were written to it, then
// another. Because the producer is idempotent, Kafka acknowledges the messages of a partition
// in the order they were produced, so the acknowledgement of a partition belongs to the oldest
// record produced to it and not yet acknowledged. That spares the producer's handle table,
// which costs a locked map insert and lookup per message.
//
// Until Kafka acknowledged a first message of a topic, its messages are left to the producer's
// partitioner and matched by handle, as is everything when idempotence is off, when the
// producer settings name a partitioner, or while the topic's partition count is not known: while the producer has no metadata for a topic it holds the
// topic's messages aside and assigns them to their partitions when the metadata arrives, and
// those could land behind messages produced after them, out of the order matching relies on.
// An acknowledgement shows the producer has the metadata.
type sourceRouter struct {
	producer *kafka.Producer
	byHandle bool                   // the producer partitions, and handles match acknowledgements
	topics   map[string]*topicRoute // touched by the polling goroutine only

	mu     sync.Mutex
	queues map[topicPartition]*ackQueue
}

// stickyBytes is how much a partition gets of records without a key before the next one is
// chosen: the Java producer's default batch.size, where its partitioner switches.
const stickyBytes = 16384

// How often a topic's partition count is looked up again: when known (partitions are added
// rarely; metadata.max.age.ms is five minutes in the Java producer) and when not known yet.
const (
	partitionsRefresh        = 5 * time.Minute
	unknownPartitionsRefresh = time.Second
	metadataTimeout          = 2 * time.Second
)

type topicRoute struct {
	name        *string // the one string the topic's messages point to
	used        bool    // created if need be, and reported as used
	partitions  int     // 0 while not known
	checked     time.Time
	delivered   atomic.Bool // Kafka acknowledged a message of the topic
	partitioner kgo.TopicBackupPartitioner
	rec         kgo.Record // reused to ask the partitioner
}

type topicPartition struct {
	topic     string
	partition int32
}

// ackQueue holds the records produced to one partition and not acknowledged yet, oldest first.
type ackQueue struct {
	entries    []*submittedRecord
	head       int
	lastOffset kafka.Offset
}

func newSourceRouter(p *kafka.Producer, byOrder bool) *sourceRouter {
	return &sourceRouter{producer: p, byHandle: !byOrder, topics: map[string]*topicRoute{}, queues: map[topicPartition]*ackQueue{}}
}

// topic returns the route of a topic.
func (r *sourceRouter) topic(name string) *topicRoute {
	t := r.topics[name]
	if t == nil {
		name := name // a copy, so the parameter does not escape on every call
		t = &topicRoute{name: &name, partitioner: kgo.UniformBytesPartitioner(stickyBytes, false, true, nil).ForTopic(name).(kgo.TopicBackupPartitioner)}
		r.topics[name] = t
	}
	return t
}

// refresh looks the topic's partition count up when due at now.
func (r *sourceRouter) refresh(t *topicRoute, now time.Time) {
	if r.byHandle {
		return
	}
	due := partitionsRefresh
	if t.partitions == 0 {
		due = unknownPartitionsRefresh
	}
	if now.Sub(t.checked) >= due {
		t.checked = now
		if n := r.partitionCount(*t.name); n > 0 {
			t.partitions = n
		}
	}
}

func (r *sourceRouter) partitionCount(topic string) int {
	md, err := r.producer.GetMetadata(&topic, false, int(metadataTimeout.Milliseconds()))
	if err != nil {
		return 0
	}
	t, ok := md.Topics[topic]
	if !ok || t.Error.Code() != kafka.ErrNoError {
		return 0
	}
	return len(t.Partitions)
}

// route sets m's partition and reports whether it did; m's key and value are set. now is
// about the current time, for refreshing the partition count.
func (r *sourceRouter) route(t *topicRoute, m *kafka.Message, now time.Time) bool {
	r.refresh(t, now)
	if t.partitions == 0 || !t.delivered.Load() {
		return false
	}
	t.rec.Key, t.rec.Value = m.Key, m.Value
	m.TopicPartition.Partition = int32(t.partitioner.PartitionByBackup(&t.rec, t.partitions, nil))
	t.rec.Key, t.rec.Value = nil, nil
	return true
}

// expect records, in order, which record each routed message of a batch is, before the batch
// is produced: the messages without a handle (Opaque) pair with routed, one by one.
func (r *sourceRouter) expect(messages []kafka.Message, routed []*submittedRecord) {
	if len(routed) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j := 0
	var q *ackQueue
	var last topicPartition
	for i := range messages {
		m := &messages[i]
		if m.Opaque != nil {
			continue
		}
		tp := topicPartition{*m.TopicPartition.Topic, m.TopicPartition.Partition}
		if q == nil || tp != last {
			if q = r.queues[tp]; q == nil {
				q = &ackQueue{lastOffset: kafka.OffsetInvalid}
				r.queues[tp] = q
			}
			last = tp
		}
		q.entries = append(q.entries, routed[j])
		j++
	}
}

// unexpect takes back what expect recorded for messages that were not produced after all (the
// tail of a batch): they are the newest entries of their partitions' queues.
func (r *sourceRouter) unexpect(messages []kafka.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(messages) - 1; i >= 0; i-- {
		m := &messages[i]
		if m.Opaque != nil {
			continue
		}
		q := r.queues[topicPartition{*m.TopicPartition.Topic, m.TopicPartition.Partition}]
		if q == nil || len(q.entries) == q.head {
			continue
		}
		q.entries[len(q.entries)-1] = nil
		q.entries = q.entries[:len(q.entries)-1]
	}
}

// delivered returns the record an acknowledgement without a handle belongs to.
func (r *sourceRouter) delivered(m *kafka.Message) (*submittedRecord, error) {
	tp := topicPartition{*m.TopicPartition.Topic, m.TopicPartition.Partition}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[tp]
	if q == nil || q.head == len(q.entries) {
		return nil, fmt.Errorf("an acknowledgement for %s/%d matches no record produced to it", tp.topic, tp.partition)
	}
	entry := q.entries[q.head]
	q.entries[q.head] = nil
	q.head++
	if q.head == len(q.entries) {
		q.entries, q.head = q.entries[:0], 0
	} else if q.head >= 4096 && q.head*2 >= len(q.entries) {
		q.entries = append(q.entries[:0], q.entries[q.head:]...)
		q.head = 0
	}
	if m.TopicPartition.Error == nil {
		if off := m.TopicPartition.Offset; off >= 0 {
			if q.lastOffset >= 0 && off <= q.lastOffset {
				return nil, fmt.Errorf("Kafka acknowledged %s/%d offset %d after offset %d: acknowledgements out of order", tp.topic, tp.partition, off, q.lastOffset)
			}
			q.lastOffset = off
		}
	}
	return entry, nil
}
