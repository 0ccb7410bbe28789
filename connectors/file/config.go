package file

import "github.com/sluicehq/sluice/connect"

// The line formats.
const (
	FormatJSON  = "json"
	FormatValue = "value"
)

// TaskToken in the file setting is replaced by the task id.
const TaskToken = "{task}"

// Config is the file connector's configuration.
type Config struct {
	File        string `config:"file" required:"true" path:"true"`
	Format      string `config:"format" default:"json" enum:"json,value"`
	Fsync       bool   `config:"fsync" default:"true"`
	BufferBytes int    `config:"buffer.bytes" default:"65536" min:"0" max:"67108864" importance:"low" doc:"Bytes of lines a task collects in memory before writing them to the file; an offset commit writes them regardless. 0 writes after every batch."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"file": "Path of the file to append to, created when missing (its directory must exist). " +
			"{task} in the path is replaced by the task id, so that each task writes its own " +
			"file; without it, the tasks share the file and write whole lines.",
		"format": "What a line holds: json is an object {\"topic\", \"partition\", \"offset\", \"key\", " +
			"\"value\", \"timestamp\"} (timestamp in milliseconds since the epoch, null when " +
			"absent); value is the record value alone. Byte-array keys and values are written as " +
			"strings when they are UTF-8 text, else base64.",
		"fsync": "Sync the file to disk before offsets are committed, so committed records survive a " +
			"crash of the machine, not only of the worker. With false a killed worker still loses " +
			"nothing, and commits are faster.",
	}
}

// Example is a configuration that writes each task's records to its own file.
func (Config) Example() connect.Config {
	return connect.Config{"topics": "iot.raw", "file": "/var/lib/sluice/iot.raw-{task}.jsonl"}
}
