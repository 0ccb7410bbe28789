package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/internal/retry"
)

// Stages of record processing, as the error headers and messages name them.
const (
	stageKeyConverter   = "KEY_CONVERTER"
	stageValueConverter = "VALUE_CONVERTER"
	stageTransform      = "TRANSFORMATION"
	stageTaskPut        = "TASK_PUT"
	stageTaskPoll       = "TASK_POLL"
	stageProducer       = "KAFKA_PRODUCE"
)

// errToleranceExceeded is Kafka Connect's message for a bad record the policy does not allow.
var errToleranceExceeded = errors.New("Tolerance exceeded in error handler")

// errorPolicy applies a connector's errors.* settings to a failed operation on one record:
// retry it while it is retriable and errors.retry.timeout allows, then either fail the task
// (errors.tolerance=none) or log it and send it to the dead-letter topic (all).
type errorPolicy struct {
	cfg       *CommonConfig
	connector string
	task      int
	log       *slog.Logger
	dlq       *kafka.Producer // nil without a dead-letter topic
	metrics   *TaskMetrics
	secrets   []string
	maxBytes  int // the dead-letter producer's message.max.bytes: a dead-letter record must fit
}

// retry runs op until it succeeds, fails with an error that is not retriable, or the retry
// timeout passes, waiting 300 ms, doubling up to errors.retry.delay.max.ms, between tries.
func (p *errorPolicy) retry(ctx context.Context, op func() error) error {
	err := op()
	if err == nil || !connect.IsRetriable(err) || p.cfg.ErrorsRetryTimeout == 0 {
		return err
	}
	deadline := time.Now().Add(p.cfg.ErrorsRetryTimeout)
	delay := 300 * time.Millisecond
	for {
		if p.cfg.ErrorsRetryTimeout > 0 && time.Now().Add(delay).After(deadline) {
			return err
		}
		if werr := retry.Sleep(ctx, retry.Jitter(delay)); werr != nil {
			return err
		}
		if err = op(); err == nil || !connect.IsRetriable(err) {
			return err
		}
		delay = min(delay*2, p.cfg.ErrorsRetryDelayMax)
	}
}

// failed deals with a record that could not be processed in stage. It returns nil when the
// policy tolerates the error (the record is skipped, after it reached the dead-letter topic if
// one is set), or the error that must fail the task.
func (p *errorPolicy) failed(ctx context.Context, stage string, rec *connect.Record, raw *kafka.Message, cause error) error {
	p.metrics.errors.WithLabelValues(stage).Inc()
	where := ""
	if raw != nil {
		where = fmt.Sprintf(" (topic %s, partition %d, offset %d)", *raw.TopicPartition.Topic, raw.TopicPartition.Partition, raw.TopicPartition.Offset)
	} else if rec != nil && rec.Topic != "" {
		where = fmt.Sprintf(" (record for topic %s)", rec.Topic)
	}
	msg := redact.Scrub(fmt.Sprintf("%s failed%s: %v", stageName(stage), where, cause), p.secrets)
	if p.cfg.ErrorsTolerance != "all" {
		return fmt.Errorf("%w: %s", errToleranceExceeded, msg)
	}
	if p.cfg.ErrorsLogEnable {
		attrs := []any{"stage", stage, "err", msg} // the logger names the connector and task
		p.log.Warn("skipping a record the connector could not process", attrs...)
	}
	if p.dlq == nil {
		return nil
	}
	m := p.deadLetter(stage, rec, raw, cause)
	if err := produceSync(ctx, p.dlq, m); err != nil {
		return fmt.Errorf("writing a bad record to the dead-letter topic %s: %w (the record: %s)", p.cfg.DLQTopic, err, msg)
	}
	p.metrics.deadLettered.Inc()
	return nil
}

func stageName(stage string) string {
	switch stage {
	case stageKeyConverter:
		return "converting the key"
	case stageValueConverter:
		return "converting the value"
	case stageTransform:
		return "a transformation"
	case stageTaskPut:
		return "writing the record"
	case stageTaskPoll:
		return "reading the record"
	case stageProducer:
		return "producing the record"
	}
	return stage
}

