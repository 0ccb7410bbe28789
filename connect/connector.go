package connect

import (
	"context"
	"log/slog"
)

// Config is a connector's or task's configuration: Kafka Connect's flat string map. The runtime
// hands connectors their configuration with ${env:...} and ${file:...} placeholders resolved;
// decode it into the connector's declared config struct with Decode.
type Config map[string]string

// Connector is the part of a plugin that plans the work: it reads the connector's
// configuration and splits it into at most maxTasks task configurations. It runs on one worker
// of the cluster; the tasks run wherever the cluster assigns them.
type Connector interface {
	// Start is called once with the connector's resolved configuration.
	Start(ctx context.Context, cfg Config, cc ConnectorContext) error
	// TaskConfigs returns one configuration per task, at most maxTasks of them.
	TaskConfigs(maxTasks int) ([]Config, error)
	// Stop releases what Start acquired. It is called once, also after a failed Start.
	Stop() error
}

// Validator is implemented by connectors that check their configuration beyond what the
// declaration can say: that the server answers, that the credentials work, that two settings
// agree. The runtime calls Validate on a fresh connector with the resolved configuration for
// PUT /connector-plugins/{name}/config/validate and before it stores a connector's
// configuration, and only when the declaration found nothing wrong. Return FieldErrors to
// put a message on a setting; any other error is shown on connector.class. The message must
// not contain a setting's value: the runtime hides secrets it knows of, but a value from a
// config provider is shown as its placeholder only.
type Validator interface {
	Validate(ctx context.Context, cfg Config) error
}

// ConnectorContext lets a connector talk back to the runtime.
type ConnectorContext interface {
	// RequestTaskReconfiguration asks the runtime to call TaskConfigs again and, when the
	// result differs, to restart the tasks with the new configurations.
	RequestTaskReconfiguration()
	// RaiseError fails the connector with err.
	RaiseError(err error)
	// Logger is the connector's logger, already tagged with its name.
	Logger() *slog.Logger
}

// SourceConnector is a connector whose tasks read from the outside world into Kafka.
type SourceConnector interface {
	Connector
	NewTask() SourceTask
}

// SinkConnector is a connector whose tasks write Kafka records to the outside world.
type SinkConnector interface {
	Connector
	NewTask() SinkTask
}

// TaskContext is what every task can ask of the runtime.
type TaskContext interface {
	// Connector is the name of the connector the task belongs to.
	Connector() string
	// TaskID is the task's number within its connector, from 0.
	TaskID() int
	// Logger is the task's logger, already tagged with the connector's name and task id.
	Logger() *slog.Logger
	// SetStatusNote puts a note in the trace of the running task's status (GET
	// /connectors/{name}/status), e.g. what the task waits for; "" clears it. The task stays
	// RUNNING. Call it when the note changes, not per record: each call writes the status topic.
	SetStatusNote(note string)
}

// SourceTask reads from the outside world. The runtime calls Poll in a loop, converts and
// produces what it returns, and stores each source partition's offset once Kafka has
// acknowledged every record before it. Delivery is at least once.
type SourceTask interface {
	// Start is called once with the task's resolved configuration. Resume from the offsets the
	// context returns.
	Start(ctx context.Context, cfg Config, tc SourceTaskContext) error
	// Poll blocks until it has records or ctx is done; it may return no records. An error
	// marked Retriable is logged and Poll is called again after a backoff; any other error
	// fails the task.
	Poll(ctx context.Context) ([]Record, error)
	// Stop is called once, from another goroutine than Poll may be blocked in; Poll's ctx is
	// cancelled first.
	Stop() error
}

// SourceAcker is implemented by source tasks that must acknowledge each record upstream once
// Kafka has it (MQTT's QoS 1 and 2, for example). Acknowledged is called for each record at
// most once, as soon as Kafka acknowledged it (or the error policy dead-lettered or skipped
// it), with the record as Poll returned it, AckHandle included; records of different Kafka
// partitions may be acknowledged out of Poll order. It is called from another goroutine than
// Poll and must not block for long. An error fails the task.
type SourceAcker interface {
	Acknowledged(ctx context.Context, rec Record) error
}

// SourceCommitter is implemented by source tasks that want to know when the runtime has stored
// their offsets (Kafka Connect's SourceTask.commit).
type SourceCommitter interface {
	Commit(ctx context.Context) error
}

// SourceTaskContext is a source task's view of the runtime.
type SourceTaskContext interface {
	TaskContext
	// Offset returns the last stored offset of a source partition, or nil when there is none.
	Offset(ctx context.Context, partition map[string]any) (map[string]any, error)
	// Report hands the runtime a record the task could not turn into a proper one (for
	// example a payload that does not parse), with the reason. It returns once the error
	// policy has dealt with it: the record is on the dead-letter topic, or logged and skipped.
	// A non-nil result means the policy does not tolerate it; return that error from Poll.
	Report(ctx context.Context, rec Record, reason error) error
}

// SinkTask writes Kafka records to the outside world. The runtime consumes the connector's
// topics in the consumer group connect-<name>, calls Put with batches, and commits offsets
// after PreCommit says which are safe.
type SinkTask interface {
	// Start is called once with the task's resolved configuration.
	Start(ctx context.Context, cfg Config, tc SinkTaskContext) error
	// Put writes a batch, or buffers it to be written by PreCommit. An error marked Retriable
	// makes the runtime pause consumption and hand the same batch to Put again after a
	// backoff; any other error fails the task.
	Put(ctx context.Context, batch []Record) error
	// PreCommit flushes what Put buffered and returns the offsets that are safe to commit:
	// those given (everything handed to Put so far), or older ones, or nil to commit nothing.
	PreCommit(ctx context.Context, offsets Offsets) (Offsets, error)
	// Stop is called once after the last Put.
	Stop() error
}

// PartitionAware is implemented by sink tasks that keep state per partition. Open is called
// when partitions are assigned to the task, before their first record; Close when they are
// taken away, after the runtime committed their offsets.
type PartitionAware interface {
	Open(ctx context.Context, partitions []TopicPartition) error
	Close(ctx context.Context, partitions []TopicPartition) error
}

// SinkTaskContext is a sink task's view of the runtime.
type SinkTaskContext interface {
	TaskContext
	// Report sends a record the task cannot write to the error policy, with the reason: it
	// returns once the record is on the dead-letter topic, or logged and skipped. A non-nil
	// result means the policy does not tolerate it; return that error from Put.
	Report(ctx context.Context, rec Record, reason error) error
	// Assignment is the set of partitions the task currently reads.
	Assignment() []TopicPartition
	// Seek makes consumption of a partition resume at offset, for tasks that keep their own
	// offsets in the target system (exactly-once sinks). Call it from Open or Put.
	Seek(tp TopicPartition, offset int64)
	// Pause stops delivering records of the partitions until Resume.
	Pause(partitions ...TopicPartition)
	Resume(partitions ...TopicPartition)
	// RequestCommit asks for an offset commit (and so a PreCommit) soon.
	RequestCommit()
}
