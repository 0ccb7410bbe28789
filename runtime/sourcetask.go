package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// topicNames holds one string per topic for the messages to point to.
	topicNames map[string]*string
	msg        kafka.Message // the message being produced, reused

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
	l.used, l.topicNames = map[string]bool{}, map[string]*string{}
	go l.deliveries()
	defer l.producer.Close()
	if err := l.w.offsets.readToEnd(ctx); err != nil {
		return fmt.Errorf("reading stored offsets: %w", err)
	}
	if err := safely("start", func() error { return l.task.Start(ctx, l.setup.task, tc) }); err != nil {
		return fmt.Errorf("starting the task: %w", err)
	}
	l.setup.running("")
	// The task polls in its own goroutine, so the next batch is being made while this one is
	// converted and produced.
	pollCtx, stopPolling := context.WithCancel(ctx)
	batches := make(chan polled, 1)
	polling := make(chan struct{})
	go func() {
		defer close(polling)
		l.poll(pollCtx, batches)
	}()

	flush := time.NewTicker(l.w.cfg.OffsetFlushInterval)
	defer flush.Stop()
	var err error
loop:
	for err == nil {
		select {
		case <-ctx.Done():
			break loop
		case <-flush.C:
			l.commitOffsets(ctx)
			err = l.failed()
		case b := <-batches:
			if b.err != nil {
				err = b.err
				break
			}
			// One allocation for the whole batch's tracking entries.
			entries := make([]submittedRecord, len(b.records))
			for i := range b.records {
				if err = l.send(ctx, &b.records[i], &entries[i]); err != nil {
					break
				}
			}
			if err == nil {
				err = l.failed()
			}
			if b.paused {
				l.commitOffsets(ctx)
			}
		}
	}
	stopPolling()
	<-polling
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

// polled is what one Poll gave: records, or the error that ends the task. paused marks the
// last batch before the task paused, so its offsets are stored right away.
type polled struct {
	records []connect.Record
	err     error
	paused  bool
}

