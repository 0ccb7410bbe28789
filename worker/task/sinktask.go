package task

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/internal/retry"
)

// sinkLoop runs a sink task: consume the connector's topics in the group connect-<name>,
// convert and transform under the error policy, put batches, and commit the offsets PreCommit
// says are safe, on the flush interval, when asked, on revocation and at the end.
type sinkLoop struct {
	host     Host
	setup    *Setup
	common   *SinkCommonConfig
	task     connect.SinkTask
	consumer *sinkConsumer
	policy   *errorPolicy
	gate     *PauseGate
	aware    connect.PartitionAware

	// Touched only by the loop goroutine (group events are handled inside poll).
	assigned map[connect.TopicPartition]bool
	current  connect.Offsets // next offset per partition of what was handed to Put
	// batchNext is, per partition, the offset after the last message read into the batch in
	// hand, skipped ones included: current moves there only once Put took the batch. (A
	// skipped record moving current at once would let a commit pass the records before it
	// that are still waiting for Put.) A revocation removes its partitions.
	batchNext   connect.Offsets
	taskStopped bool // after Stop nothing is called on the task, not even from Close's revoke
	seeks       map[connect.TopicPartition]int64
	paused      bool // all partitions paused for a retriable put
	openErr     error
	pending     []*kgo.Record // read while only serving the group (paused): the next batch's first
	// ahead is the next batch, read as soon as the one in hand was taken and converted in a
	// goroutine of its own while the task's Put writes the one in hand (nil when none is read).
	// aheadStale are the partitions whose records in it are dropped when it is taken: revoked,
	// moved by a seek or paused since it was read.
	ahead      *readBatch
	aheadStale map[connect.TopicPartition]bool
	// revoked are the partitions revoked or lost since the loop last cleared it: the batch in
	// hand drops their records after a poll, also when the group gave them back at once.
	revoked map[connect.TopicPartition]bool

	mu           sync.Mutex
	putBatch     []connect.Record                                 // the batch in Put, as the task has it
	rawBatch     []*kgo.Record                                    // its messages, one per record
	rawIndex     map[connect.TopicPartition]map[int64]*kgo.Record // rawBatch by position, made on the first rawOf
	commitWanted bool
	pendingSeeks map[connect.TopicPartition]int64
	openSeeks    map[connect.TopicPartition]int64 // asked for in Open: the consumer starts there
	// laterSeeks are seeks of assigned partitions the consumer could not make yet (it holds no
	// position for them); read makes them when the partition's first records arrive, and drops
	// those records. Touched only by the loop goroutine.
	laterSeeks    map[connect.TopicPartition]int64
	pendingPauses []pauseReq
}

// readBatch is a batch of messages read for Put and the records converted from them.
type readBatch struct {
	msgs  []*kgo.Record   // the messages of assigned partitions, in the order read
	next  connect.Offsets // per partition, the offset after the last message read
	first connect.Offsets // per partition, the first message's offset
	recs  []connect.Record
	raws  []*kgo.Record          // the message of each record
	err   error                  // converting failed: the error policy's verdict
	errTP connect.TopicPartition // the partition of the message that failed
	done  chan struct{}          // closed once converted
}

type pauseReq struct {
	tps   []connect.TopicPartition
	pause bool
}

// sinkContext is the SinkTaskContext a sink task gets.
type sinkContext struct {
	TaskContext
	loop *sinkLoop
}

func (c *sinkContext) Report(ctx context.Context, rec connect.Record, reason error) error {
	raw := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &rec.Topic, Partition: rec.KafkaPartition, Offset: kafka.Offset(rec.KafkaOffset)}}
	if orig, ok := c.loop.rawOf(rec); ok {
		raw = kafkaMessage(orig)
	}
	return c.loop.policy.failed(ctx, stageTaskPut, &rec, raw, reason)
}

func (c *sinkContext) Assignment() []connect.TopicPartition {
	out := make([]connect.TopicPartition, 0, len(c.loop.assigned))
	for tp := range c.loop.assigned {
		out = append(out, tp)
	}
	return out
}

