package influxdbsink_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// Worker-level tests: the connector in real workers, reading real Kafka, writing the test
// InfluxDB.

// database creates an InfluxDB database for the test.
func database(t *testing.T) (base, db string) {
	t.Helper()
	base = connecttest.Env(t, connecttest.EnvInfluxDB)
	db = strings.ReplaceAll(sluicetest.UniqueName("influx"), "-", "_")
	if _, err := sluicetest.InfluxQL(base, "", "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sluicetest.InfluxQL(base, "", "DROP DATABASE "+db) })
	return base, db
}

// points counts the points of measurement m; -1 when the server does not answer.
func points(base, db, m string) int64 {
	rows, err := sluicetest.InfluxQL(base, db, `SELECT count(temp) FROM "`+m+`"`)
	if err != nil {
		return -1
	}
	if len(rows) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(rows[0][strings.LastIndex(rows[0], "|")+1:], 10, 64)
	return n
}

// readings are JSON readings numbered from first, each with a time of its own.
func readings(first, n int) []*kafka.Message {
	out := make([]*kafka.Message, n)
	for i := range out {
		seq := first + i
		dev := fmt.Sprintf("dev-%d", seq%7)
		v, _ := json.Marshal(map[string]any{"seq": seq, "device_id": dev,
			"ts":   time.UnixMicro(1714564800000000 + int64(seq)).UTC().Format(time.RFC3339Nano),
			"temp": 20 + float64(seq%100)/10})
		out[i] = &kafka.Message{Key: []byte(dev), Value: v}
	}
	return out
}

func sinkConfig(base, db, topic string, extra ...string) map[string]string {
	cfg := map[string]string{
		"connector.class": "influxdb-sink", "tasks.max": "1", "topics": topic,
		"influxdb.url": base, "influxdb.bucket": db, "tags": "device_id", "time.field": "ts",
		"measurement.name": "readings",
	}
	for i := 0; i < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	return cfg
}

// TestKilledWorkerLosesNothing kills a worker process mid-stream, before it ever committed
// offsets, and starts it again: the records since the last commit come again and overwrite
// their points, so the measurement holds each record once.
func TestKilledWorkerLosesNothing(t *testing.T) {
	base, db := database(t)
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"offset.flush.interval.ms": "600000"} // no Kafka commits during the test
	p := c.StartProcess(settings)
	topic := sluicetest.UniqueName("influx-kill")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 3)
	name := sluicetest.UniqueName("influx-kill")
	sluicetest.CreateConnector(t, p.URL, name, sinkConfig(base, db, topic, "consumer.max.batch.records", "200", "batch.size", "500"))
	sluicetest.WaitState(t, p.URL, name, api.StateRunning, 1)

	const first, second = 3000, 60000
	sluicetest.Produce(t, c.Bootstrap, topic, readings(0, first)...)
	sluicetest.Eventually(t, 60*time.Second, "the first points", func() (bool, string) {
		n := points(base, db, "readings")
		return n == first, fmt.Sprint(n)
	})
	sluicetest.Produce(t, c.Bootstrap, topic, readings(first, second)...)
	sluicetest.Eventually(t, 60*time.Second, "the second records to start arriving", func() (bool, string) {
		n := points(base, db, "readings")
		return n > first, fmt.Sprint(n)
	})
	p.Kill()
	t.Logf("killed the worker with %d of %d points written", points(base, db, "readings"), first+second)

	p = c.StartProcess(settings)
	sluicetest.Eventually(t, 120*time.Second, "every record as a point", func() (bool, string) {
		n := points(base, db, "readings")
		return n == first+second, fmt.Sprintf("%d of %d", n, first+second)
	})
	rows, err := sluicetest.InfluxQL(base, db, "SELECT count(temp), sum(seq) FROM readings")
	if want := fmt.Sprintf("0|%d|%d", first+second, (first+second-1)*(first+second)/2); err != nil || len(rows) != 1 || rows[0] != want {
		t.Errorf("count and sum of seq: %v (%v), want %s: each record once", rows, err, want)
	}
	sluicetest.WaitState(t, p.URL, name, api.StateRunning, 1)
}