// deadLetter builds the dead-letter record: the original bytes when the record came from
// Kafka, else what the source task reported, with Kafka Connect's context headers when asked.
func (p *errorPolicy) deadLetter(stage string, rec *connect.Record, raw *kafka.Message, cause error) *kafka.Message {
	topic := p.cfg.DLQTopic
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}}
	if raw != nil {
		m.Key, m.Value, m.Headers = raw.Key, raw.Value, append([]kafka.Header(nil), raw.Headers...)
	} else if rec != nil {
		m.Key, m.Value = asBytes(rec.Key), asBytes(rec.Value)
		for _, h := range rec.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	if !p.cfg.DLQContextHeaders {
		return m
	}
	h := func(k, v string) {
		m.Headers = append(m.Headers, kafka.Header{Key: "__connect.errors." + k, Value: []byte(v)})
	}
	if raw != nil {
		h("topic", *raw.TopicPartition.Topic)
		h("partition", strconv.Itoa(int(raw.TopicPartition.Partition)))
		h("offset", strconv.FormatInt(int64(raw.TopicPartition.Offset), 10))
	} else if rec != nil {
		h("topic", rec.Topic)
	}
	h("connector.name", p.connector)
	h("task.id", strconv.Itoa(p.task))
	h("stage", stage)
	h("class.name", p.cfg.Class)
	h("exception.class.name", fmt.Sprintf("%T", errors.Unwrap(cause)))
	h("exception.message", redact.Scrub(cause.Error(), p.secrets))
	h("exception.stacktrace", redact.Scrub(fmt.Sprintf("%+v", cause), p.secrets))
	fitDeadLetter(m, p.maxBytes)
	return m
}

// deadLetterHeaderMax is how long a context header may be in a dead-letter record that would
// not fit otherwise.
const deadLetterHeaderMax = 4096

// fitDeadLetter makes a dead-letter record fit within limit bytes (key, value and headers, with
// room for the record's framing): first the context headers are cut, then the value, and a
// header __sluice.errors.value.original.bytes says how long the value was. A record that
// Kafka refused for its size must still reach the dead-letter topic.
func fitDeadLetter(m *kafka.Message, limit int) {
	if limit <= 0 {
		limit = defaultMessageMaxBytes
	}
	limit -= 1024 // framing: record and batch headers, the header names
	size := func() int {
		n := len(m.Key) + len(m.Value)
		for _, h := range m.Headers {
			n += len(h.Key) + len(h.Value)
		}
		return n
	}
	if size() <= limit {
		return
	}
	for i, h := range m.Headers {
		if strings.HasPrefix(h.Key, "__connect.errors.") && len(h.Value) > deadLetterHeaderMax {
			m.Headers[i].Value = append(h.Value[:deadLetterHeaderMax:deadLetterHeaderMax], "..."...)
		}
	}
	if over := size() - limit; over > 0 && len(m.Value) > 0 {
		original := len(m.Value)
		m.Value = m.Value[:max(0, len(m.Value)-over-64)]
		m.Headers = append(m.Headers, kafka.Header{Key: "__sluice.errors.value.original.bytes", Value: []byte(strconv.Itoa(original))})
	}
	if over := size() - limit; over > 0 && len(m.Key) > 0 {
		m.Key = m.Key[:max(0, len(m.Key)-over)]
	}
}

// asBytes renders a source record's key or value for the dead-letter topic.
func asBytes(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return []byte(fmt.Sprint(v))
}

func produceSync(ctx context.Context, p *kafka.Producer, m *kafka.Message) error {
	ch := make(chan kafka.Event, 1)
	if err := p.Produce(m, ch); err != nil {
		return err
	}
	select {
	case e := <-ch:
		if dm, ok := e.(*kafka.Message); ok && dm.TopicPartition.Error != nil {
			return dm.TopicPartition.Error
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