func (c *sinkContext) Seek(tp connect.TopicPartition, offset int64) {
	c.loop.mu.Lock()
	defer c.loop.mu.Unlock()
	c.loop.pendingSeeks[tp] = offset
}

func (c *sinkContext) Pause(tps ...connect.TopicPartition) {
	c.loop.mu.Lock()
	defer c.loop.mu.Unlock()
	c.loop.pendingPauses = append(c.loop.pendingPauses, pauseReq{tps, true})
}

func (c *sinkContext) Resume(tps ...connect.TopicPartition) {
	c.loop.mu.Lock()
	defer c.loop.mu.Unlock()
	c.loop.pendingPauses = append(c.loop.pendingPauses, pauseReq{tps, false})
}

func (c *sinkContext) RequestCommit() {
	c.loop.mu.Lock()
	defer c.loop.mu.Unlock()
	c.loop.commitWanted = true
}

// rawOf finds the Kafka message behind a record of the batch in Put, so a reported record
// goes to the dead-letter topic with its original bytes.
func (l *sinkLoop) rawOf(rec connect.Record) (*kgo.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rawIndex == nil {
		// Only a record reported as bad needs this: the index is made then, not for every
		// batch (a map insert per record, on every batch, for what is seldom asked).
		l.rawIndex = map[connect.TopicPartition]map[int64]*kgo.Record{}
		// By the record as the task has it (a transformation may have renamed its topic).
		for i, m := range l.rawBatch {
			tp := connect.TopicPartition{Topic: l.putBatch[i].Topic, Partition: l.putBatch[i].KafkaPartition}
			if l.rawIndex[tp] == nil {
				l.rawIndex[tp] = map[int64]*kgo.Record{}
			}
			l.rawIndex[tp][l.putBatch[i].KafkaOffset] = m
		}
	}
	m, ok := l.rawIndex[connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}][rec.KafkaOffset]
	return m, ok
}

func (l *sinkLoop) run(ctx context.Context, tc *sinkContext) error {
	l.assigned = map[connect.TopicPartition]bool{}
	l.current = connect.Offsets{}
	l.batchNext = connect.Offsets{}
	l.seeks = map[connect.TopicPartition]int64{}
	l.pendingSeeks = map[connect.TopicPartition]int64{}
	l.openSeeks = map[connect.TopicPartition]int64{}
	l.laterSeeks = map[connect.TopicPartition]int64{}
	l.aheadStale = map[connect.TopicPartition]bool{}
	l.revoked = map[connect.TopicPartition]bool{}
	if err := Safely("start", func() error { return l.task.Start(ctx, l.setup.Task, tc) }); err != nil {
		l.consumer.close()
		return fmt.Errorf("starting the task: %w", err)
	}
	l.setup.Running("")
	if err := l.subscribe(); err != nil {
		_ = l.stopTask() // the subscription's error is the one to report
		l.consumer.close()
		return err
	}
	err := l.loop(ctx)
	// Stop: commit what was put, close the partitions, stop the task, leave the group.
	final, cancel := context.WithTimeout(context.Background(), l.host.FlushTimeout)
	if err == nil {
		l.commit(final, nil, false)
	}
	cancel()
	if l.aware != nil && len(l.assigned) > 0 {
		_ = Safely("close", func() error { return l.aware.Close(context.Background(), slices.Collect(maps.Keys(l.assigned))) })
	}
	if serr := l.stopTask(); serr != nil && err == nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	l.consumer.close() // its revoke callback finds the task stopped and calls nothing on it
	return err
}

// stopTask stops the task; the SDK promises nothing is called on a task after Stop.
func (l *sinkLoop) stopTask() error {
	l.taskStopped = true
	return Safely("stop", l.task.Stop)
}

func (l *sinkLoop) subscribe() error {
	if l.common.TopicsRegex != "" {
		if _, err := regexp.Compile(l.common.TopicsRegex); err != nil {
			return fmt.Errorf("topics.regex %q: %w", l.common.TopicsRegex, err)
		}
		return l.consumer.start(nil, "^"+l.common.TopicsRegex, l.startOffsets)
	}
	return l.consumer.start(l.common.Topics, "", l.startOffsets)
}

