package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/api"
)

// sourceLoop runs a source task: poll, transform, convert, produce; store each source
// partition's offset once Kafka acknowledged every record before it; flush offsets on the
// interval and at the end.
type sourceLoop struct {
	host     Host
	setup    *Setup
	task     connect.SourceTask
	producer *kafka.Producer
	policy   *errorPolicy
	gate     *PauseGate
	acker    connect.SourceAcker
	pending  *submitted
	topics   *topicCreator
	router   *sourceRouter
	inflight atomic.Int64 // messages produced that Kafka has not reported on yet
	// maxMessageBytes is the producer's limit on a message's key and value: a record over it
	// is a bad record for the error policy, found before it is produced.
	maxMessageBytes int

	failMu  sync.Mutex
	failure error // a record Kafka refused

	reports int // delivery reports handled, by the delivery goroutine: the first are traced
}

// tracedReports is how many of a task's first delivery reports are logged at debug level, to
// follow a record from the task to its partition and offset.
const tracedReports = 100

// sourceContext is the SourceTaskContext a source task gets.
type sourceContext struct {
	TaskContext
	loop *sourceLoop
}

func (c *sourceContext) Offset(_ context.Context, partition map[string]any) (map[string]any, error) {
	return c.loop.host.Offsets.Get(c.ID.Connector, partition)
}

func (c *sourceContext) Report(ctx context.Context, rec connect.Record, reason error) error {
	return c.loop.policy.failed(ctx, stageTaskPoll, &rec, nil, reason)
}

func (l *sourceLoop) run(ctx context.Context, tc *sourceContext) error {
	go l.deliveries()
	defer l.producer.Close()
	if err := l.host.Offsets.ReadToEnd(ctx); err != nil {
		return fmt.Errorf("reading stored offsets: %w", err)
	}
	if err := Safely("start", func() error { return l.task.Start(ctx, l.setup.Task, tc) }); err != nil {
		return fmt.Errorf("starting the task: %w", err)
	}
	l.setup.Running("")
	// The task polls, and its records are transformed and converted, in a goroutine of their
	// own, so the next batch is being made while this one is produced: producing is the step
	// that bounds a source's throughput, so this goroutine does nothing else.
	pollCtx, stopPolling := context.WithCancel(ctx)
	batches := make(chan *polled, 1)
	polling := make(chan struct{})
	go func() {
		defer close(polling)
		l.poll(pollCtx, batches)
	}()

	flush := time.NewTicker(l.host.FlushInterval)
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
			if err = l.produceBatch(ctx, b); errors.Is(err, errStopped) {
				err = nil
				b.release()
				break loop
			}
			if err == nil {
				err = b.err
			}
			if err == nil {
				err = l.failed()
			}
			if b.paused {
				l.commitOffsets(ctx)
			}
			b.release()
		}
	}
	stopPolling()
	<-polling
	// Stop: let Kafka acknowledge what was sent, store the offsets, stop the task.
	l.awaitDeliveries(l.host.FlushTimeout)
	final, cancel := context.WithTimeout(context.Background(), l.host.FlushTimeout)
	l.commitOffsets(final)
	cancel()
	if serr := Safely("stop", l.task.Stop); serr != nil && err == nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	if err == nil {
		err = l.failed()
	}
	return err
}

// polled is what one Poll gave, ready to produce: the messages of its records, then the error
// that ends the task, if any. routed are the records of the messages without a handle
// (Opaque), in order (see sourceRouter). paused marks the last batch before the task paused,
// so its offsets are stored right away.
type polled struct {
	messages []kafka.Message
	routed   []*submittedRecord
	err      error
	paused   bool
}

// messagePool recycles the message slices of produced batches: Produce copies what it needs.
var messagePool = sync.Pool{New: func() any { return new(polled) }}

func (b *polled) release() {
	clear(b.messages)
	clear(b.routed)
	*b = polled{messages: b.messages[:0], routed: b.routed[:0]}
	messagePool.Put(b)
}

