// Package file is a sink connector that appends records to a file, one JSON line each.
//
// Puts collect lines in memory; an offset commit writes them and, unless fsync is off, syncs
// the file before the offsets are committed, so a committed offset only ever covers lines on
// disk. After a crash the records since the last commit are delivered again: the file may hold
// some lines twice, never lose one (at least once).
//
// Tasks of one worker that write the same path share one open file and write whole lines
// under its lock; the file is opened with O_APPEND, so workers on one machine append whole
// chunks of lines too. A "{task}" in the path gives each task its own file instead.
package file

import (
	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "file"

func init() {
	connect.Register(connect.Plugin{
		Name: Name,
		Doc: "Appends each record to a file as one line of JSON: an object with its topic, partition, offset, " +
			"key, value and timestamp, or only its value. Offsets are committed only for lines written and, " +
			"by default, synced to disk, so nothing is lost when a worker is killed; lines after the last " +
			"commit may appear twice (at least once). `{task}` in the file name gives each task its own file. " +
			"The file must be under one of the worker's `connector.file.allowed.paths` (none by default).",
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and gives every task a copy of it.
type Connector struct{ connect.TypedBase[Config] }

// NewTask returns a task that appends to the file.
func (*Connector) NewTask() connect.SinkTask { return &Task{} }
