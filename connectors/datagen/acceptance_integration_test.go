package datagen_test

import (
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/connectors/datagen"
)

// datagen has no outside system: it makes up its records. The round trip here is that the
// stream is what the connector documents, record for record: deterministic, the n-th record
// of task 0's one source partition being {"task": 0, "partition": 0, "seq": n, "payload": ""},
// sequence numbers without gaps; and that a task restarted with the offsets stored for what
// it produced continues after them, producing none of those records again and skipping none.
// batch.size is smaller than the records the check takes per task, so a task's records come
// in several polls, the last of which goes past them.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate string
	}{
		{"as fast as polled", "0"},
		{"at a rate", "500"}, // polls wait for the limiter's tokens
	} {
		t.Run(tc.name, func(t *testing.T) {
			connecttest.CheckSource(t, connecttest.Registered(t, datagen.Name), connecttest.SourceAcceptance{
				Config: connect.Config{"kafka.topic": "datagen", "rate": tc.rate, "format": "json", "partitions": "1",
					"batch.size": "7"},
				Records: 25,
				Generated: func(n int) map[string]any {
					return map[string]any{"task": int64(0), "partition": int64(0), "seq": int64(n), "payload": ""}
				},
				IDField: "seq",
				Resumes: true,
			})
		})
	}
}
