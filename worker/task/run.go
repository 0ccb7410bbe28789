package task

import (
	"context"
	"fmt"
	"strings"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// Kafka is how a task reaches Kafka: the worker's clients and client settings.
type Kafka struct {
	Clients       *kafkaclient.Factory
	Admin         *kafka.AdminClient
	Bootstrap     string
	Settings      kafkaclient.Settings // the worker's shared, producer.*, consumer.* and admin.* settings
	TopicCreation bool                 // topic.creation.enable
}

// Run is one run of a task, as the worker sets it up: what the loop sees of the worker, how it
// reaches Kafka, the task's converters, transformations and settings, and its pause gate.
// Source and Sink make the task's Kafka clients and error policy from the connector's
// settings and run its loop until ctx ends or the task fails.
type Run struct {
	Host    Host
	Kafka   Kafka
	Setup   *Setup
	Context TaskContext
	Gate    *PauseGate
}

// Source runs a source task. acker is the task's SourceAcker, if it is one (t may be a
// wrapper of the task).
func (r Run) Source(ctx context.Context, t connect.SourceTask, acker connect.SourceAcker) error {
	var common SourceCommonConfig
	if err := SourceCommonSpec.Decode(r.Setup.Connector, &common); err != nil {
		return err
	}
	r.Setup.Common = &common.CommonConfig
	producerOverrides := r.overrides("producer.override.")
	policy, closePolicy, err := r.errorPolicy(ctx, &common.CommonConfig)
	if err != nil {
		return err
	}
	defer closePolicy()
	producer, err := r.Kafka.Clients.Producer(map[string]string{
		"enable.idempotence": "true", "acks": "all", "linger.ms": "5",
		"go.delivery.reports": "true", "go.delivery.report.fields": "none",
	}, producerOverrides)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	topics, err := newTopicCreator(r.Kafka.Admin, r.Kafka.TopicCreation, r.Setup.Connector, common.TopicCreationGroups)
	if err != nil {
		producer.Close()
		return err
	}
	// The worker partitions and matches acknowledgements by order only with the idempotent
	// producer and librdkafka's partitioner left alone (see sourceRouter).
	byOrder := true
	if v, ok := producerOverrides["enable.idempotence"]; ok {
		byOrder = strings.EqualFold(strings.TrimSpace(v), "true")
	}
	_, workerPartitioner := r.Kafka.Settings.Producer["partitioner"]
	_, connectorPartitioner := producerOverrides["partitioner"]
	byOrder = byOrder && !workerPartitioner && !connectorPartitioner
	loop := &sourceLoop{host: r.Host, setup: r.Setup, task: t, producer: producer, policy: policy, gate: r.Gate,
		pending: newSubmitted(), topics: topics, router: newSourceRouter(producer, byOrder), acker: acker,
		maxMessageBytes: maxMessageBytes(r.Kafka.Settings.Producer, producerOverrides)}
	return loop.run(ctx, &sourceContext{TaskContext: r.Context, loop: loop})
}

// Sink runs a sink task. aware is the task's PartitionAware, if it is one (t may be a
// wrapper of the task).
func (r Run) Sink(ctx context.Context, t connect.SinkTask, aware connect.PartitionAware) error {
	var common SinkCommonConfig
	if err := SinkCommonSpec.Decode(r.Setup.Connector, &common); err != nil {
		return err
	}
	r.Setup.Common = &common.CommonConfig
	policy, closePolicy, err := r.errorPolicy(ctx, &common.CommonConfig)
	if err != nil {
		return err
	}
	defer closePolicy()
	settings := map[string]string{
		"group.id": "connect-" + r.Setup.ID.Connector, "auto.offset.reset": "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
		// A killed worker's partitions move after 10 s, as Kafka Connect's worker session does,
		// rather than the consumer default of 45 s.
		"session.timeout.ms": "10000", "heartbeat.interval.ms": "3000",
	}
	consumerOverrides := r.overrides("consumer.override.")
	// A rebalance waits this long for a task busy in Put: librdkafka's and Kafka Connect's
	// max.poll.interval.ms (franz-go's own default is 60 s), unless the worker or the
	// connector sets it.
	pollInterval := kafkaclient.UnlessSet(map[string]string{"max.poll.interval.ms": "300000"}, r.Kafka.Settings.Consumer, consumerOverrides)
	// The sink consumer is franz-go's (sinkconsumer.go): the worker's consumer.* settings
	// and the connector's consumer.override.* are librdkafka's names, translated.
	consumer, unused, err := newSinkConsumer(r.Kafka.Bootstrap, r.Kafka.Clients.ClientID(),
		r.Kafka.Settings.Common, pollInterval, r.Kafka.Settings.Consumer, settings, consumerOverrides)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	if len(unused) > 0 {
		r.Setup.Log.Warn("consumer settings the sink consumer (franz-go) does not use", "settings", unused)
	}
	loop := &sinkLoop{host: r.Host, setup: r.Setup, common: &common, task: t, consumer: consumer, policy: policy, gate: r.Gate, aware: aware}
	return loop.run(ctx, &sinkContext{TaskContext: r.Context, loop: loop})
}

// errorPolicy makes the task's error policy and, with a dead-letter topic, makes sure the topic
// exists and makes its producer; closePolicy flushes and closes that producer.
func (r Run) errorPolicy(ctx context.Context, common *CommonConfig) (policy *errorPolicy, closePolicy func(), err error) {
	producerOverrides := r.overrides("producer.override.")
	policy = &errorPolicy{cfg: common, connector: r.Setup.ID.Connector, task: r.Setup.ID.Task, log: r.Setup.Log,
		metrics: r.Setup.Metrics, secrets: r.Setup.Secrets, maxBytes: maxMessageBytes(r.Kafka.Settings.Producer, producerOverrides)}
	if common.DLQTopic == "" {
		return policy, func() {}, nil
	}
	spec := kafkaclient.TopicSpec{Name: common.DLQTopic, Partitions: 1, Replication: common.DLQReplication}
	if err := kafkaclient.EnsureTopic(ctx, r.Kafka.Admin, spec); err != nil {
		return nil, nil, fmt.Errorf("dead-letter topic: %w", err)
	}
	dlq, err := r.Kafka.Clients.Producer(map[string]string{"enable.idempotence": "true", "acks": "all"}, producerOverrides)
	if err != nil {
		return nil, nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	go func() {
		for range dlq.Events() { // delivery reports: produceSync waits on its own channel
		}
	}()
	policy.dlq = dlq
	return policy, func() {
		dlq.Flush(5000)
		dlq.Close()
	}, nil
}

// overrides are the connector's settings under prefix (producer.override., ...), without it.
func (r Run) overrides(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range r.Setup.Connector {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
		}
	}
	return out
}
