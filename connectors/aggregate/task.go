package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
)

// Task consumes the raw topic and writes window results, metrics, late frames, its changelog
// and the consumed offsets in Kafka transactions of its own. Each Poll runs one transaction and
// returns no records: the runtime only hosts the task.
type Task struct {
	// rewindDue is set while a failed transaction's rewind has not succeeded yet.
	rewindDue bool
	cfg       Config
	raw       connect.Config
	tc        connect.SourceTaskContext
	log       *slog.Logger
	group     string
	changelog string
	parser    parser
	enc       encoder
	agg       *aggregator
	winLabel  string

	started  bool
	consumer *kafka.Consumer
	producer *kafka.Producer
	restorer *kafka.Consumer
	assigned []kafka.TopicPartition // the source partitions the consumer has
	inTxn    bool
	consumed map[int32]int64 // next offset per source partition, in the open transaction

	rebalanced bool  // the rebalance callback threw away the open transaction's work
	cbErr      error // an error of the rebalance callback, for the cycle to return
	full       bool  // window.max.open was reached and the status says so

	stats struct{ frames, late, dupes, bad, windows atomic.Int64 }

	// fault, set by tests only, fails a stage ("commit", "resume") when it returns an error.
	fault func(stage string) error
}

func (t *Task) injected(stage string) error {
	if t.fault == nil {
		return nil
	}
	return t.fault(stage)
}

var _ connect.SourceTask = (*Task)(nil)

// declaredKafka are the kafka.* settings the connector itself declares; every other kafka.*
// setting is a client property.
var declaredKafka = []string{"kafka.bootstrap.servers", "kafka.group.id"}

// Start checks the configuration; the Kafka clients are made by the first Poll, so that a
// task whose Kafka is away starts and retries rather than fails.
func (t *Task) Start(_ context.Context, cfg connect.Config, tc connect.SourceTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err == nil {
		err = connect.CheckClientSettings(cfg, "kafka.")
	}
	if err != nil {
		return fmt.Errorf("aggregate: invalid configuration: %w", err)
	}
	t.cfg, t.raw, t.tc, t.log = c, cfg, tc, tc.Logger()
	t.group = c.ConsumerGroup
	if t.group == "" {
		t.group = "sluice-aggregate-" + tc.Connector()
	}
	t.changelog = c.ChangelogTopic
	if t.changelog == "" {
		t.changelog = tc.Connector() + "-aggregate-changelog"
	}
	t.parser = parser{groupBy: c.GroupBy, fields: c.ValueFields, timeField: c.TimeField, idField: c.EventIDField,
		maxFuture: c.MaxFuture.Milliseconds()}
	t.enc = encoder{groupBy: c.GroupBy, fields: c.ValueFields, aggs: c.Aggregations, prefix: c.MetricPrefix}
	advance := c.WindowAdvance
	if advance == 0 {
		advance = c.WindowSize
	}
	t.agg = newAggregator(windowSpec{
		size: c.WindowSize.Milliseconds(), advance: advance.Milliseconds(),
		outOfOrder: c.OutOfOrder.Milliseconds(), lateness: c.Lateness.Milliseconds(),
		fields: c.ValueFields, dedupe: c.EventIDField != "", emitEarly: c.EmitEarly,
		idField: c.EventIDField, groupBy: c.GroupBy, maxIDs: c.MaxIDs, maxOpen: c.MaxOpen,
	})
	t.winLabel = c.WindowSize.String()
	t.consumed = map[int32]int64{}
	return nil
}

// transactionalID names the task's producer: a restarted or moved task has the same one and
// so fences the producer of its predecessor.
func (t *Task) transactionalID() string {
	return fmt.Sprintf("sluice-aggregate-%s-%d", t.tc.Connector(), t.tc.TaskID())
}