// startOffsets hands the consumer the offsets the task asked for in Open (Seek), which replace
// the committed ones of the partitions just assigned. It runs in the consumer's goroutine.
func (l *sinkLoop) startOffsets(tps []connect.TopicPartition) map[connect.TopicPartition]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[connect.TopicPartition]int64{}
	for _, tp := range tps {
		if off, ok := l.openSeeks[tp]; ok {
			out[tp] = off
			delete(l.openSeeks, tp)
		}
	}
	return out
}

// dropPending forgets the records of the partition read ahead: those read while the loop only
// served the group, and those of the next batch.
func (l *sinkLoop) dropPending(tp connect.TopicPartition) {
	l.pending = slices.DeleteFunc(l.pending, func(r *kgo.Record) bool { return r.Topic == tp.Topic && r.Partition == tp.Partition })
	if l.ahead != nil {
		l.aheadStale[tp] = true
	}
}

// rewind puts the consumer of a partition the task paused back on the first of its records
// read ahead and not yet handed to Put, and drops them: Pause stops delivering records at once,
// as it did before the loop read ahead.
func (l *sinkLoop) rewind(tp connect.TopicPartition) {
	off, ok := int64(0), false
	if l.ahead != nil && !l.aheadStale[tp] {
		off, ok = l.ahead.first[tp]
	}
	if !ok {
		if i := slices.IndexFunc(l.pending, func(r *kgo.Record) bool { return r.Topic == tp.Topic && r.Partition == tp.Partition }); i >= 0 {
			off, ok = l.pending[i].Offset, true
		}
	}
	if !ok {
		return
	}
	if !l.consumer.seek(tp, off) {
		l.laterSeeks[tp] = off
	}
	l.dropPending(tp)
}

// serve lets the group rebalance while the loop is not reading (paused, or waiting to retry a
// put); records it reads anyway wait for the next batch.
func (l *sinkLoop) serve(ctx context.Context) error {
	if len(l.pending) >= l.common.MaxBatch { // enough in hand for the next batch
		return l.consumer.serveOnly(ctx, 50*time.Millisecond, l.handleGroupEvent)
	}
	recs, err := l.consumer.poll(ctx, 50*time.Millisecond, l.common.MaxBatch, l.handleGroupEvent, l.setup.Log.Warn)
	l.pending = append(l.pending, recs...)
	return err
}

func (l *sinkLoop) loop(ctx context.Context) error {
	// The batch read ahead is converted under a context that ends with the loop, and the loop
	// waits for it: nothing converts once the loop returned.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		if l.ahead != nil {
			<-l.ahead.done
			l.ahead = nil
		}
	}()
	flushEvery := l.host.FlushInterval
	nextCommit := time.Now().Add(flushEvery)
	var batch []connect.Record
	var raws []*kgo.Record
	backoff := retry.Backoff{Initial: 300 * time.Millisecond, Max: 10 * time.Second}
	retrying := false
	for ctx.Err() == nil {
		if l.openErr != nil {
			return l.openErr
		}
		l.applyRequests()
		l.mu.Lock()
		wanted := l.commitWanted
		l.commitWanted = false
		l.mu.Unlock()
		if wanted || time.Now().After(nextCommit) {
			l.commit(ctx, nil, wanted)
			nextCommit = time.Now().Add(flushEvery)
		}
		if userPaused, changed := l.gate.state(); userPaused {
			l.setPausedAll(true)
			if err := l.serve(ctx); err != nil && ctx.Err() == nil {
				return err
			}
			select {
			case <-changed:
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		} else if l.paused && len(batch) == 0 {
			l.setPausedAll(false)
		}
		if len(batch) == 0 {
			b, err := l.take(ctx)
			if err != nil {
				return err
			}
			if b == nil {
				continue
			}
			maps.Copy(l.batchNext, b.next)
			batch, raws = b.recs, b.raws
			// Read the next batch and convert it while Put writes this one. Its poll lets the
			// group rebalance: what it revoked leaves this batch too.
			clear(l.revoked)
			if err := l.readAhead(ctx); err != nil {
				return err
			}
			if len(l.revoked) > 0 {
				batch, raws = l.dropRevoked(batch, raws)
			}
			if len(batch) == 0 {
				l.advance() // only skipped records, if any: nothing waits for Put
				continue
			}
		}
		err := l.put(ctx, batch, raws)
		switch {
		case err == nil:
			if retrying {
				l.setup.Running("") // the status no longer says what it was waiting for
				retrying = false
			}
			backoff.Reset()
			l.advance()
			batch, raws = nil, nil
		case connect.IsRetriable(err):
			// Keep the batch, stop fetching, and hand the same records to Put again.
			msg := redact.Scrub(err.Error(), l.setup.Secrets)
			l.setup.Log.Warn("put failed; retrying the same batch", "records", len(batch), "err", msg)
			l.setup.Metrics.putRetries.Inc()
			if !retrying {
				// The task stays RUNNING (nothing is lost, it waits), but its status says why
				// no records move, as an operator looking at GET .../status needs to know.
				l.setup.Running("retrying put: " + msg)
				retrying = true
			}
			l.setPausedAll(true)
			if retry.Sleep(ctx, backoff.Wait()) != nil {
				return nil
			}
			clear(l.revoked)
			if err := l.serve(ctx); err != nil && ctx.Err() == nil { // paused partitions return nothing
				return err
			}
			batch, raws = l.dropRevoked(batch, raws)
		default:
			return fmt.Errorf("put: %w", err)
		}
	}
	return nil
}

