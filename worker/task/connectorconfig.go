package task

import (
	"time"

	"github.com/sluicehq/sluice/connect"
)

// CommonConfig holds the settings every connector has, with Kafka Connect's names. The
// runtime reads them; the connector's own settings come from its plugin's declaration.
type CommonConfig struct {
	Name            string   `config:"name" group:"Common" doc:"Globally unique name of the connector."`
	Class           string   `config:"connector.class" required:"true" group:"Common" doc:"The connector plugin: its name (mqtt-source) or a Kafka Connect style alias (MqttSourceConnector)."`
	TasksMax        int      `config:"tasks.max" default:"1" min:"1" group:"Common" doc:"Most tasks the connector may run."`
	KeyConverter    string   `config:"key.converter" group:"Common" doc:"Converter of record keys; the worker's when empty."`
	ValueConverter  string   `config:"value.converter" group:"Common" doc:"Converter of record values; the worker's when empty."`
	HeaderConverter string   `config:"header.converter" group:"Common" doc:"Accepted for compatibility; headers are passed as bytes."`
	Transforms      []string `config:"transforms" group:"Transforms" doc:"Aliases of the transformations to apply to records, in order."`
	Predicates      []string `config:"predicates" group:"Predicates" doc:"Aliases of the predicates transformations may use."`
	ConfigReload    string   `config:"config.action.reload" default:"restart" enum:"none,restart" group:"Common" doc:"Accepted for compatibility."`

	ErrorsRetryTimeout  time.Duration `config:"errors.retry.timeout" default:"0" group:"Error Handling" doc:"How long, in milliseconds, a failed conversion or transformation is retried; 0 no retries, -1 forever." min:"-1ms"`
	ErrorsRetryDelayMax time.Duration `config:"errors.retry.delay.max.ms" default:"60000" min:"1ms" group:"Error Handling" doc:"Longest wait between retries; waits start at 300 ms and double."`
	ErrorsTolerance     string        `config:"errors.tolerance" default:"none" enum:"none,all" group:"Error Handling" doc:"none fails the task at the first bad record; all skips bad records (to the dead-letter topic when one is set)."`
	ErrorsLogEnable     bool          `config:"errors.log.enable" default:"false" group:"Error Handling" doc:"Log each error and bad record."`
	ErrorsLogMessages   bool          `config:"errors.log.include.messages" default:"false" group:"Error Handling" doc:"Include the record's topic, partition, offset and key in the error log (never values)."`
	DLQTopic            string        `config:"errors.deadletterqueue.topic.name" group:"Error Handling" doc:"Topic that receives records the connector cannot process, for sink and (beyond Kafka Connect) source connectors. Created when missing."`
	DLQReplication      int           `config:"errors.deadletterqueue.topic.replication.factor" default:"3" min:"-1" group:"Error Handling" doc:"Replication factor of the dead-letter topic when it is created; -1 uses the broker default."`
	DLQContextHeaders   bool          `config:"errors.deadletterqueue.context.headers.enable" default:"false" group:"Error Handling" doc:"Add __connect.errors.* headers saying where the record came from and what went wrong."`

	AutoRestart            bool          `config:"auto.restart.enable" default:"false" group:"Restarts" doc:"Restart failed tasks automatically with capped exponential backoff (Kafka Connect never does)."`
	AutoRestartBackoffMax  time.Duration `config:"auto.restart.backoff.max.ms" default:"60000" min:"1ms" group:"Restarts" doc:"Longest wait before an automatic restart; waits start at 1 s and double."`
	AutoRestartMaxAttempts int           `config:"auto.restart.max.attempts" default:"0" min:"0" group:"Restarts" doc:"Automatic restarts of a task before it stays FAILED; 0 means no limit."`
}

// SinkCommonConfig adds the settings every sink connector has.
type SinkCommonConfig struct {
	CommonConfig
	Topics      []string `config:"topics" group:"Common" doc:"Topics to consume. Give topics or topics.regex."`
	TopicsRegex string   `config:"topics.regex" group:"Common" doc:"Regular expression of topics to consume. Give topics or topics.regex."`
	MaxBatch    int      `config:"consumer.max.batch.records" default:"500" min:"1" group:"Common" doc:"Most records handed to the task in one put."`
}

// Validate checks that exactly one of topics and topics.regex is given.
func (c SinkCommonConfig) Validate() error {
	switch {
	case len(c.Topics) == 0 && c.TopicsRegex == "":
		return &connect.FieldError{Key: "topics", Message: "Must configure one of topics or topics.regex"}
	case len(c.Topics) > 0 && c.TopicsRegex != "":
		return &connect.FieldError{Key: "topics.regex", Message: "topics and topics.regex are mutually exclusive"}
	}
	for _, t := range c.Topics {
		if t == c.DLQTopic {
			return &connect.FieldError{Key: "errors.deadletterqueue.topic.name", Message: "The dead-letter topic " + t + " may not be one of the connector's topics"}
		}
	}
	return nil
}

// SourceCommonConfig adds the settings every source connector has.
type SourceCommonConfig struct {
	CommonConfig
	TopicCreationGroups     []string `config:"topic.creation.groups" group:"Topic Creation" doc:"Groups of topic.creation settings besides default, each with .include and .exclude regular expressions."`
	TopicCreationPartitions int      `config:"topic.creation.default.partitions" default:"-1" min:"-1" group:"Topic Creation" doc:"Partitions of topics the connector creates; with topic.creation.default.replication.factor it turns topic creation on. -1 uses the broker default."`
	TopicCreationRF         int      `config:"topic.creation.default.replication.factor" default:"0" min:"-1" group:"Topic Creation" doc:"Replication factor of topics the connector creates; -1 uses the broker default, 0 (unset) turns topic creation off."`
	ExactlyOnceSupport      string   `config:"exactly.once.support" default:"requested" enum:"requested,required" group:"Exactly Once" doc:"Accepted for compatibility with KIP-618."`
	TransactionBoundary     string   `config:"transaction.boundary" default:"poll" enum:"poll,interval,connector" group:"Exactly Once" doc:"Accepted for compatibility with KIP-618."`
}

var (
	SinkCommonSpec   = connect.SpecOf(SinkCommonConfig{})
	SourceCommonSpec = connect.SpecOf(SourceCommonConfig{})
)

// ConnectorSpec is the full declaration of a plugin's settings: the common ones, then its own.
func ConnectorSpec(p connect.Plugin) *connect.Spec {
	if p.Type == connect.SinkType {
		return SinkCommonSpec.Merge(p.Spec())
	}
	return SourceCommonSpec.Merge(p.Spec())
}
