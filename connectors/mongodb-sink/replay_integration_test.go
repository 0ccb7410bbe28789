package mongodbsink_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// With write.model insert and the default errors.tolerance (none), the sink's offsets reset so
// that every record is delivered again, twice: the replayed inserts find their documents
// stored, which is no error, so the tasks keep running and each document is stored once.
func TestReplayedInsertsKeepTheTaskRunning(t *testing.T) {
	uri, db := mongoDB(t)
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("mongo-replay")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	const n = 600
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, n/2, 50)...)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("mongo-replay")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(uri, db.Name(), topic, "write.model", "insert",
		"consumer.max.batch.records", "100"))
	coll := db.Collection("frames")
	sluicetest.Eventually(t, time.Minute, "the first records written", func() (bool, string) {
		k := count(t, coll)
		return k == n/2, fmt.Sprint(k, " documents")
	})
	for round := range 2 {
		sluicetest.Call(t, "PUT", w.URL+"/connectors/"+name+"/stop", nil, nil)
		sluicetest.WaitState(t, w.URL, name, api.StateStopped, 0)
		var msg struct{ Message string }
		if code := sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name+"/offsets", nil, &msg); code != 200 || !strings.Contains(msg.Message, "reset") {
			t.Fatalf("round %d: reset the sink's offsets: %d %+v", round, code, msg)
		}
		sluicetest.Call(t, "PUT", w.URL+"/connectors/"+name+"/resume", nil, nil)
		sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)
		// Records after the replayed ones show that the replay is through.
		from := n/2 + round*n/4
		sluicetest.Produce(t, c.Bootstrap, topic, frames(from, from+n/4, 50)...)
		sluicetest.Eventually(t, time.Minute, "the records after the replay written", func() (bool, string) {
			k := count(t, coll)
			return k == int64(from+n/4), fmt.Sprint(k, " documents")
		})
	}
	st := sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)
	for _, ts := range st.Tasks {
		if ts.Trace != "" {
			t.Errorf("task %d has a trace: %s", ts.ID, ts.Trace)
		}
	}
	checkSeqs(t, coll, n)
}
