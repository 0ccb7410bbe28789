// Package filesource is a source connector that reads a text file line by line, as the file
// sink's counterpart and for simple imports and demos.
//
// Each line becomes a record whose value is the line as a string. The source partition is
// {"file": path}; the last record of each batch (a poll, up to batch.size lines) carries the
// offset {"position": n}, the byte position after its line, and the others none (a map per
// line was most of the source's garbage at full speed), so a restarted task continues after
// the last batch Kafka acknowledged whole (at least once). The task
// follows the file as it grows, like tail -F, and emits a line only once it ends in a newline.
// When the file gets shorter than what was read (truncated), or the path names a new file
// (rotated), reading starts over at the beginning of the file the path names; lines appended
// to a rotated file after the task reached its end are not read.
//
// A line is held in memory up to line.max.bytes (plus one byte); the rest of a longer line is
// read and dropped, and once its newline arrives the line goes to the error policy through
// the task context's Report, with its first bytes as the value and its end as the offset.
// The runtime stores no offset for a reported record, so a task restarted before a later line
// was acknowledged reads the long line again and reports it again (at least once).
package filesource

import (
	"maps"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "file-source"

func init() {
	connect.Register(connect.Plugin{
		Name: Name,
		Doc: "Reads a text file line by line into a topic, following it as it grows: each line ending in a " +
			"newline becomes a record with the line as its string value. The offset, on the last record of each " +
			"batch, is the byte position after its line, so a restarted task continues after the last batch " +
			"acknowledged whole (at least once; up to batch.size lines are read again). A file that is truncated, or replaced under its path (rotated), is read again from its " +
			"start. A line longer than line.max.bytes is skipped without being held in memory and goes to the " +
			"error policy, with a reason naming the file, its byte offset, its length and the limit. One task " +
			"reads the file. The file must be under one of the worker's `connector.file.allowed.paths` (none by " +
			"default).",
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and plans a single task: a file has one reader.
type Connector struct{ connect.TypedBase[Config] }

// TaskConfigs returns one task configuration, whatever tasks.max allows.
func (c *Connector) TaskConfigs(maxTasks int) ([]connect.Config, error) {
	if maxTasks < 1 {
		return nil, nil
	}
	return []connect.Config{maps.Clone(c.Config)}, nil
}

// NewTask returns a task that reads the file.
func (*Connector) NewTask() connect.SourceTask { return &Task{} }
