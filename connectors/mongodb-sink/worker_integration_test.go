package mongodbsink_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// sinkConfig is a mongodb-sink connector writing topic to collection frames of db, one
// document per seq (id.strategy fields).
func sinkConfig(uri, db, topic string, extra ...string) map[string]string {
	cfg := map[string]string{
		"connector.class": "mongodb-sink", "tasks.max": "2", "topics": topic,
		"connection.uri": uri, "database": db, "collection": "frames",
		"write.model": "upsert", "id.strategy": "fields", "id.fields": "seq", "document.kafka.field": "kafka",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	return cfg
}

// A worker process killed mid-stream and a new one started: the records after the last
// offset commit are written again, and the collection ends with exactly one document per id.
func TestWorkerKilledMidStreamLeavesOneDocumentPerID(t *testing.T) {
	uri, db := mongoDB(t)
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("mongo-kill")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 3)
	const n = 20000
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, n/2, 500)...)

	p1 := c.StartProcess(nil)
	name := sluicetest.UniqueName("mongo-kill")
	// Small batches and a slow commit interval: the kill lands between commits, so records
	// are replayed.
	sluicetest.CreateConnector(t, p1.URL, name, sinkConfig(uri, db.Name(), topic, "consumer.max.batch.records", "100"))
	coll := db.Collection("frames")
	sluicetest.Eventually(t, 60*time.Second, "some documents written", func() (bool, string) {
		k := count(t, coll)
		return k >= 3000, fmt.Sprint(k, " documents")
	})
	p1.Kill()
	atKill := count(t, coll)
	if atKill >= n/2 {
		t.Fatalf("all %d documents were written before the kill; the test proves nothing", atKill)
	}
	t.Logf("killed the worker with %d of %d documents written", atKill, n)

	p2 := c.StartProcess(nil)
	sluicetest.Produce(t, c.Bootstrap, topic, frames(n/2, n, 500)...)
	sluicetest.Eventually(t, 3*time.Minute, "every record written", func() (bool, string) {
		k := count(t, coll)
		return k >= n, fmt.Sprint(k, " documents")
	})
	sluicetest.WaitState(t, p2.URL, name, api.StateRunning, 2)
	checkSeqs(t, coll, n)
	// The records the new worker wrote beyond those missing at the kill were replays.
	put := putTotal(t, p2.URL, name)
	t.Logf("the new worker put %d records for %d missing at the kill: %d replayed", put, n-int(atKill), put-(n-int(atKill)))
	if put < n-int(atKill) {
		t.Errorf("the new worker put %d records, fewer than the %d missing at the kill", put, n-int(atKill))
	}
}