// props are the client properties common to all the task's clients.
func (t *Task) props(extra kafka.ConfigMap) *kafka.ConfigMap {
	// librdkafka's informational lines (telemetry, ...) go to stderr unformatted: warnings only,
	// unless kafka.log_level says otherwise.
	m := kafka.ConfigMap{"bootstrap.servers": t.cfg.Bootstrap, "log_level": 4}
	for k, v := range t.raw {
		if strings.HasPrefix(k, "kafka.") && !slices.Contains(declaredKafka, k) {
			m[strings.TrimPrefix(k, "kafka.")] = v
		}
	}
	for k, v := range extra {
		m[k] = v
	}
	return &m
}

// Poll runs one transaction: it consumes for up to commit.interval, then emits the windows
// the watermark closed, writes the changed state to the changelog and commits the consumed
// offsets with them. A failed transaction is aborted and the state and positions are reset
// to the last committed one.
func (t *Task) Poll(ctx context.Context) ([]connect.Record, error) {
	if !t.started {
		if err := t.setup(ctx); err != nil {
			t.closeClients()
			return nil, connect.Retriable(fmt.Errorf("aggregate: connecting to Kafka: %w", err))
		}
		t.started = true
	}
	if t.rewindDue {
		// The last rewind failed: the state is empty and the consumer still past the aborted
		// frames, so nothing may be consumed before the rewind succeeds.
		if err := t.rewind(ctx); err != nil {
			return nil, connect.Retriable(fmt.Errorf("aggregate: resuming from the last committed transaction: %w", err))
		}
	}
	err := t.cycle(ctx)
	if err == nil {
		return nil, nil
	}
	var fatal permanent
	if ke, ok := err.(kafka.Error); (ok && ke.IsFatal()) || errors.As(err, &fatal) {
		t.abortOpen()
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	t.log.Warn("transaction failed; aborting it and resuming from the last committed one", "err", err)
	t.abortOpen()
	if rerr := t.rewind(ctx); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return nil, connect.Retriable(fmt.Errorf("aggregate: %w", err))
}

// permanent marks an error that fails the task.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func (t *Task) setup(ctx context.Context) error {
	admin, err := kafka.NewAdminClient(t.props(nil))
	if err != nil {
		return err
	}
	defer admin.Close()
	md, err := admin.GetMetadata(&t.cfg.SourceTopic, false, 10000)
	if err != nil {
		return err
	}
	tm, ok := md.Topics[t.cfg.SourceTopic]
	if !ok || tm.Error.Code() != kafka.ErrNoError || len(tm.Partitions) == 0 {
		return fmt.Errorf("source topic %s is not available: %v", t.cfg.SourceTopic, tm.Error)
	}
	n := len(tm.Partitions)
	changelogParts := n
	if t.cfg.Partitioning == PartitionGlobal {
		changelogParts = 1
	}
	specs := []kafka.TopicSpecification{{Topic: t.cfg.OutputTopic, NumPartitions: n, ReplicationFactor: t.cfg.Replication},
		{Topic: t.changelog, NumPartitions: changelogParts, ReplicationFactor: t.cfg.Replication,
			Config: map[string]string{"cleanup.policy": "compact"}}}
	for _, topic := range []string{t.cfg.MetricsTopic, t.cfg.LateTopic} {
		if topic != "" {
			specs = append(specs, kafka.TopicSpecification{Topic: topic, NumPartitions: n, ReplicationFactor: t.cfg.Replication})
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(cctx, specs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if c := r.Error.Code(); c != kafka.ErrNoError && c != kafka.ErrTopicAlreadyExists {
			return fmt.Errorf("creating topic %s: %v", r.Topic, r.Error)
		}
	}
	cmd, err := admin.GetMetadata(&t.changelog, false, 10000)
	if err != nil {
		return err
	}
	if got := len(cmd.Topics[t.changelog].Partitions); got < changelogParts {
		return permanent{fmt.Errorf("changelog topic %s has %d partitions, needs %d", t.changelog, got, changelogParts)}
	}

	t.producer, err = kafka.NewProducer(t.props(kafka.ConfigMap{
		"transactional.id": t.transactionalID(), "go.delivery.reports": false,
		"partitioner": "murmur2_random", "linger.ms": 20,
		// One request in flight: with more, librdkafka can count a batch Kafka refused as
		// written when the next one is accepted (confluent-kafka-go issue 921).
		"max.in.flight.requests.per.connection": 1,
		// confluent-kafka-go's own defaults are channels of a million entries each, 24 MB of
		// Go heap the collector counts live (the runtime's producers bound them the same way):
		// events are drained as they come and Produce is called directly.
		"go.events.channel.size": 10000, "go.produce.channel.size": 1}))
	if err != nil {
		return err
	}
	go func(events chan kafka.Event, log *slog.Logger) {
		for e := range events {
			if err, ok := e.(kafka.Error); ok {
				log.Debug("producer", "err", err)
			}
		}
	}(t.producer.Events(), t.log)
	ictx, icancel := context.WithTimeout(ctx, 60*time.Second)
	defer icancel()
	if err := t.producer.InitTransactions(ictx); err != nil {
		return fmt.Errorf("init transactions: %w", err)
	}
	t.consumer, err = kafka.NewConsumer(t.props(kafka.ConfigMap{
		"group.id": t.group, "group.instance.id": fmt.Sprintf("%s-%d", t.group, t.tc.TaskID()),
		"isolation.level": "read_committed", "enable.auto.commit": false, "enable.auto.offset.store": false,
		"auto.offset.reset": "earliest"}))
	if err != nil {
		return err
	}
	t.restorer, err = kafka.NewConsumer(t.props(kafka.ConfigMap{
		"group.id": t.group + "-restore", "isolation.level": "read_committed", "enable.auto.commit": false,
		"enable.partition.eof": true, "auto.offset.reset": "earliest"}))
	if err != nil {
		return err
	}
	return t.consumer.Subscribe(t.cfg.SourceTopic, t.rebalance)
}

// rebalance runs inside consumer.Poll. Any change of assignment throws away the open
// transaction and reloads the state of the partitions the task now has.
func (t *Task) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	t.abortOpen()
	t.agg.reset()
	clear(t.consumed)
	t.rebalanced = true
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		t.assigned = slices.Clone(e.Partitions)
		t.log.Info("partitions assigned", "partitions", len(e.Partitions))
		if err := t.resume(context.Background()); err != nil {
			t.cbErr = err
		}
	case kafka.RevokedPartitions:
		t.assigned = nil
		if err := c.Unassign(); err != nil {
			t.cbErr = err
		}
	}
	return nil
}