// TestServerStoppedUnderLoad stops InfluxDB for 30 s while records keep arriving: the task's
// status says it is retrying, and after the restart every record is a point, once.
func TestServerStoppedUnderLoad(t *testing.T) {
	base, db := database(t)
	script := connecttest.Env(t, connecttest.EnvTestenvScript)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("influx-down")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("influx-down")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(base, db, topic, "influxdb.timeout", "2s"))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)

	producer, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "acks": "all", "go.delivery.reports": false})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produced := 0
	load := func(d time.Duration) { // 100 records every 100 ms
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			for _, m := range readings(produced, 100) {
				m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
				if err := producer.Produce(m, nil); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			produced += 100
		}
	}
	load(3 * time.Second)
	testenv := func(cmd string) {
		t.Helper()
		if out, err := exec.Command(script, cmd, "influxdb").CombinedOutput(); err != nil {
			t.Fatalf("%s %s influxdb: %v\n%s", script, cmd, err, out)
		}
	}
	testenv("stop")
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = exec.Command(script, "start", "influxdb").Run()
		}
	})
	load(15 * time.Second)
	var st api.ConnectorStatus
	sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
	if len(st.Tasks) != 1 || st.Tasks[0].State != api.StateRunning || !strings.Contains(st.Tasks[0].Trace, "retrying put") {
		t.Errorf("status with InfluxDB stopped: %+v, want the task RUNNING and saying it is retrying", st)
	}
	load(15 * time.Second)
	testenv("start")
	stopped = false
	if n := producer.Flush(30_000); n != 0 {
		t.Fatalf("%d records not produced", n)
	}
	t.Logf("%d records produced, during 30 s of them with InfluxDB stopped", produced)
	sluicetest.Eventually(t, 120*time.Second, "every record as a point after the restart", func() (bool, string) {
		n := points(base, db, "readings")
		return n == int64(produced), fmt.Sprintf("%d of %d", n, produced)
	})
	st = sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	if st.Tasks[0].Trace != "" {
		t.Errorf("the status still says %q after the restart", st.Tasks[0].Trace)
	}
}

// TestBadRecordsLandOnTheDeadLetterTopic: records that cannot be points and points InfluxDB
// refuses are on the dead-letter topic with their original bytes and the reason; the good
// ones are written.
func TestBadRecordsLandOnTheDeadLetterTopic(t *testing.T) {
	base, db := database(t)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic, dlq := sluicetest.UniqueName("influx-bad"), sluicetest.UniqueName("influx-dlq")
	name := sluicetest.UniqueName("influx-bad")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(base, db, topic, "tags", "device_id",
		"errors.tolerance", "all", "errors.deadletterqueue.topic.name", dlq, "errors.deadletterqueue.topic.replication.factor", "-1",
		"errors.deadletterqueue.context.headers.enable", "true"))
	msg := func(dev string, ts, temp any) *kafka.Message {
		v, _ := json.Marshal(map[string]any{"ts": ts, "device_id": dev, "temp": temp})
		return &kafka.Message{Key: []byte(fmt.Sprint(dev)), Value: v}
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msg("good-1", "2024-05-01T12:00:00Z", 20.5))
	sluicetest.Eventually(t, 60*time.Second, "the first point", func() (bool, string) {
		n := points(base, db, "readings")
		return n == 1, fmt.Sprint(n)
	})
	sluicetest.Produce(t, c.Bootstrap, topic, msg("bad-time", "yesterday", 20.5), msg("good-2", "2024-05-01T12:00:01Z", 21.5),
		msg("bad-type", "2024-05-01T12:00:02Z", "warm"), msg("good-3", "2024-05-01T12:00:03Z", 23.5),
		&kafka.Message{Key: []byte("bad-json"), Value: []byte(`{"ts": "2024-05-01T12:00:04Z", "device_id": 7, "temp": 1}`)})
	sluicetest.Eventually(t, 60*time.Second, "the good points", func() (bool, string) {
		n := points(base, db, "readings")
		return n == 3, fmt.Sprint(n)
	})
	got := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 3, 60*time.Second)
	if len(got) != 3 {
		t.Fatalf("%d records on the dead-letter topic, want 3", len(got))
	}
	want := map[string]string{
		"bad-time": `field "ts": bad value "yesterday": not an RFC 3339 time`,
		"bad-type": `field type conflict`,
		"bad-json": `field "device_id": bad value 7: a tag value must be a string`,
	}
	for _, m := range got {
		reason, _ := sluicetest.Header(m, "__connect.errors.exception.message")
		if w := want[string(m.Key)]; w == "" || !strings.Contains(reason, w) || !json.Valid(m.Value) {
			t.Errorf("dead letter %s (%s) with reason %q, want one containing %q", m.Key, m.Value, reason, w)
		}
	}
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)

	// The REST API's validation tests the connection.
	var infos api.ConfigInfos
	cfg := sinkConfig("http://127.0.0.1:1", db, topic)
	if code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/influxdb-sink/config/validate", cfg, &infos); code != 200 || infos.ErrorCount != 1 {
		t.Errorf("validate with nothing listening: %d, %d errors", code, infos.ErrorCount)
	}
	cfg["influxdb.url"] = base
	if sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/influxdb-sink/config/validate", cfg, &infos); infos.ErrorCount != 0 {
		t.Errorf("validate against the test server: %+v", infos)
	}
}