// advance moves current past everything read into the batch that Put has now taken.
func (l *sinkLoop) advance() {
	for tp, next := range l.batchNext {
		if l.assigned[tp] {
			l.current[tp] = next
		}
		delete(l.batchNext, tp)
	}
}

// take returns the next batch, converted: the one read ahead, or one read now. Nil means
// nothing was read.
func (l *sinkLoop) take(ctx context.Context) (*readBatch, error) {
	b := l.ahead
	if b != nil {
		l.ahead = nil
		<-b.done
		if b.err != nil && l.stale(b.errTP) {
			// The record that failed is no longer this task's to deliver (revoked, moved past
			// or paused since): convert the rest again, without it.
			b.msgs = slices.DeleteFunc(b.msgs, func(m *kgo.Record) bool {
				return l.stale(connect.TopicPartition{Topic: m.Topic, Partition: m.Partition})
			})
			b.err, b.recs, b.raws = nil, nil, nil
			l.convertBatch(ctx, b)
		}
		l.dropStale(b)
	} else {
		var err error
		if b, err = l.read(ctx, 100*time.Millisecond); b == nil || err != nil {
			return nil, err
		}
		l.convertBatch(ctx, b)
	}
	if b.err != nil && ctx.Err() != nil {
		return nil, nil // stopping: converting was cut short
	}
	return b, b.err
}

// readAhead reads what the consumer has in hand for the next batch, without waiting for more,
// and converts it in a goroutine of its own.
func (l *sinkLoop) readAhead(ctx context.Context) error {
	// Only a full batch: one closed early would hold back the records that arrive while Put
	// writes this one, and they would wait a whole Put longer (at 2,000 frames/s into the
	// MongoDB stand-in, p99 went from 5-8 to 10-18 s). Below a batch, the next one is read
	// after Put, as full as it can be then.
	if err := l.fill(ctx, 0); err != nil || len(l.pending) < l.common.MaxBatch {
		return err
	}
	b, err := l.read(ctx, 0)
	if b == nil || err != nil {
		return err
	}
	clear(l.aheadStale)
	l.ahead = b
	go func() {
		defer close(b.done)
		l.convertBatch(ctx, b)
	}()
	return nil
}

// stale says whether the records read ahead of a partition are to be dropped.
func (l *sinkLoop) stale(tp connect.TopicPartition) bool { return l.aheadStale[tp] || !l.assigned[tp] }