// rewind resets the state and positions to the last committed transaction.
func (t *Task) rewind(ctx context.Context) error {
	t.agg.reset()
	clear(t.consumed)
	err := t.resume(ctx)
	t.rewindDue = err != nil
	return err
}

// resume reads the committed offsets of the assigned partitions (waiting for pending
// transactions on them to end), restores their window state from the changelog and makes
// the consumer continue at the offsets.
func (t *Task) resume(ctx context.Context) error {
	if err := t.injected("resume"); err != nil {
		return err
	}
	if len(t.assigned) == 0 {
		return t.consumer.Assign(nil)
	}
	committed, err := t.consumer.Committed(slices.Clone(t.assigned), 30000)
	if err != nil {
		return fmt.Errorf("reading committed offsets: %w", err)
	}
	for i := range committed {
		if committed[i].Offset < 0 {
			committed[i].Offset = kafka.OffsetBeginning
		}
	}
	var scopes []int32
	if t.cfg.Partitioning == PartitionGlobal {
		scopes = []int32{0}
	} else {
		for _, tp := range t.assigned {
			scopes = append(scopes, tp.Partition)
		}
	}
	if err := t.restore(ctx, scopes); err != nil {
		return fmt.Errorf("restoring window state: %w", err)
	}
	return t.consumer.Assign(committed)
}

