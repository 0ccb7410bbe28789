package filesource

import (
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Config is the file-source connector's configuration.
type Config struct {
	File         string        `config:"file" required:"true" path:"true"`
	Topic        string        `config:"kafka.topic" required:"true" pattern:"[a-zA-Z0-9._-]{1,249}" doc:"Kafka topic the lines are written to."`
	BatchSize    int           `config:"batch.size" default:"500" min:"1" max:"100000" importance:"low" doc:"Most lines one poll returns."`
	PollInterval time.Duration `config:"poll.interval" default:"1s" min:"10ms" max:"1h" importance:"low" doc:"How long to wait at the end of the file (or while it is missing) before looking for more lines."`
	LineMaxBytes int           `config:"line.max.bytes" default:"1048576" min:"1" max:"1073741824" importance:"low"`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"file": "Path of the text file to read. The stored offsets belong to this path as written, so " +
			"keep its spelling when changing other settings. A missing file is waited for.",
		"line.max.bytes": "Longest line read, in bytes, not counting its newline (\\n or \\r\\n); the default " +
			"is the producer's largest request (max.request.size, 1 MiB). A longer line is not " +
			"held in memory: it is skipped up to its newline and handed to the error policy (the " +
			"dead-letter topic gets the line's first 1024 bytes) with a reason naming the file, " +
			"the line's byte offset, its length and this limit; reading goes on with the next " +
			"line.",
	}
}

// Example is a configuration that reads a log file.
func (Config) Example() connect.Config {
	return connect.Config{"file": "/var/log/sensors.log", "kafka.topic": "sensor.log"}
}