// dropStale removes from a batch read ahead the records of partitions revoked, moved or paused
// since.
func (l *sinkLoop) dropStale(b *readBatch) {
	for tp := range b.next {
		if l.stale(tp) {
			delete(b.next, tp)
		}
	}
	if len(b.next) == len(b.first) {
		return
	}
	keep := 0
	for i := range b.recs {
		if !l.stale(connect.TopicPartition{Topic: b.raws[i].Topic, Partition: b.raws[i].Partition}) {
			b.recs[keep], b.raws[keep] = b.recs[i], b.raws[i]
			keep++
		}
	}
	b.recs, b.raws = b.recs[:keep], b.raws[:keep]
}

// fill adds what the consumer holds to the records pending, unless a batch is pending already,
// waiting up to wait for the first when none is pending (0: not at all). Everything at once:
// franz-go fetches a partition again only once what it fetched is all taken, so taking it
// at once overlaps the next fetch with converting and writing this one (a batch at a time,
// the loop waited for each fetch).
func (l *sinkLoop) fill(ctx context.Context, wait time.Duration) error {
	if len(l.pending) >= l.common.MaxBatch || wait == 0 && !l.consumer.buffered() || len(l.pending) > 0 && !l.consumer.buffered() {
		// Let the group rebalance between batches, as a poll would.
		l.consumer.serveWaiting(ctx, l.handleGroupEvent)
		return nil
	}
	wait = max(wait, time.Millisecond) // the consumer holds records: they come at once
	if len(l.pending) > 0 {
		wait = time.Millisecond
	}
	msgs, err := l.consumer.poll(ctx, wait, 0, l.handleGroupEvent, l.setup.Log.Warn)
	if err != nil && ctx.Err() == nil {
		return err
	}
	l.pending = append(l.pending, msgs...)
	return nil
}