// restore reads changelog partitions (one per scope) from the beginning to their end.
func (t *Task) restore(ctx context.Context, scopes []int32) error {
	var tps []kafka.TopicPartition
	pending := map[int32]bool{}
	for _, s := range scopes {
		lo, hi, err := t.restorer.QueryWatermarkOffsets(t.changelog, s, 10000)
		if err != nil {
			return err
		}
		if hi > lo {
			tps = append(tps, kafka.TopicPartition{Topic: &t.changelog, Partition: s, Offset: kafka.OffsetBeginning})
			pending[s] = true
		}
	}
	if len(tps) == 0 {
		return nil
	}
	if err := t.restorer.Assign(tps); err != nil {
		return err
	}
	defer func() {
		if err := t.restorer.Unassign(); err != nil {
			t.log.Debug("unassigning the changelog reader", "err", err)
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	restored := 0
	for len(pending) > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("changelog %s not read to its end within 2 minutes", t.changelog)
		}
		switch e := t.restorer.Poll(200).(type) {
		case *kafka.Message:
			if err := t.apply(e.TopicPartition.Partition, e.Key, e.Value); err != nil {
				return err
			}
			restored++
		case kafka.PartitionEOF:
			delete(pending, e.Partition)
		case kafka.Error:
			if e.IsFatal() {
				return e
			}
		}
	}
	t.log.Info("window state restored", "scopes", len(scopes), "records", restored)
	return nil
}

// Changelog keys: "w|<window start>|<group key>" for a window, "p|<partition>" for a source
// partition's watermark and counters.
func windowChangelogKey(k winKey) []byte {
	return []byte("w|" + strconv.FormatInt(k.start, 10) + "|" + k.group)
}

func (t *Task) apply(scopeID int32, key, value []byte) error {
	k := string(key)
	switch {
	case strings.HasPrefix(k, "w|"):
		rest := k[2:]
		i := strings.IndexByte(rest, '|')
		if i < 0 {
			return fmt.Errorf("bad changelog key %q", k)
		}
		start, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return fmt.Errorf("bad changelog key %q", k)
		}
		if value == nil {
			t.agg.deleteWindow(scopeID, winKey{rest[i+1:], start})
			return nil
		}
		var w window
		if err := json.Unmarshal(value, &w); err != nil {
			return fmt.Errorf("changelog window %q: %w", k, err)
		}
		if err := t.agg.restoreWindow(scopeID, &w); err != nil {
			return fmt.Errorf("changelog window %q: %w", k, err)
		}
	case strings.HasPrefix(k, "p|"):
		p, err := strconv.ParseInt(k[2:], 10, 32)
		if err != nil || value == nil {
			return nil
		}
		var ps partState
		if err := json.Unmarshal(value, &ps); err != nil {
			return fmt.Errorf("changelog partition %q: %w", k, err)
		}
		t.agg.restorePart(scopeID, int32(p), &ps)
		// A watermark far in the future (kept before event.time.max.future was checked) would
		// make every frame too late: it restarts from the wall clock.
		if now := time.Now().UnixMilli(); t.parser.maxFuture > 0 && ps.Seen && ps.MaxTime > now+t.parser.maxFuture {
			t.log.Warn("the changelog holds an event time far in the future for a source partition; the watermark restarts from the wall clock",
				"partition", p, "event_time", formatTime(ps.MaxTime), "wall_clock", formatTime(now))
			ps.MaxTime, ps.changed = now, true
		}
	}
	return nil
}

func (t *Task) scopeOf(partition int32) int32 {
	if t.cfg.Partitioning == PartitionGlobal {
		return 0
	}
	return partition
}

// cycle is one transaction.
func (t *Task) cycle(ctx context.Context) error {
	deadline := time.Now().Add(t.cfg.CommitInterval)
	n := 0
	for n < t.cfg.MaxBatch && ctx.Err() == nil {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		ev := t.consumer.Poll(int(min(wait, 100*time.Millisecond).Milliseconds()) + 1)
		if err := t.cbErr; err != nil {
			t.cbErr = nil
			return err
		}
		if t.rebalanced { // the open transaction's work is gone; start over
			t.rebalanced, n = false, 0
		}
		switch e := ev.(type) {
		case *kafka.Message:
			if e.TopicPartition.Error != nil {
				t.log.Debug("consume", "err", e.TopicPartition.Error)
				continue
			}
			if err := t.process(ctx, e); err != nil {
				return err
			}
			n++
		case kafka.Error:
			if e.IsFatal() {
				return e
			}
			t.log.Debug("consumer", "err", e)
		}
	}
	if !t.inTxn {
		return nil
	}
	// Commit what was consumed even when ctx is done, so that a stopping task hands over
	// a recent state.
	cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return t.commit(cctx)
}