// poll calls the task's Poll until ctx is done, honouring pause, retrying retriable errors,
// and hands the batches on in order, transformed and converted.
func (l *sourceLoop) poll(ctx context.Context, out chan<- *polled) {
	backoff := retry.Backoff{Initial: 300 * time.Millisecond, Max: 10 * time.Second}
	retrying := false
	hand := func(b *polled) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		if paused, changed := l.gate.state(); paused {
			if !hand(&polled{paused: true}) {
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
		err := Safely("poll", func() (e error) { recs, e = l.task.Poll(ctx); return })
		l.setup.Metrics.poll.Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if connect.IsRetriable(err) {
				msg := redact.Scrub(err.Error(), l.setup.Secrets)
				l.setup.Log.Warn("poll failed; retrying", "err", msg)
				l.setup.Metrics.pollRetries.Inc()
				if !retrying {
					// RUNNING still (it waits, it loses nothing), but the status says why no
					// records come, as the sink loop does for put retries.
					l.setup.Running("retrying poll: " + msg)
					retrying = true
				}
				_ = retry.Sleep(ctx, backoff.Wait())
				continue
			}
			hand(&polled{err: fmt.Errorf("poll: %w", err)})
			return
		}
		backoff.Reset()
		if retrying {
			l.setup.Running("")
			retrying = false
		}
		if len(recs) == 0 {
			continue
		}
		l.setup.Metrics.polled.Add(float64(len(recs)))
		b := l.prepare(ctx, recs)
		failed := b.err != nil // b belongs to the producing goroutine once handed on
		if !hand(b) || failed {
			return
		}
	}
}

// prepare tracks, transforms and converts a polled batch into the messages to produce. A
// record the error policy skips, or a transformation drops, counts as done, so its offset is
// stored like any other. An error ends the batch: the messages before it are still produced.
func (l *sourceLoop) prepare(ctx context.Context, recs []connect.Record) *polled {
	b := messagePool.Get().(*polled)
	// One allocation for the whole batch's tracking entries.
	entries := make([]submittedRecord, len(recs))
	l.pending.add(entries, recs, l.acker != nil)
	now := time.Now()
	for i := range recs {
		rec, entry := &recs[i], &entries[i]
		b.messages = append(b.messages, kafka.Message{})
		m := &b.messages[len(b.messages)-1]
		route, err := l.convert(ctx, rec, m)
		if err == nil && route != nil {
			if size := len(m.Key) + len(m.Value); size > l.maxMessageBytes {
				route, err = nil, l.policy.failed(ctx, stageProducer, rec, nil, tooLarge(m, l.maxMessageBytes))
			}
		}
		if err == nil && route != nil {
			err = l.ensureTopic(ctx, route)
		}
		if err != nil {
			b.messages, b.err = b.messages[:len(b.messages)-1], err
			break
		}
		if route == nil { // dropped by a transformation or skipped by the error policy
			b.messages = b.messages[:len(b.messages)-1]
			l.acked(entry)
			continue
		}
		if l.router.route(route, m, now) {
			b.routed = append(b.routed, entry)
		} else {
			m.Opaque, entry.route = entry, route
		}
	}
	return b
}

// tooLarge says which record is over the producer's limit, by how much.
func tooLarge(m *kafka.Message, limit int) error {
	key := m.Key
	if len(key) > 64 {
		key = key[:64]
	}
	return fmt.Errorf("the record with key %q is %d bytes once converted (key %d, value %d), over the producer's message.max.bytes of %d; Kafka would refuse it",
		key, len(m.Key)+len(m.Value), len(m.Key), len(m.Value), limit)
}

// ensureTopic creates a topic the task writes to for the first time, as topic creation says.
func (l *sourceLoop) ensureTopic(ctx context.Context, t *topicRoute) error {
	if t.used {
		return nil
	}
	if err := l.topics.ensure(ctx, *t.name); err != nil {
		return err
	}
	l.host.Topics.TopicUsed(l.setup.ID, *t.name)
	t.used = true
	t.checked = time.Time{} // the topic may just have been created: look its partitions up now
	return nil
}

// errStopped says the task was stopped before a batch was produced in full.
var errStopped = errors.New("stopped before the batch was produced")