// read collects up to a batch of messages, waiting up to wait for the first when none is
// pending.
func (l *sinkLoop) read(ctx context.Context, wait time.Duration) (*readBatch, error) {
	if err := l.fill(ctx, wait); err != nil {
		return nil, err
	}
	msgs := l.pending
	if n := l.common.MaxBatch; len(msgs) > n {
		msgs, l.pending = msgs[:n:n], msgs[n:]
	} else {
		l.pending = nil
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	b := &readBatch{msgs: make([]*kgo.Record, 0, len(msgs)), next: connect.Offsets{}, first: connect.Offsets{}, done: make(chan struct{})}
	var reseeked map[connect.TopicPartition]bool // moved by a later seek in this read
	if len(l.laterSeeks) > 0 {
		reseeked = map[connect.TopicPartition]bool{}
	}
	for _, m := range msgs {
		tp := connect.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		if !l.assigned[tp] { // revoked since it was fetched: its new owner reads it
			continue
		}
		if off, ok := l.laterSeeks[tp]; ok {
			// The consumer holds a position for the partition now: move it, and drop what was
			// read from the old one (in this batch too).
			if l.consumer.seek(tp, off) {
				delete(l.laterSeeks, tp)
				reseeked[tp] = true
				l.dropPending(tp)
			}
			continue
		}
		if reseeked[tp] {
			continue
		}
		l.setup.Metrics.read.Inc()
		if _, ok := b.first[tp]; !ok {
			b.first[tp] = m.Offset
		}
		b.next[tp] = m.Offset + 1
		b.msgs = append(b.msgs, m)
	}
	clear(msgs) // the rest of the fetch, still pending, shares the array: let these go
	return b, nil
}

// convertBatch converts a batch's messages under the error policy; skipped ones have no
// record, and their offsets move on with the batch's. Each record is made in one place and
// copied into the batch (not allocated on its own: that was a fifth of the loop's garbage), and
// the batch is made at the first record kept (one a transformation drops entirely costs
// nothing: 100 KB zeroed per batch of 500 was a third of a discarding sink's conversion).
func (l *sinkLoop) convertBatch(ctx context.Context, b *readBatch) {
	var rec connect.Record
	for i, m := range b.msgs {
		keep, err := l.convert(ctx, m, &rec)
		if err != nil {
			b.err, b.errTP = err, connect.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			return
		}
		if !keep {
			continue
		}
		if b.recs == nil {
			b.recs = make([]connect.Record, 0, len(b.msgs)-i)
			b.raws = make([]*kgo.Record, 0, len(b.msgs)-i)
		}
		b.recs = append(b.recs, rec)
		b.raws = append(b.raws, m)
	}
}

// convert turns a Kafka message into the record rec under the error policy; false means
// skipped.
func (l *sinkLoop) convert(ctx context.Context, m *kgo.Record, rec *connect.Record) (bool, error) {
	topic := m.Topic
	*rec = connect.Record{Topic: topic, KafkaPartition: m.Partition, KafkaOffset: m.Offset, Time: m.Timestamp}
	for _, h := range m.Headers {
		rec.Headers = append(rec.Headers, connect.Header{Key: h.Key, Value: h.Value})
	}
	if err := l.policy.retry(ctx, func() (e error) { rec.Key, rec.KeySchema, e = l.setup.KeyConv.FromKafka(topic, m.Key); return }); err != nil {
		return false, l.policy.failed(ctx, stageKeyConverter, rec, kafkaMessage(m), err)
	}
	if err := l.policy.retry(ctx, func() (e error) { rec.Value, rec.ValueSchema, e = l.setup.ValueConv.FromKafka(topic, m.Value); return }); err != nil {
		return false, l.policy.failed(ctx, stageValueConverter, rec, kafkaMessage(m), err)
	}
	if l.setup.Chain == nil {
		return true, nil
	}
	var out *connect.Record
	if err := l.policy.retry(ctx, func() (e error) { out, e = l.setup.Chain.Apply(rec); return }); err != nil {
		return false, l.policy.failed(ctx, stageTransform, rec, kafkaMessage(m), err)
	}
	if out == nil {
		return false, nil
	}
	if out != rec {
		*rec = *out
	}
	return true, nil
}

func (l *sinkLoop) put(ctx context.Context, batch []connect.Record, raws []*kgo.Record) error {
	l.mu.Lock()
	l.putBatch, l.rawBatch, l.rawIndex = batch, raws, nil
	l.mu.Unlock()
	start := time.Now()
	err := Safely("put", func() error { return l.task.Put(ctx, batch) })
	l.setup.Metrics.putTime.Observe(time.Since(start).Seconds())
	if err == nil {
		l.setup.Metrics.put.Add(float64(len(batch)))
	}
	return err
}

// commit asks the task which offsets are safe and commits them, for the given partitions or
// all assigned ones.
// A commit the task requested reaches PreCommit even when the task has no offsets of its own:
// a task may commit for others (the iceberg-sink's coordinator holds no partition or a quiet
// one while the other tasks' data waits for it).
func (l *sinkLoop) commit(ctx context.Context, only []connect.TopicPartition, requested bool) {
	l.updateLag()
	offsets := connect.Offsets{}
	for tp, off := range l.current {
		if only == nil || slices.Contains(only, tp) {
			offsets[tp] = off
		}
	}
	if len(offsets) == 0 && !requested {
		return
	}
	var safe connect.Offsets
	err := Safely("preCommit", func() (e error) { safe, e = l.task.PreCommit(ctx, offsets); return })
	if err != nil {
		l.setup.Metrics.commitFailed.Inc()
		l.setup.Log.Warn("flushing before the offset commit failed; offsets not committed", "err", redact.Scrub(err.Error(), l.setup.Secrets))
		return
	}
	list := connect.Offsets{}
	for tp, off := range safe {
		if l.assigned[tp] {
			list[tp] = off
		}
	}
	if len(list) == 0 {
		return
	}
	// Bounded: a commit waits out a group join, and the loop must not hang on one.
	cctx, cancel := context.WithTimeout(ctx, l.host.FlushTimeout)
	defer cancel()
	if err := l.consumer.commit(cctx, list); err != nil {
		l.setup.Metrics.commitFailed.Inc()
		l.setup.Log.Warn("committing offsets failed; will retry", "err", err)
		return
	}
	l.setup.Metrics.commitOK.Inc()
	l.setup.Metrics.lastCommit.SetToCurrentTime()
}

// updateLag sets the lag gauge from the high watermarks the consumer last fetched (no request
// to Kafka) and what was handed to Put.
func (l *sinkLoop) updateLag() {
	var lag int64
	for tp := range l.assigned {
		next, ok := l.current[tp]
		if !ok {
			continue
		}
		if high, ok := l.consumer.highWatermark(tp); ok && high > next {
			lag += high - next
		}
	}
	l.setup.Metrics.lag.Set(float64(lag))
}

// handleGroupEvent runs inside poll when the group assigns, revokes or loses partitions.
func (l *sinkLoop) handleGroupEvent(ctx context.Context, ev *groupEvent) {
	if ev.assigned {
		for _, tp := range ev.tps {
			l.assigned[tp] = true
			l.host.Topics.TopicUsed(l.setup.ID, tp.Topic)
		}
		if l.aware != nil && !l.taskStopped {
			if err := Safely("open", func() error { return l.aware.Open(ctx, ev.tps) }); err != nil {
				l.openErr = fmt.Errorf("open partitions: %w", err)
			}
		}
		// Seeks the task asked for in Open become the starting offsets (startOffsets, when the
		// consumer has read the committed ones), not seeks of partitions already being read.
		l.mu.Lock()
		for _, tp := range ev.tps {
			if off, ok := l.pendingSeeks[tp]; ok {
				l.openSeeks[tp] = off
				delete(l.pendingSeeks, tp)
			}
		}
		l.mu.Unlock()
		if l.paused {
			l.consumer.pause(ev.tps)
		}
		return
	}
	if !l.taskStopped {
		if !ev.lost {
			l.commit(ctx, ev.tps, false)
		}
		if l.aware != nil {
			_ = Safely("close", func() error { return l.aware.Close(ctx, ev.tps) })
		}
	}
	for _, tp := range ev.tps {
		l.revoked[tp] = true
	}
	l.mu.Lock()
	for _, tp := range ev.tps {
		delete(l.pendingSeeks, tp)
		delete(l.openSeeks, tp)
	}
	l.mu.Unlock()
	for _, tp := range ev.tps {
		delete(l.assigned, tp)
		delete(l.current, tp)
		delete(l.batchNext, tp)
		delete(l.laterSeeks, tp)
		l.dropPending(tp)
	}
	l.consumer.forget(ev.tps)
}

// applyRequests carries out the seeks and pauses the task asked for outside Open.
func (l *sinkLoop) applyRequests() {
	l.mu.Lock()
	seeks, pauses := l.pendingSeeks, l.pendingPauses
	l.pendingSeeks, l.pendingPauses = map[connect.TopicPartition]int64{}, nil
	l.mu.Unlock()
	for tp, off := range seeks {
		if !l.assigned[tp] {
			continue
		}
		if l.consumer.seek(tp, off) {
			delete(l.laterSeeks, tp)
		} else {
			l.laterSeeks[tp] = off
		}
		l.dropPending(tp)
		l.current[tp] = off
		delete(l.batchNext, tp) // the batch read before the seek does not move it on
	}
	for _, p := range pauses {
		if p.pause {
			l.consumer.pause(p.tps)
			for _, tp := range p.tps {
				if l.assigned[tp] {
					l.rewind(tp)
				}
			}
		} else {
			l.consumer.resume(p.tps)
		}
	}
}

func (l *sinkLoop) setPausedAll(paused bool) {
	if l.paused == paused {
		return
	}
	l.paused = paused
	if paused {
		l.consumer.pause(slices.Collect(maps.Keys(l.assigned)))
	} else {
		l.consumer.resume(slices.Collect(maps.Keys(l.assigned)))
	}
}

// dropRevoked removes from the batch in hand the records of partitions revoked since the loop
// cleared revoked, or no longer assigned: their new owner, or this task after Open, reads them
// from the last committed offset. A partition is the message's, not the record's: a
// transformation may have renamed the record's topic.
func (l *sinkLoop) dropRevoked(batch []connect.Record, raws []*kgo.Record) ([]connect.Record, []*kgo.Record) {
	var b []connect.Record
	var r []*kgo.Record
	for i := range batch {
		tp := connect.TopicPartition{Topic: raws[i].Topic, Partition: raws[i].Partition}
		if l.assigned[tp] && !l.revoked[tp] {
			b, r = append(b, batch[i]), append(r, raws[i])
		}
	}
	return b, r
}