func (t *Task) begin() error {
	if t.inTxn {
		return nil
	}
	if err := t.producer.BeginTransaction(); err != nil {
		return err
	}
	t.inTxn = true
	return nil
}

// abortOpen aborts the open transaction, if any.
func (t *Task) abortOpen() {
	if !t.inTxn || t.producer == nil {
		return
	}
	t.inTxn = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.producer.AbortTransaction(ctx); err != nil {
		t.log.Warn("abort transaction", "err", err)
	}
}

// process takes one raw record.
func (t *Task) process(ctx context.Context, m *kafka.Message) error {
	if err := t.begin(); err != nil {
		return err
	}
	p := m.TopicPartition.Partition
	t.consumed[p] = int64(m.TopicPartition.Offset) + 1
	t.stats.frames.Add(1)
	f, err := t.parser.parse(m.Value, m.Timestamp.UnixMilli(), time.Now().UnixMilli())
	if err != nil {
		t.stats.bad.Add(1)
		return t.report(ctx, m, err)
	}
	v, err := t.agg.add(t.scopeOf(p), p, f)
	switch v {
	case rejected:
		t.stats.bad.Add(1)
		return t.report(ctx, m, err)
	case noRoom:
		t.stats.bad.Add(1)
		if !t.full {
			t.full = true
			t.tc.SetStatusNote(fmt.Sprintf("window.max.open reached: the task holds %d open windows; frames that would open more go to the error policy until windows close", t.cfg.MaxOpen))
		}
		return t.report(ctx, m, err)
	case duplicate:
		t.stats.dupes.Add(1)
	case tooLate:
		t.stats.late.Add(1)
		reason := fmt.Errorf("too late: event time %s is past the allowed lateness of its windows", formatTime(f.time))
		if t.cfg.LateTopic == "" {
			return t.report(ctx, m, reason)
		}
		headers := append(slices.Clone(m.Headers),
			kafka.Header{Key: "sluice.aggregate.reason", Value: []byte(reason.Error())},
			kafka.Header{Key: "sluice.aggregate.source", Value: []byte(fmt.Sprintf("%s/%d@%d", t.cfg.SourceTopic, p, m.TopicPartition.Offset))})
		return t.produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t.cfg.LateTopic, Partition: kafka.PartitionAny},
			Key: m.Key, Value: m.Value, Headers: headers, Timestamp: m.Timestamp})
	}
	return nil
}

// report hands a frame to the runtime's error policy.
func (t *Task) report(ctx context.Context, m *kafka.Message, reason error) error {
	rec := connect.Record{Topic: t.cfg.SourceTopic, Key: m.Key, Value: m.Value, Time: m.Timestamp,
		KafkaPartition: m.TopicPartition.Partition, KafkaOffset: int64(m.TopicPartition.Offset)}
	for _, h := range m.Headers {
		rec.Headers = append(rec.Headers, connect.Header{Key: h.Key, Value: h.Value})
	}
	if err := t.tc.Report(ctx, rec, reason); err != nil {
		return permanent{err}
	}
	return nil
}

func (t *Task) produce(m *kafka.Message) error {
	for {
		err := t.producer.Produce(m, nil)
		if ke, ok := err.(kafka.Error); ok && ke.Code() == kafka.ErrQueueFull {
			t.producer.Flush(100)
			continue
		}
		return err
	}
}

