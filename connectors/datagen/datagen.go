// Package datagen is a source connector that generates a deterministic stream of numbered
// records, for tests, demos and benchmarks.
//
// Each task spreads its records round-robin over a number of source partitions
// {"task": t, "partition": p}. Within a partition the sequence numbers run 0, 1, 2, ... without
// gaps, and the stored offset {"seq": n} is the last one Kafka acknowledged, so a restarted task
// continues at n+1: nothing is skipped, and records after the last stored offset may be
// produced twice (at least once). Only the last record of each partition in a batch carries
// the offset, so a stored offset ends a batch's share of its partition. The record with a given (task, partition, seq) is always the
// same, which lets tests check exactly what arrived.
package datagen

import (
	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "datagen"

func init() {
	connect.Register(connect.Plugin{
		Name: Name,
		Doc: "Generates a deterministic stream of numbered records for tests, demos and benchmarks. " +
			"Each task spreads its records round-robin over `partitions` source partitions; record `seq` of " +
			"partition `p` of task `t` has the key `\"t-p\"` and, in the json format, the value " +
			"`{\"task\": t, \"partition\": p, \"seq\": seq, \"payload\": \"...\"}`. Sequence numbers run from 0 " +
			"without gaps per partition, and a restarted task resumes after the last stored offset " +
			"`{\"seq\": n}`, so nothing is skipped and delivery is at least once.",
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and gives every task a copy of it; tasks tell their
// sequences apart by their task ids.
type Connector struct{ connect.TypedBase[Config] }

// NewTask returns a task that generates records.
func (*Connector) NewTask() connect.SourceTask { return &Task{} }