// produceBatch produces a batch's messages in order. When ctx ends first (the task stops while
// the producer's queue is full) or producing fails, the messages not produced are taken back
// from the router, so no acknowledgement is matched to them: they are never acknowledged
// upstream, and no stored offset passes them.
func (l *sourceLoop) produceBatch(ctx context.Context, b *polled) error {
	l.router.expect(b.messages, b.routed)
	for i := range b.messages {
		if err := l.produce(ctx, &b.messages[i]); err != nil {
			l.router.unexpect(b.messages[i:])
			return err
		}
	}
	return nil
}

// produce hands one message to the producer, waiting while its queue is full; errStopped when
// ctx ended first.
//
// The loop never calls the producer's Flush: Flush reads delivery reports in a goroutine of its
// own beside the producer's, which hands them on out of order, and matching acknowledgements
// by order (sourceRouter) depends on their order. Matching by order replaced a handle per
// message in confluent-kafka-go's locked map, about a tenth of the worker's CPU in
// TestThroughputSourceVsRawProducer; TestDeliveryReportsOfAPartitionArriveInOffsetOrder pins
// the order it rests on, and TestRouterRefusesAcknowledgementsOutOfOrder what happens if that
// ever breaks (the delivery is refused as out of order rather than matched to the wrong record).
func (l *sourceLoop) produce(ctx context.Context, m *kafka.Message) error {
	for {
		err := l.producer.Produce(m, nil)
		if err == nil {
			l.inflight.Add(1)
			return nil
		}
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull {
			// The producer's queue is full: wait for deliveries to make room.
			if retry.Sleep(ctx, queueFullWait) != nil {
				return errStopped
			}
			continue
		}
		return fmt.Errorf("producing to %s: %w", *m.TopicPartition.Topic, err)
	}
}

func (l *sourceLoop) failed() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

