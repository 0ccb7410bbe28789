package datagen

import "github.com/sluicehq/sluice/connect"

// The value formats.
const (
	FormatJSON   = "json"
	FormatString = "string"
)

// Config is the datagen connector's configuration.
type Config struct {
	Topic        string  `config:"kafka.topic" required:"true" pattern:"[a-zA-Z0-9._-]{1,249}" doc:"Kafka topic the records are written to."`
	Rate         float64 `config:"rate" default:"0" min:"0" importance:"high"`
	MaxRecords   int64   `config:"max.records" default:"0" min:"0" doc:"Records each task generates in all, counted across restarts from the stored offsets; then the task idles. 0 means no limit."`
	Partitions   int     `config:"partitions" default:"1" min:"1" max:"10000" importance:"low"`
	PayloadBytes int     `config:"payload.bytes" default:"0" min:"0" max:"10485760" importance:"low"`
	Format       string  `config:"format" default:"json" enum:"json,string" doc:"The value: json is a map {\"task\", \"partition\", \"seq\", \"payload\"} (integers, and the padding string); string is the sequence number as decimal text."`
	BatchSize    int     `config:"batch.size" default:"500" min:"1" max:"100000" importance:"low" doc:"Most records one poll returns."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"rate": "Records per second per task. 0 generates as fast as the runtime takes them, for " +
			"benchmarks; a small rate such as 10 suits demos, and 0.5 is one record every two " +
			"seconds. The rate is a ceiling: a task the runtime polls late catches up by at most " +
			"a second's worth of records.",
		"partitions": "Source partitions per task that the records are spread over round-robin. Each is " +
			"{\"task\": t, \"partition\": p} with its own sequence and stored offset {\"seq\": " +
			"n}; the record key is \"t-p\".",
		"payload.bytes": "Pads each value to about this many bytes: in the json format with a \"payload\" " +
			"string of 'x's so the JSON value is this long, in the string format with leading " +
			"zeros. 0 adds no padding.",
	}
}

// Example is a configuration for a demo: ten records a second.
func (Config) Example() connect.Config {
	return connect.Config{"kafka.topic": "datagen", "rate": "10"}
}