// putTotal reads sluice_sink_records_put_total of a connector from a worker's /metrics.
func putTotal(t *testing.T, base, connector string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "sluice_sink_records_put_total{") && strings.Contains(line, `connector="`+connector+`"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return int(sum)
}

// MongoDB stopped for 30 s while records keep coming: the tasks retry (and stay RUNNING),
// and once it is back every record is written.
func TestServerStoppedUnderLoadLosesNothing(t *testing.T) {
	uri, db := mongoDB(t)
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("mongo-outage")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("mongo-outage")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(uri, db.Name(), topic, "timeout", "2s"))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)

	// Load: 100 records every 50 ms until told to stop.
	var produced atomic.Int64
	var failed atomic.Value
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "acks": "all", "linger.ms": 5})
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		drained := make(chan struct{})
		go func() { // delivery reports: Flush counts those not read yet
			defer close(drained)
			for ev := range p.Events() {
				if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error != nil {
					failed.Store(m.TopicPartition.Error)
				}
			}
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i += 100 {
			for _, m := range frames(i, i+100, 500) {
				m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
				for p.Produce(m, nil) != nil {
					p.Flush(100)
				}
			}
			produced.Store(int64(i + 100))
			select {
			case <-stop:
				for p.Flush(1000) > 0 {
				}
				return
			case <-tick.C:
			}
		}
	}()
	stopLoad := func() { close(stop); <-done }
	coll := db.Collection("frames")
	sluicetest.Eventually(t, 60*time.Second, "documents written", func() (bool, string) {
		k := count(t, coll)
		return k >= 500, fmt.Sprint(k, " documents")
	})

	restarted := false
	t.Cleanup(func() {
		if !restarted {
			testenv(t, "start", "mongodb")
		}
	})
	testenv(t, "stop", "mongodb")
	down := time.Now()
	t.Logf("stopped MongoDB with %d records produced", produced.Load())
	// The outage itself lasts 30 s, as the acceptance test asks; meanwhile the tasks must
	// retry and never fail.
	retryLogged, retryShown := false, false
	for time.Since(down) < 30*time.Second {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
		for _, ts := range st.Tasks {
			if ts.State != api.StateRunning {
				t.Fatalf("during the outage task %d is %s: %s", ts.ID, ts.State, ts.Trace)
			}
			retryShown = retryShown || (strings.HasPrefix(ts.Trace, "retrying put: ") && strings.Contains(ts.Trace, "bulk write"))
		}
		logs := c.Logs.String()
		retryLogged = retryLogged || (strings.Contains(logs, "put failed; retrying the same batch") && strings.Contains(logs, "mongodb-sink: bulk write"))
		time.Sleep(time.Second)
	}
	if !retryLogged {
		t.Error("no task logged a retried put during the outage")
	}
	if !retryShown {
		t.Error("no task status said it was retrying during the outage")
	}
	testenv(t, "start", "mongodb")
	restarted = true
	t.Logf("started MongoDB again after %v", time.Since(down).Round(time.Second))
	// The load goes on until writes have resumed.
	before := count(t, coll)
	sluicetest.Eventually(t, 2*time.Minute, "writes to resume", func() (bool, string) {
		k := count(t, coll)
		return k > before, fmt.Sprintf("%d documents, %d before the restart", k, before)
	})
	stopLoad()
	if err := failed.Load(); err != nil {
		t.Fatalf("producing the load failed: %v", err)
	}
	n := int(produced.Load())
	sluicetest.Eventually(t, 3*time.Minute, "every record written", func() (bool, string) {
		k := count(t, coll)
		return k >= int64(n), fmt.Sprintf("%d of %d documents", k, n)
	})
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)
	sluicetest.Eventually(t, 30*time.Second, "the retry note gone from the status", func() (bool, string) {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
		for _, ts := range st.Tasks {
			if ts.Trace != "" {
				return false, ts.Trace
			}
		}
		return true, ""
	})
	checkSeqs(t, coll, n)
}

// A batch with bad records: the good ones are written, the bad ones are on the dead-letter
// topic with the reason in the context headers.
func TestBadDocumentsGoToTheDeadLetterTopic(t *testing.T) {
	uri, db := mongoDB(t)
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("mongo-bad")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	dlq := topic + "-dlq"
	msgs := []*kafka.Message{
		{Key: []byte("d1"), Value: []byte(`{"serial":"A","temp":1}`)},
		{Key: []byte("d2"), Value: []byte(`not json at all`)},
		{Key: []byte("d3"), Value: []byte(`{"serial":"A","temp":3}`)}, // duplicate serial: the unique index refuses it
		{Key: []byte("d4"), Value: []byte(`[1,2,3]`)},
		{Value: []byte(`{"serial":"E"}`)}, // no key, so no _id
		{Key: []byte("d6"), Value: []byte(`{"serial":"F","temp":6}`)},
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("mongo-bad")
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "mongodb-sink", "tasks.max": "1", "topics": topic,
		"connection.uri": uri, "database": db.Name(), "collection": "devices", "indexes": "serial:1!unique",
		// Text values: the connector parses them, so a value that is not JSON reaches it.
		"value.converter":                   "org.apache.kafka.connect.storage.StringConverter",
		"errors.tolerance":                  "all",
		"errors.deadletterqueue.topic.name": dlq, "errors.deadletterqueue.topic.replication.factor": "-1",
		"errors.deadletterqueue.context.headers.enable": "true",
	})
	dead := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 4, 60*time.Second)
	wantReasons := map[string]string{
		"not json at all":         `field "value": bad value "not json at all": is not a JSON object`,
		`{"serial":"A","temp":3}`: "collection devices rejected the document (code 11000): E11000 duplicate key error",
		`[1,2,3]`:                 `field "value": bad value "[1,2,3]": is JSON but not a JSON object`,
		`{"serial":"E"}`:          `field "key": bad value <nil>: is null`,
	}
	for _, m := range dead {
		reason, _ := sluicetest.Header(m, "__connect.errors.exception.message")
		want, ok := wantReasons[string(m.Value)]
		if !ok {
			t.Errorf("unexpected dead letter %q (%s)", m.Value, reason)
			continue
		}
		t.Logf("dead letter %q: %s", m.Value, reason)
		if !strings.Contains(reason, want) {
			t.Errorf("dead letter %q has reason %q, want it to contain %q", m.Value, reason, want)
		}
		delete(wantReasons, string(m.Value))
	}
	if len(wantReasons) > 0 {
		t.Errorf("not on the dead-letter topic: %v", wantReasons)
	}
	coll := db.Collection("devices")
	sluicetest.Eventually(t, 30*time.Second, "the good documents", func() (bool, string) {
		k := count(t, coll)
		return k == 2, fmt.Sprint(k, " documents")
	})
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
}