// poll calls the task's Poll until ctx is done, honouring pause, retrying retriable errors,
// and hands the batches on in order.
func (l *sourceLoop) poll(ctx context.Context, out chan<- polled) {
	retry := backoff{initial: 300 * time.Millisecond, max: 10 * time.Second}
	for ctx.Err() == nil {
		if paused, changed := l.gate.state(); paused {
			select {
			case out <- polled{paused: true}:
			case <-ctx.Done():
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		start := time.Now()
		var recs []connect.Record
		err := safely("poll", func() (e error) { recs, e = l.task.Poll(ctx); return })
		l.setup.metrics.poll.Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if connect.IsRetriable(err) {
				l.setup.log.Warn("poll failed; retrying", "err", scrub(err.Error(), l.setup.secrets))
				_ = sleepCtx(ctx, retry.wait())
				continue
			}
			select {
			case out <- polled{err: fmt.Errorf("poll: %w", err)}:
			case <-ctx.Done():
			}
			return
		}
		retry.reset()
		if len(recs) == 0 {
			continue
		}
		l.setup.metrics.polled.Add(float64(len(recs)))
		select {
		case out <- polled{records: recs}:
		case <-ctx.Done():
			return
		}
	}
}

func (l *sourceLoop) failed() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

// send transforms, converts and produces one record. A record the error policy skips counts
// as done, so its offset is stored like any other.
func (l *sourceLoop) send(ctx context.Context, rec *connect.Record, entry *submittedRecord) error {
	l.pending.add(entry, rec, l.acker != nil)
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
	if cur.Topic == "" {
		return nil, l.policy.failed(ctx, stageTaskPoll, cur, nil, errors.New("the record has no topic"))
	}
	topic := l.topicNames[cur.Topic]
	if topic == nil {
		topic = &cur.Topic
		l.topicNames[cur.Topic] = topic
	}
	// Produce copies what it needs, so one message serves every record.
	m := &l.msg
	*m = kafka.Message{TopicPartition: kafka.TopicPartition{Topic: topic, Partition: kafka.PartitionAny}, Key: key, Value: value,
		Headers: m.Headers[:0]}
	if !cur.Time.IsZero() {
		m.Timestamp, m.TimestampType = cur.Time, kafka.TimestampCreateTime
	}
	for _, h := range cur.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	if len(m.Headers) == 0 {
		m.Headers = nil
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
		if err := l.acker.Acknowledged(context.Background(), []connect.Record{*entry.record}); err != nil {
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
	// The queue of the partition map seen last, by identity: connectors keep one map per
	// source partition, so most records skip building the partition's key.
	lastMap   unsafe.Pointer
	lastQueue *partitionQueue
}

type partitionQueue struct {
	partition map[string]any
	records   []*submittedRecord
	// latest is the offset of the last record of the committable prefix not yet stored.
	latest map[string]any
}

type submittedRecord struct {
	offset map[string]any
	record *connect.Record // kept only for a task that acknowledges upstream
	queue  *partitionQueue
	acked  atomic.Bool // set by the delivery goroutine, read under submitted.mu
}

func newSubmitted() *submitted { return &submitted{partitions: map[string]*partitionQueue{}} }

// add tracks rec, sent to Kafka, in entry; keep holds on to the record for the task's
// acknowledgement.
func (s *submitted) add(entry *submittedRecord, rec *connect.Record, keep bool) {
	entry.offset = rec.SourceOffset
	if keep {
		entry.record = rec
	}
	if rec.SourcePartition == nil || rec.SourceOffset == nil {
		return
	}
	ptr := reflect.ValueOf(rec.SourcePartition).UnsafePointer()
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.lastQueue
	if ptr != s.lastMap || q == nil {
		key := partitionKey(rec.SourcePartition)
		q = s.partitions[key]
		if q == nil {
			q = &partitionQueue{partition: rec.SourcePartition}
			s.partitions[key] = q
		}
		s.lastMap, s.lastQueue = ptr, q
	}
	entry.queue = q
	q.records = append(q.records, entry)
}

func (s *submitted) ack(entry *submittedRecord) {
	entry.acked.Store(true)
}

// committable returns, per partition, the offset of the last record of the acknowledged prefix
// and drops that prefix.
func (s *submitted) committable() []ConnectorOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ConnectorOffset
	for key, q := range s.partitions {
		n := 0
		for n < len(q.records) && q.records[n].acked.Load() {
			n++
		}
		if n > 0 {
			q.latest = q.records[n-1].offset
			q.records = append(q.records[:0:0], q.records[n:]...)
		}
		if q.latest != nil {
			out = append(out, ConnectorOffset{Partition: q.partition, Offset: q.latest})
			q.latest = nil
		}
		if len(q.records) == 0 {
			delete(s.partitions, key)
			if q == s.lastQueue {
				s.lastMap, s.lastQueue = nil, nil
			}
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
		key := partitionKey(o.Partition)
		q := s.partitions[key]
		if q == nil {
			q = &partitionQueue{partition: o.Partition}
			s.partitions[key] = q
		}
		if q.latest == nil {
			q.latest = o.Offset
		}
	}
}

// partitionKey is a canonical text of a source partition, to group records by it: cheap for
// the flat maps of strings and numbers partitions usually are, JSON for anything else.
func partitionKey(p map[string]any) string {
	if len(p) == 1 {
		for k, v := range p {
			if s, ok := scalarText(v); ok {
				return k + "\x00" + s
			}
		}
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		s, ok := scalarText(p[k])
		if !ok {
			j, _ := json.Marshal(p)
			return string(j)
		}
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.String()
}

func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return "s" + v, true
	case int:
		return "i" + strconv.Itoa(v), true
	case int64:
		return "i" + strconv.FormatInt(v, 10), true
	case int32:
		return "i" + strconv.FormatInt(int64(v), 10), true
	case float64:
		if v == float64(int64(v)) {
			return "i" + strconv.FormatInt(int64(v), 10), true
		}
		return "f" + strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
