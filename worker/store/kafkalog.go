// Package store holds the worker's state in Kafka's compacted topics, as Kafka Connect's backing
// stores do: connector and task configurations, target states, restart requests and session
// keys (the config topic), source offsets (the offsets topic), and connector, task and topic
// statuses (the status topic). Every worker reads each topic from its beginning into memory.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// Log is a compacted topic read from its beginning into memory and written to, like
// Kafka Connect's KafkaBasedLog: every worker applies every record, in order, through apply.
type Log struct {
	Topic    string
	log      *slog.Logger
	consumer *kafka.Consumer
	admin    *kafka.AdminClient // the consumer's, for end offsets
	producer *kafka.Producer
	apply    func(rec *kafka.Message)

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when positions move
	positions map[int32]int64
	err       error
	// While start reads to the end: the end offsets it waits for, or why it has none yet.
	ends    map[int32]int64
	endsWhy error

	stop chan struct{}
	done chan struct{}
}

// NewLog makes the clients of a log on topic; consumer holds settings of the consumer beyond the
// ones every log has.
func NewLog(topic string, clients *kafkaclient.Factory, log *slog.Logger, apply func(*kafka.Message), consumer map[string]string) (*Log, error) {
	c, err := clients.Consumer(map[string]string{
		"group.id":             "sluice-internal-reader", // never joined or committed: partitions are assigned
		"enable.auto.commit":   "false",
		"enable.partition.eof": "true",
		"isolation.level":      "read_committed",
		"auto.offset.reset":    "earliest",
	}, consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer for %s: %w", topic, err)
	}
	admin, err := kafka.NewAdminClientFromConsumer(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("admin client for %s: %w", topic, err)
	}
	p, err := clients.Producer(map[string]string{"enable.idempotence": "true", "acks": "all", "linger.ms": "0"})
	if err != nil {
		admin.Close()
		c.Close()
		return nil, fmt.Errorf("producer for %s: %w", topic, err)
	}
	return &Log{
		Topic: topic, log: log, consumer: c, admin: admin, producer: p, apply: apply,
		changed: make(chan struct{}), positions: map[int32]int64{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// Start assigns every partition from the beginning and reads to the end.
func (l *Log) Start(ctx context.Context) error {
	// The topic may have just been created: wait until this client's metadata shows it.
	var tm kafka.TopicMetadata
	wait := retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for deadline := time.Now().Add(kafkaclient.TopicVisibleTimeout); ; {
		md, err := l.consumer.GetMetadata(&l.Topic, false, 10000)
		if err != nil {
			return fmt.Errorf("metadata of %s: %w", l.Topic, err)
		}
		if tm = md.Topics[l.Topic]; len(tm.Partitions) > 0 {
			break
		}
		if time.Now().After(deadline) || retry.Sleep(ctx, wait.Wait()) != nil {
			return fmt.Errorf("topic %s has no partitions", l.Topic)
		}
	}
	var tps []kafka.TopicPartition
	for _, p := range tm.Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &l.Topic, Partition: p.ID, Offset: kafka.OffsetBeginning})
		l.positions[p.ID] = 0
	}
	if err := l.consumer.Assign(tps); err != nil {
		return fmt.Errorf("assign %s: %w", l.Topic, err)
	}
	go l.read()
	go l.drainProducerEvents()
	return l.ReadToEnd(ctx)
}

func (l *Log) drainProducerEvents() {
	for e := range l.producer.Events() {
		if err, ok := e.(kafka.Error); ok {
			l.log.Debug("producer event", "topic", l.Topic, "err", err)
		}
	}
}

func (l *Log) read() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		switch e := l.consumer.Poll(100).(type) {
		case *kafka.Message:
			l.apply(e)
			l.advance(e.TopicPartition.Partition, int64(e.TopicPartition.Offset)+1)
		case kafka.PartitionEOF:
			l.advance(e.Partition, int64(e.Offset))
		case kafka.Error:
			if e.IsFatal() {
				l.mu.Lock()
				l.err = fmt.Errorf("reading %s: %w", l.Topic, e)
				l.mu.Unlock()
			}
			l.log.Warn("reading internal topic", "topic", l.Topic, "err", e)
		}
	}
}