// commit emits what the watermarks closed, writes the changed state and the consumed
// offsets, and commits the transaction.
func (t *Task) commit(ctx context.Context) error {
	if err := t.injected("commit"); err != nil {
		return err
	}
	ids := make([]int32, 0, len(t.agg.scopes))
	for id := range t.agg.scopes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, em := range t.agg.advance(id) {
			t.stats.windows.Add(1)
			if err := t.emit(em); err != nil {
				return err
			}
		}
		puts, deletes, parts := t.agg.changes(id)
		tp := kafka.TopicPartition{Topic: &t.changelog, Partition: id}
		for _, w := range puts {
			v, err := json.Marshal(w)
			if err != nil {
				return permanent{fmt.Errorf("encoding the state of the window at %s of group %s: %w", formatTime(w.Start), w.groupKey, err)}
			}
			if err := t.produce(&kafka.Message{TopicPartition: tp, Key: windowChangelogKey(winKey{w.groupKey, w.Start}), Value: v}); err != nil {
				return err
			}
		}
		for _, k := range deletes {
			if err := t.produce(&kafka.Message{TopicPartition: tp, Key: windowChangelogKey(k)}); err != nil {
				return err
			}
		}
		for _, p := range parts {
			v, err := json.Marshal(p)
			if err != nil {
				return permanent{fmt.Errorf("encoding the state of source partition %d: %w", p.partition, err)}
			}
			if err := t.produce(&kafka.Message{TopicPartition: tp, Key: []byte("p|" + strconv.Itoa(int(p.partition))), Value: v}); err != nil {
				return err
			}
		}
	}
	if t.full && t.agg.openWindows() <= t.cfg.MaxOpen*9/10 {
		t.full = false
		t.tc.SetStatusNote("")
	}
	offsets := make([]kafka.TopicPartition, 0, len(t.consumed))
	for p, off := range t.consumed {
		offsets = append(offsets, kafka.TopicPartition{Topic: &t.cfg.SourceTopic, Partition: p, Offset: kafka.Offset(off)})
	}
	if len(offsets) > 0 {
		cgm, err := t.consumer.GetConsumerGroupMetadata()
		if err != nil {
			return err
		}
		if err := t.producer.SendOffsetsToTransaction(ctx, offsets, cgm); err != nil {
			return err
		}
	}
	if err := t.producer.CommitTransaction(ctx); err != nil {
		return err
	}
	t.inTxn = false
	clear(t.consumed)
	return nil
}

// emit writes a window result to the output topic and its metrics to the metrics topic. A
// result that cannot be encoded fails the task: the window state allows only finite numbers,
// so this is a bug, and writing anything else would lose the window silently.
func (t *Task) emit(em emission) error {
	key, err := t.enc.resultKey(em.w)
	var value []byte
	if err == nil {
		value, err = t.enc.resultValue(em)
	}
	if err != nil {
		return permanent{fmt.Errorf("encoding the result of the window at %s of group %s: %w", formatTime(em.w.Start), em.w.groupKey, err)}
	}
	if err := t.produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t.cfg.OutputTopic, Partition: kafka.PartitionAny},
		Key: key, Value: value}); err != nil {
		return err
	}
	if t.cfg.MetricsTopic == "" {
		return nil
	}
	metrics, err := t.enc.metrics(em, t.winLabel)
	if err != nil {
		return permanent{fmt.Errorf("encoding the metrics of the window at %s of group %s: %w", formatTime(em.w.Start), em.w.groupKey, err)}
	}
	for _, mt := range metrics {
		if err := t.produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t.cfg.MetricsTopic, Partition: kafka.PartitionAny},
			Key: mt.key, Value: mt.value}); err != nil {
			return err
		}
	}
	return nil
}

func (t *Task) closeClients() {
	if t.consumer != nil {
		if err := t.consumer.Close(); err != nil {
			t.log.Debug("closing the consumer", "err", err)
		}
		t.consumer = nil
	}
	if t.restorer != nil {
		if err := t.restorer.Close(); err != nil {
			t.log.Debug("closing the changelog reader", "err", err)
		}
		t.restorer = nil
	}
	if t.producer != nil {
		t.producer.Close()
		t.producer = nil
	}
}

// Stop aborts a transaction left open and closes the clients.
func (t *Task) Stop() error {
	t.abortOpen()
	t.closeClients()
	if t.log != nil && t.started {
		t.log.Info("aggregate task stopped", "frames", t.stats.frames.Load(), "windows_emitted", t.stats.windows.Load(),
			"too_late", t.stats.late.Load(), "duplicates", t.stats.dupes.Load(), "bad_frames", t.stats.bad.Load())
	}
	return nil
}
