package aggregate

import (
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// The aggregations a window computes per value field.
const (
	AggCount = "count"
	AggMin   = "min"
	AggMax   = "max"
	AggAvg   = "avg"
	AggSum   = "sum"
	AggFirst = "first"
	AggLast  = "last"
)

var allAggs = []string{AggCount, AggMin, AggMax, AggAvg, AggSum, AggFirst, AggLast}

// The partitioning modes.
const (
	// PartitionAligned keeps window state per source partition: correct when every frame of a
	// group key is in one partition (the raw topic is keyed by a field the group key holds).
	PartitionAligned = "aligned"
	// PartitionGlobal keeps one window state over all source partitions in a single task.
	PartitionGlobal = "global"
)

// Config is the aggregate connector's configuration.
type Config struct {
	Bootstrap     string `config:"kafka.bootstrap.servers" endpoint:"true" required:"true" group:"Kafka" display:"Bootstrap servers"`
	ConsumerGroup string `config:"kafka.group.id" group:"Kafka" doc:"Consumer group of the tasks, which holds the consumed offsets committed in each transaction. Empty means sluice-aggregate-<connector name>."`
	Replication   int    `config:"topic.replication.factor" default:"-1" min:"-1" group:"Kafka" importance:"low" doc:"Replication factor of the topics the connector creates when they are missing (output, metrics, late records, changelog); -1 takes the broker's default."`

	SourceTopic    string `config:"source.topic" required:"true" pattern:"[a-zA-Z0-9._-]{1,249}" group:"Topics" doc:"Raw topic of JSON frames to aggregate. A Kafka Connect JSON envelope {\"schema\", \"payload\"} is unwrapped."`
	OutputTopic    string `config:"output.topic" required:"true" pattern:"[a-zA-Z0-9._-]{1,249}" group:"Topics" doc:"Topic of the window aggregates: one record per group key and window (again for each late update), keyed by the group key and window start."`
	MetricsTopic   string `config:"metrics.topic" pattern:"[a-zA-Z0-9._-]{0,249}" group:"Topics"`
	LateTopic      string `config:"late.topic" pattern:"[a-zA-Z0-9._-]{0,249}" group:"Topics"`
	ChangelogTopic string `config:"changelog.topic" pattern:"[a-zA-Z0-9._-]{0,249}" group:"Topics"`

	GroupBy      []string `config:"group.by" default:"device_id" group:"Aggregation" importance:"high"`
	ValueFields  []string `config:"value.fields" default:"temperature,humidity,pressure,luminosity" group:"Aggregation" importance:"high"`
	Aggregations []string `config:"aggregations" default:"count,min,max,avg,sum,first,last" enum:"count,min,max,avg,sum,first,last" group:"Aggregation" importance:"high"`
	Partitioning string   `config:"partitioning" default:"aligned" enum:"aligned,global" group:"Aggregation"`

	TimeField     string        `config:"event.time.field" default:"ts" group:"Time" importance:"high"`
	WindowSize    time.Duration `config:"window.size" default:"1m" min:"1ms" group:"Time" importance:"high" doc:"Length of a window. Windows are aligned to the epoch: [k*advance, k*advance + size)."`
	WindowAdvance time.Duration `config:"window.advance" default:"0" min:"0" group:"Time"`
	OutOfOrder    time.Duration `config:"watermark.out.of.order" default:"5s" min:"0" group:"Time"`
	Lateness      time.Duration `config:"allowed.lateness" default:"1m" min:"0" group:"Time"`
	EventIDField  string        `config:"dedupe.field" group:"Time"`
	MaxFuture     time.Duration `config:"event.time.max.future" default:"5m" min:"0" group:"Time"`
	MaxIDs        int           `config:"dedupe.max.ids" default:"20000" min:"1" group:"Limits"`
	MaxOpen       int           `config:"window.max.open" default:"100000" min:"1" group:"Limits"`
	EmitEarly     bool          `config:"emit.early" default:"false" group:"Time"`

	CommitInterval time.Duration `config:"commit.interval" default:"1s" min:"10ms" group:"Transactions" doc:"Longest a transaction collects frames before it commits: the delay until aggregates are readable by read_committed consumers."`
	MaxBatch       int           `config:"commit.max.records" default:"50000" min:"1" group:"Transactions" importance:"low" doc:"Most frames one transaction consumes."`

	MetricPrefix string `config:"metrics.name.prefix" default:"sensor" pattern:"[a-zA-Z_:][a-zA-Z0-9_:]*" group:"Metrics" doc:"Prefix of the metric names in the metrics topic: <prefix>_<field>_<aggregation>, and <prefix>_frames for the frame count of a window."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"kafka.bootstrap.servers": "Kafka the task reads the raw topic from and writes its topics to, with its own " +
			"consumer and transactional producer. Any other kafka.<property> setting (for example " +
			"kafka.security.protocol) is passed to both clients as <property>.",
		"metrics.topic": "Optional topic of metrics-shaped records for the prometheus-sink, one per window, " +
			"value field and aggregation: {\"name\", \"labels\", \"value\", \"timestamp\"}. Empty " +
			"writes none.",
		"late.topic": "Optional topic for frames that arrive after their windows' allowed lateness, written " +
			"unchanged in the same transaction, with headers saying why. Empty sends them to the " +
			"runtime's error policy (dead-letter topic, log or failure) instead.",
		"changelog.topic": "Compacted topic holding the open windows and watermarks, written in each transaction " +
			"and read back when a task starts or is given partitions. Empty means <connector " +
			"name>-aggregate-changelog.",
		"group.by": "Frame fields (dotted paths) whose values form the group key, for example device_id, " +
			"or place_id, or place_id,device_id. A frame missing one goes to the error policy.",
		"value.fields": "Numeric frame fields (dotted paths) to aggregate. A number or a string holding one " +
			"counts; a frame without the field (or with a non-numeric value) leaves it out of " +
			"that field's aggregates only. A reading that is not a finite number (\"NaN\", " +
			"\"Infinity\", beyond a 64-bit float) or that would make a window's sum overflow " +
			"sends the frame to the error policy.",
		"aggregations": "What each window computes per value field: any of count, min, max, avg, sum, first, " +
			"last. first and last are the values of the frames with the earliest and the latest " +
			"event time (ties: the earlier arrival for first, the later for last).",
		"partitioning": "aligned keeps windows and the watermark per source partition and runs up to " +
			"tasks.max tasks: correct when all frames of a group key share a partition (the raw " +
			"topic keyed by device_id and grouping by device_id). global keeps windows over all " +
			"partitions in one task, with the watermark the least of the partitions' watermarks: " +
			"for group keys that span partitions (per place while keyed by device).",
		"event.time.field": "Frame field (dotted path) with the event time: an ISO 8601 / RFC 3339 string, or " +
			"milliseconds since the epoch as a number or numeric string. Empty uses the Kafka " +
			"record timestamp. A frame whose event time is missing or unreadable goes to the " +
			"error policy.",
		"window.advance": "How far consecutive windows are apart. 0 or window.size makes tumbling windows; a " +
			"smaller value makes hopping windows, so a frame counts in size/advance windows.",
		"watermark.out.of.order": "Out-of-orderness bound: the watermark of a source partition is the greatest event " +
			"time seen in it minus this. A window is emitted once the watermark passes its end.",
		"allowed.lateness": "How long after the watermark passed a window's end it still takes frames: each such " +
			"late frame updates the window, which is emitted again with a higher revision. After " +
			"that the window is dropped, and frames for it go to late.topic or the error policy, " +
			"counted as too late.",
		"dedupe.field": "Frame field (dotted path) with an event id. When set, a frame whose id was already " +
			"counted in one of its windows is dropped as a duplicate (counted). Frames without " +
			"the field are never taken for duplicates.",
		"event.time.max.future": "How far ahead of the task's wall clock an event time may be. A frame further in the " +
			"future goes to the error policy, naming the field and value: it would move the " +
			"watermark (which the changelog keeps) so far that every later frame were too late. 0 " +
			"turns the check off.",
		"dedupe.max.ids": "Most event ids one window keeps for dedupe.field (they are stored in the window's " +
			"changelog record). A frame that would add one more to a full window goes to the " +
			"error policy, naming the id and the window. The ids of a window are also held to 800 " +
			"kB of JSON, so that its changelog record stays below Kafka's default 1 MB; 20000 ids " +
			"of 36 characters (UUIDs) fit.",
		"window.max.open": "Most open windows (group key and window start) a task holds in memory, about 1 kB " +
			"each plus their event ids. When a frame would open one more, the windows the " +
			"watermark has expired are emitted and dropped first; if that makes no room, the " +
			"frame goes to the error policy, naming the group field and value, and the task's " +
			"status says the limit is reached until windows close.",
		"emit.early": "Also emit windows that are still open, at every transaction in which they changed " +
			"(\"final\": false). Off, a window is emitted when it closes and again for each late " +
			"update.",
	}
}

// Example is a per-sensor aggregation of the demo pipeline's raw topic.
func (Config) Example() connect.Config {
	return connect.Config{
		"kafka.bootstrap.servers": "localhost:9092",
		"source.topic":            "iot.raw",
		"output.topic":            "iot.agg.sensor",
		"metrics.topic":           "iot.metrics",
		"group.by":                "device_id",
		"value.fields":            "temperature,humidity",
		"event.time.field":        "ts",
		"dedupe.field":            "frame_id",
		"window.size":             "1m",
		"allowed.lateness":        "5m",
	}
}

// Validate checks the rules across settings.
func (c Config) Validate() error {
	for _, a := range c.Aggregations {
		if !slices.Contains(allAggs, a) {
			return &connect.FieldError{Key: "aggregations", Message: "unknown aggregation " + a + "; use any of " + strings.Join(allAggs, ", ")}
		}
	}
	if len(c.Aggregations) == 0 {
		return &connect.FieldError{Key: "aggregations", Message: "at least one aggregation is needed"}
	}
	if len(c.GroupBy) == 0 {
		return &connect.FieldError{Key: "group.by", Message: "at least one group field is needed"}
	}
	if c.WindowAdvance > c.WindowSize {
		return &connect.FieldError{Key: "window.advance", Message: "must not exceed window.size"}
	}
	if c.WindowSize%time.Millisecond != 0 || c.WindowAdvance%time.Millisecond != 0 {
		return &connect.FieldError{Key: "window.size", Message: "window.size and window.advance must be whole milliseconds"}
	}
	topics := map[string]string{"output.topic": c.OutputTopic}
	for k, v := range map[string]string{"metrics.topic": c.MetricsTopic, "late.topic": c.LateTopic, "changelog.topic": c.ChangelogTopic} {
		if v != "" {
			topics[k] = v
		}
	}
	for k, v := range topics {
		if v == c.SourceTopic {
			return &connect.FieldError{Key: k, Message: "must differ from source.topic"}
		}
	}
	return nil
}