func (l *Log) advance(partition int32, next int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if next > l.positions[partition] {
		l.positions[partition] = next
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// ReadToEnd waits until every record written to the topic before the call has been applied.
func (l *Log) ReadToEnd(ctx context.Context) error {
	l.mu.Lock()
	parts := make([]int32, 0, len(l.positions))
	for p := range l.positions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	ends, err := l.endOffsets(ctx, parts)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ends, l.endsWhy = ends, nil
	l.mu.Unlock()
	for {
		l.mu.Lock()
		behind := false
		for p, end := range ends {
			if l.positions[p] < end {
				behind = true
				break
			}
		}
		changed, err := l.changed, l.err
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if !behind {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("reading %s to the end: %w", l.Topic, ctx.Err())
		}
	}
}

// endOffsets asks for the end offsets of the partitions in one request, as Kafka Connect's
// KafkaBasedLog does: the reader's long-polling fetch holds the broker connection for up to
// fetch.wait.max.ms, and a request per partition waited behind one each (12.5 s for the 25
// partitions of a default offsets topic, before every source task started). A topic just created
// may not have a leader yet, and a broker may be moving leadership: it retries until ctx ends.
func (l *Log) endOffsets(ctx context.Context, parts []int32) (map[int32]int64, error) {
	specs := make(map[kafka.TopicPartition]kafka.OffsetSpec, len(parts))
	for _, p := range parts {
		specs[kafka.TopicPartition{Topic: &l.Topic, Partition: p}] = kafka.LatestOffsetSpec
	}
	for {
		ends, err := l.listEnds(ctx, specs)
		if err == nil {
			return ends, nil
		}
		l.mu.Lock()
		l.endsWhy = err
		l.mu.Unlock()
		if retry.Sleep(ctx, 200*time.Millisecond) != nil {
			return nil, fmt.Errorf("end offsets of %s: %w", l.Topic, err)
		}
	}
}

func (l *Log) listEnds(ctx context.Context, specs map[kafka.TopicPartition]kafka.OffsetSpec) (map[int32]int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The reader is read_committed: the end it reaches is the last stable offset.
	res, err := l.admin.ListOffsets(rctx, specs, kafka.SetAdminIsolationLevel(kafka.IsolationLevelReadCommitted))
	if err != nil {
		return nil, err
	}
	ends := make(map[int32]int64, len(specs))
	for tp, info := range res.ResultInfos {
		if info.Error.Code() != kafka.ErrNoError {
			return nil, fmt.Errorf("end offset of partition %d: %w", tp.Partition, info.Error)
		}
		ends[tp.Partition] = int64(info.Offset)
	}
	if len(ends) != len(specs) {
		return nil, fmt.Errorf("end offsets: %d partitions answered of %d", len(ends), len(specs))
	}
	return ends, nil
}

// Progress says how far readToEnd has come, for a worker's start-up report.
func (l *Log) Progress() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.endsWhy != nil {
		return l.endsWhy.Error()
	}
	if l.ends == nil {
		return "asking for the end offsets"
	}
	behind := 0
	for p, end := range l.ends {
		if l.positions[p] < end {
			behind++
		}
	}
	return fmt.Sprintf("%d of %d partitions still to read", behind, len(l.ends))
}

// send writes a record and waits until Kafka acknowledged it. A nil value is a tombstone.
func (l *Log) send(ctx context.Context, key, value []byte) error {
	delivered := make(chan kafka.Event, 1)
	err := l.producer.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &l.Topic, Partition: kafka.PartitionAny},
		Key:            key, Value: value,
	}, delivered)
	if err != nil {
		return fmt.Errorf("write to %s: %w", l.Topic, err)
	}
	select {
	case e := <-delivered:
		if m, ok := e.(*kafka.Message); ok && m.TopicPartition.Error != nil {
			return fmt.Errorf("write to %s: %w", l.Topic, m.TopicPartition.Error)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("write to %s: %w", l.Topic, ctx.Err())
	}
}

// sendAsync writes a record and calls done (from another goroutine) with the result.
func (l *Log) sendAsync(key, value []byte, done func(error)) {
	ch := make(chan kafka.Event, 1)
	if err := l.producer.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &l.Topic, Partition: kafka.PartitionAny},
		Key:            key, Value: value,
	}, ch); err != nil {
		done(fmt.Errorf("write to %s: %w", l.Topic, err))
		return
	}
	go func() {
		e := <-ch
		if m, ok := e.(*kafka.Message); ok && m.TopicPartition.Error != nil {
			done(fmt.Errorf("write to %s: %w", l.Topic, m.TopicPartition.Error))
			return
		}
		done(nil)
	}()
}

func (l *Log) Close() {
	close(l.stop)
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
	}
	l.producer.Flush(5000)
	l.producer.Close()
	l.admin.Close() // the consumer's handle, which stays open until the consumer closes
	if err := l.consumer.Close(); err != nil && !errors.Is(err, kafka.NewError(kafka.ErrState, "", false)) {
		l.log.Debug("closing consumer", "topic", l.Topic, "err", err)
	}
}
