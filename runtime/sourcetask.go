package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
)

// sourceLoop runs a source task: poll, transform, convert, produce; store each source
// partition's offset once Kafka acknowledged every record before it; flush offsets on the
// interval and at the end.
type sourceLoop struct {
	w        *Worker
	setup    *taskSetup
	task     connect.SourceTask
	producer *kafka.Producer
	policy   *errorPolicy
	gate     *pauseGate
	acker    connect.SourceAcker
	pending  *submitted
	topics   *topicCreator
	used     map[string]bool // topics written to, touched by the loop goroutine only

	failMu  sync.Mutex
	failure error // a record Kafka refused
}

// sourceContext is the SourceTaskContext a source task gets.
type sourceContext struct {
	taskContext
	loop *sourceLoop
}

func (c *sourceContext) Offset(_ context.Context, partition map[string]any) (map[string]any, error) {
	return c.loop.w.offsets.get(c.id.Connector, partition)
}

func (c *sourceContext) Report(ctx context.Context, rec connect.Record, reason error) error {
	return c.loop.policy.failed(ctx, stageTaskPoll, &rec, nil, reason)
}

func (l *sourceLoop) run(ctx context.Context, tc *sourceContext) error {
	l.used = map[string]bool{}
	go l.deliveries()
	defer l.producer.Close()
	if err := safely("start", func() error { return l.task.Start(ctx, l.setup.task, tc) }); err != nil {
		return fmt.Errorf("starting the task: %w", err)
	}
	flushEvery := l.w.cfg.OffsetFlushInterval
	nextFlush := time.Now().Add(flushEvery)
	retry := backoff{initial: 300 * time.Millisecond, max: 10 * time.Second}
	var err error
	for ctx.Err() == nil {
		if err = l.failed(); err != nil {
			break
		}
		if time.Now().After(nextFlush) {
			l.commitOffsets(ctx)
			nextFlush = time.Now().Add(flushEvery)
		}
		if paused, changed := l.gate.state(); paused {
			l.commitOffsets(ctx)
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		pollCtx, cancel := context.WithDeadline(ctx, nextFlush)
		start := time.Now()
		var recs []connect.Record
		perr := safely("poll", func() (e error) { recs, e = l.task.Poll(pollCtx); return })
		cancel()
		l.setup.metrics.poll.Observe(time.Since(start).Seconds())
		if perr != nil {
			if ctx.Err() != nil {
				break
			}
			if connect.IsRetriable(perr) {
				l.setup.log.Warn("poll failed; retrying", "err", scrub(perr.Error(), l.setup.secrets))
				_ = sleepCtx(ctx, retry.wait())
				continue
			}
			err = fmt.Errorf("poll: %w", perr)
			break
		}
		retry.reset()
		l.setup.metrics.polled.Add(float64(len(recs)))
		for i := range recs {
			if err = l.send(ctx, &recs[i]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// Stop: let Kafka acknowledge what was sent, store the offsets, stop the task.
	l.producer.Flush(int(l.w.cfg.OffsetFlushTimeout.Milliseconds()))
	final, cancel := context.WithTimeout(context.Background(), l.w.cfg.OffsetFlushTimeout)
	l.commitOffsets(final)
	cancel()
	if serr := safely("stop", l.task.Stop); serr != nil && err == nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	if err == nil {
		err = l.failed()
	}
	return err
}

func (l *sourceLoop) failed() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

// send transforms, converts and produces one record. A record the error policy skips counts
// as done, so its offset is stored like any other.
func (l *sourceLoop) send(ctx context.Context, rec *connect.Record) error {
	entry := l.pending.add(*rec)
	out, err := l.convert(ctx, rec)
	if err != nil {
		return err
	}
	if out == nil { // dropped by a transformation or skipped by the error policy
		l.acked(entry)
		return nil
	}
	if topic := *out.TopicPartition.Topic; !l.used[topic] {
		if err := l.topics.ensure(ctx, topic); err != nil {
			return err
		}
		l.w.statuses.topicUsed(l.setup.id, topic)
		l.used[topic] = true
	}
	out.Opaque = entry
	for {
		err := l.producer.Produce(out, nil)
		if err == nil {
			return nil
		}
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull {
			// The producer's queue is full: wait for deliveries to make room.
			l.producer.Flush(100)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		return fmt.Errorf("producing to %s: %w", *out.TopicPartition.Topic, err)
	}
}

// convert applies the transformations and converters under the error policy. It returns nil
// for a record that was dropped or skipped.
func (l *sourceLoop) convert(ctx context.Context, rec *connect.Record) (*kafka.Message, error) {
	cur := rec
	if l.setup.chain != nil {
		var out *connect.Record
		err := l.policy.retry(ctx, func() (e error) { out, e = l.setup.chain.Apply(rec); return })
		if err != nil {
			return nil, l.policy.failed(ctx, stageTransform, rec, nil, err)
		}
		if out == nil {
			return nil, nil
		}
		cur = out
	}
	var key, value []byte
	if err := l.policy.retry(ctx, func() (e error) { key, e = l.setup.keyConv.ToKafka(cur.Topic, cur.Key, cur.KeySchema); return }); err != nil {
		return nil, l.policy.failed(ctx, stageKeyConverter, cur, nil, err)
	}
	if err := l.policy.retry(ctx, func() (e error) { value, e = l.setup.valueConv.ToKafka(cur.Topic, cur.Value, cur.ValueSchema); return }); err != nil {
		return nil, l.policy.failed(ctx, stageValueConverter, cur, nil, err)
	}
	topic := cur.Topic
	if topic == "" {
		return nil, l.policy.failed(ctx, stageTaskPoll, cur, nil, errors.New("the record has no topic"))
	}
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}, Key: key, Value: value}
	if !cur.Time.IsZero() {
		m.Timestamp, m.TimestampType = cur.Time, kafka.TimestampCreateTime
	}
	for _, h := range cur.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return m, nil
}

// deliveries handles Kafka's acknowledgements until the producer closes.
func (l *sourceLoop) deliveries() {
	for e := range l.producer.Events() {
		m, ok := e.(*kafka.Message)
		if !ok {
			if kerr, ok := e.(kafka.Error); ok && kerr.IsFatal() {
				l.fail(fmt.Errorf("producer: %w", kerr))
			}
			continue
		}
		entry, _ := m.Opaque.(*submittedRecord)
		if entry == nil {
			continue
		}
		if m.TopicPartition.Error != nil {
			// Not acknowledged: the offset stays behind this record, so it is read again after
			// a restart. The task fails rather than lose it.
			l.fail(fmt.Errorf("Kafka did not accept a record for topic %s: %w", *m.TopicPartition.Topic, m.TopicPartition.Error))
			continue
		}
		l.setup.metrics.written.Inc()
		l.acked(entry)
	}
}

func (l *sourceLoop) fail(err error) {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	if l.failure == nil {
		l.failure = err
	}
}

func (l *sourceLoop) acked(entry *submittedRecord) {
	l.pending.ack(entry)
	if l.acker != nil {
		if err := l.acker.Acknowledged(context.Background(), []connect.Record{entry.record}); err != nil {
			l.setup.log.Warn("acknowledging upstream failed", "err", scrub(err.Error(), l.setup.secrets))
		}
	}
}

// commitOffsets stores the offsets of every source partition's acknowledged prefix.
func (l *sourceLoop) commitOffsets(ctx context.Context) {
	offsets := l.pending.committable()
	if len(offsets) == 0 {
		return
	}
	if err := l.w.offsets.put(ctx, l.setup.id.Connector, offsets); err != nil {
		l.setup.metrics.commitFailed.Inc()
		l.pending.restore(offsets)
		l.setup.log.Warn("storing source offsets failed; will retry", "err", err)
		return
	}
	l.setup.metrics.commitOK.Inc()
	l.setup.metrics.lastCommit.SetToCurrentTime()
	if c, ok := l.task.(connect.SourceCommitter); ok {
		if err := safely("commit", func() error { return c.Commit(ctx) }); err != nil {
			l.setup.log.Warn("task commit failed", "err", scrub(err.Error(), l.setup.secrets))
		}
	}
}

// submitted tracks records sent to Kafka per source partition, so only the in-order
// acknowledged prefix of each partition has its offset stored (Kafka Connect's
// SubmittedRecords).
type submitted struct {
	mu         sync.Mutex
	partitions map[string]*partitionQueue
}

type partitionQueue struct {
	partition map[string]any
	records   []*submittedRecord
	// latest is the offset of the last record of the committable prefix not yet stored.
	latest map[string]any
}

type submittedRecord struct {
	record connect.Record
	queue  *partitionQueue
	acked  bool
}

func newSubmitted() *submitted { return &submitted{partitions: map[string]*partitionQueue{}} }

func (s *submitted) add(rec connect.Record) *submittedRecord {
	entry := &submittedRecord{record: rec}
	if rec.SourcePartition == nil || rec.SourceOffset == nil {
		return entry
	}
	key, _ := json.Marshal(rec.SourcePartition)
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.partitions[string(key)]
	if q == nil {
		q = &partitionQueue{partition: rec.SourcePartition}
		s.partitions[string(key)] = q
	}
	entry.queue = q
	q.records = append(q.records, entry)
	return entry
}

func (s *submitted) ack(entry *submittedRecord) {
	if entry.queue == nil {
		return
	}
	s.mu.Lock()
	entry.acked = true
	s.mu.Unlock()
}

// committable returns, per partition, the offset of the last record of the acknowledged prefix
// and drops that prefix.
func (s *submitted) committable() []ConnectorOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ConnectorOffset
	for key, q := range s.partitions {
		n := 0
		for n < len(q.records) && q.records[n].acked {
			n++
		}
		if n > 0 {
			q.latest = q.records[n-1].record.SourceOffset
			q.records = append(q.records[:0:0], q.records[n:]...)
		}
		if q.latest != nil {
			out = append(out, ConnectorOffset{Partition: q.partition, Offset: q.latest})
			q.latest = nil
		}
		if len(q.records) == 0 {
			delete(s.partitions, key)
		}
	}
	return out
}

// restore puts back offsets that could not be stored, so the next flush tries them again
// unless newer ones arrived.
func (s *submitted) restore(offsets []ConnectorOffset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range offsets {
		key, _ := json.Marshal(o.Partition)
		q := s.partitions[string(key)]
		if q == nil {
			q = &partitionQueue{partition: o.Partition}
			s.partitions[string(key)] = q
		}
		if q.latest == nil {
			q.latest = o.Offset
		}
	}
}