// convert applies the transformations and converters under the error policy and fills m. It
// returns the route of the record's topic, or nil for a record that was dropped or skipped.
func (l *sourceLoop) convert(ctx context.Context, rec *connect.Record, m *kafka.Message) (*topicRoute, error) {
	cur := rec
	if l.setup.Chain != nil {
		var out *connect.Record
		err := l.policy.retry(ctx, func() (e error) { out, e = l.setup.Chain.Apply(rec); return })
		if err != nil {
			return nil, l.policy.failed(ctx, stageTransform, rec, nil, err)
		}
		if out == nil {
			return nil, nil
		}
		cur = out
	}
	var key, value []byte
	if err := l.policy.retry(ctx, func() (e error) { key, e = l.setup.KeyConv.ToKafka(cur.Topic, cur.Key, cur.KeySchema); return }); err != nil {
		return nil, l.policy.failed(ctx, stageKeyConverter, cur, nil, err)
	}
	if err := l.policy.retry(ctx, func() (e error) { value, e = l.setup.ValueConv.ToKafka(cur.Topic, cur.Value, cur.ValueSchema); return }); err != nil {
		return nil, l.policy.failed(ctx, stageValueConverter, cur, nil, err)
	}
	if cur.Topic == "" {
		return nil, l.policy.failed(ctx, stageTaskPoll, cur, nil, errors.New("the record has no topic"))
	}
	route := l.router.topic(cur.Topic)
	*m = kafka.Message{TopicPartition: kafka.TopicPartition{Topic: route.name, Partition: kafka.PartitionAny}, Key: key, Value: value}
	if !cur.Time.IsZero() {
		m.Timestamp, m.TimestampType = cur.Time, kafka.TimestampCreateTime
	}
	if len(cur.Headers) > 0 {
		m.Headers = make([]kafka.Header, len(cur.Headers))
		for i, h := range cur.Headers {
			m.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return route, nil
}

// queueFullWait is how long producing waits for room when the producer's queue is full.
const queueFullWait = 2 * time.Millisecond

// awaitDeliveries waits until Kafka has reported on every message produced, or timeout.
func (l *sourceLoop) awaitDeliveries(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for l.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveries handles Kafka's acknowledgements until the producer closes.
func (l *sourceLoop) deliveries() {
	events := l.producer.Events()
	reported := int64(0) // reports handled and not yet taken off inflight
	for e := range events {
		m, ok := e.(*kafka.Message)
		if !ok {
			if kerr, ok := e.(kafka.Error); ok && kerr.IsFatal() {
				l.fail(fmt.Errorf("producer: %w", kerr))
			}
			continue
		}
		l.delivered(m)
		if reported++; len(events) == 0 || reported >= 1024 {
			l.inflight.Add(-reported)
			reported = 0
		}
	}
}

// delivered handles Kafka's report on one message.
func (l *sourceLoop) delivered(m *kafka.Message) {
	entry, _ := m.Opaque.(*submittedRecord)
	if entry == nil {
		var err error
		if entry, err = l.router.delivered(m); err != nil {
			l.fail(err)
			return
		}
	}
	if err := m.TopicPartition.Error; err != nil {
		cause := fmt.Errorf("Kafka did not accept a record for topic %s: %w", *m.TopicPartition.Topic, err)
		if !refusesTheRecord(err) {
			// Not acknowledged, and not for what the record is (an outage, a timeout): the
			// offset stays behind this record, so it is read again after a restart. The task
			// fails rather than lose it.
			l.fail(cause)
			return
		}
		// Kafka refuses this record whatever happens: a bad record for the error policy.
		ctx, cancel := context.WithTimeout(context.Background(), l.host.FlushTimeout)
		defer cancel()
		if perr := l.policy.failed(ctx, stageProducer, entry.record, nil, cause); perr != nil {
			l.fail(perr)
			return
		}
		l.acked(entry)
		return
	}
	if l.reports++; l.reports <= tracedReports && l.setup.Log.Enabled(context.Background(), slog.LevelDebug) {
		var key any
		if entry.record != nil {
			key = entry.record.Key
		}
		l.setup.Log.Debug("delivered", "topic", *m.TopicPartition.Topic, "partition", m.TopicPartition.Partition,
			"offset", int64(m.TopicPartition.Offset), "by_handle", m.Opaque != nil, "key", key, "source_offset", entry.offset)
	}
	if entry.route != nil {
		entry.route.delivered.Store(true)
	}
	l.setup.Metrics.written.Inc()
	l.acked(entry)
}

// refusesTheRecord tells the delivery errors that are about the record itself: producing it
// again would fail again.
func refusesTheRecord(err error) bool {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr.Code() {
	case kafka.ErrMsgSizeTooLarge, kafka.ErrRecordListTooLarge, kafka.ErrInvalidMsg, kafka.ErrInvalidMsgSize,
		kafka.ErrInvalidRecord, kafka.ErrInvalidTimestamp:
		return true
	}
	return false
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
	if l.acker == nil {
		return
	}
	// The task's code runs here on the delivery goroutine: a panic fails the task, not the
	// worker, as for every other call into a connector.
	err := Safely("acknowledged", func() error {
		return l.acker.Acknowledged(context.Background(), *entry.record)
	})
	var p *panicError
	switch {
	case errors.As(err, &p):
		l.fail(err)
	case err != nil:
		l.setup.Log.Warn("acknowledging upstream failed", "err", redact.Scrub(err.Error(), l.setup.Secrets))
	}
}

// commitOffsets stores the offsets of every source partition's acknowledged prefix.
func (l *sourceLoop) commitOffsets(ctx context.Context) {
	offsets := l.pending.committable()
	if len(offsets) == 0 {
		return
	}
	if err := l.host.Offsets.Put(ctx, l.setup.ID.Connector, offsets); err != nil {
		l.setup.Metrics.commitFailed.Inc()
		l.pending.restore(offsets)
		l.setup.Log.Warn("storing source offsets failed; will retry", "err", err)
		return
	}
	l.setup.Metrics.commitOK.Inc()
	l.setup.Metrics.lastCommit.SetToCurrentTime()
	if c, ok := l.task.(connect.SourceCommitter); ok {
		if err := Safely("commit", func() error { return c.Commit(ctx) }); err != nil {
			l.setup.Log.Warn("task commit failed", "err", redact.Scrub(err.Error(), l.setup.Secrets))
		}
	}
}

// submitted tracks records sent to Kafka per source partition, so only the in-order
// acknowledged prefix of each partition has its offset stored (Kafka Connect's
// SubmittedRecords). The acknowledged prefix is let go of as soon as the partition's next
// records are added, not only at the offset flush, so memory holds the records in flight.
type submitted struct {
	mu         sync.Mutex
	partitions map[string]*partitionQueue
	// The queue of the partition map seen last, by identity: connectors keep one map per
	// source partition (datagen, file-source), so most records skip building the partition's
	// key, a JSON encoding of the map, which was the source path's largest cost after producing
	// (commit 5a20f9c, TestThroughputSourceVsRawProducer: source/raw 0.47 -> ~0.8). The map's
	// address is kept as an unsafe.Pointer, not a uintptr, so that the collector keeps that map
	// alive and its address cannot be reused by another map. A connector that changed a
	// partition map after handing it over would be tracked under the old key: the SDK's
	// Record doc asks for a map per partition, not one edited in place.
	lastMap   unsafe.Pointer
	lastQueue *partitionQueue
}

type partitionQueue struct {
	partition map[string]any
	records   []*submittedRecord // records[head:] are not known to be acknowledged
	head      int
	// latest is the offset of the last record of the acknowledged prefix not yet stored.
	latest map[string]any
}

type submittedRecord struct {
	offset map[string]any
	record *connect.Record // kept only for a task that acknowledges upstream
	route  *topicRoute     // set for a record matched by handle (see sourceRouter)
	acked  atomic.Bool     // set by the delivery goroutine, read under submitted.mu
}

func newSubmitted() *submitted { return &submitted{partitions: map[string]*partitionQueue{}} }

// add tracks the records of a batch, sent to Kafka, in entries; keep holds on to each record
// for the task's acknowledgement. A record without a source partition is not tracked; one
// without an offset is tracked in order but moves its partition's offset nowhere.
func (s *submitted) add(entries []submittedRecord, recs []connect.Record, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		rec, entry := &recs[i], &entries[i]
		entry.offset = rec.SourceOffset
		if keep {
			entry.record = rec
		}
		if rec.SourcePartition == nil {
			continue
		}
		ptr := reflect.ValueOf(rec.SourcePartition).UnsafePointer()
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
		if q.head < len(q.records) && q.records[q.head].acked.Load() {
			q.advance()
		}
		q.records = append(q.records, entry)
	}
}

func (s *submitted) ack(entry *submittedRecord) {
	entry.acked.Store(true)
}

// advance drops the acknowledged prefix, remembering the last offset in it.
func (q *partitionQueue) advance() {
	for q.head < len(q.records) && q.records[q.head].acked.Load() {
		if off := q.records[q.head].offset; off != nil {
			q.latest = off
		}
		q.records[q.head] = nil
		q.head++
	}
	switch {
	case q.head == len(q.records):
		q.records, q.head = q.records[:0], 0
	case q.head >= 1024 && 2*q.head >= len(q.records):
		n := copy(q.records, q.records[q.head:])
		clear(q.records[n:])
		q.records, q.head = q.records[:n], 0
	}
}

// committable returns, per partition, the offset of the last record of the acknowledged prefix
// and drops that prefix.
func (s *submitted) committable() []api.ConnectorOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.ConnectorOffset
	for key, q := range s.partitions {
		q.advance()
		if q.latest != nil {
			out = append(out, api.ConnectorOffset{Partition: q.partition, Offset: q.latest})
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
func (s *submitted) restore(offsets []api.ConnectorOffset) {
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

// maxMessageBytes is the largest message the producer takes: librdkafka's message.max.bytes
// (the key and value together), from a connector's overrides, else the worker's producer
// settings, else librdkafka's default.
func maxMessageBytes(worker, overrides map[string]string) int {
	for _, m := range []map[string]string{overrides, worker} {
		if n, err := strconv.Atoi(strings.TrimSpace(m["message.max.bytes"])); err == nil && n > 0 {
			return n
		}
	}
	return defaultMessageMaxBytes
}

// defaultMessageMaxBytes is librdkafka's default message.max.bytes.
const defaultMessageMaxBytes = 1000000
