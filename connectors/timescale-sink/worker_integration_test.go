package timescalesink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// Worker-level tests: the connector in real workers, reading real Kafka, writing the test
// PostgreSQL.

// database connects to the test PostgreSQL and makes a schema for the test.
func database(t *testing.T) (url string, db *pgxpool.Pool, schema string) {
	t.Helper()
	url = connecttest.Env(t, connecttest.EnvPostgres)
	db, schema = sluicetest.PostgresSchema(t, url, "tsw")
	return url, db, schema
}

// count runs a query that returns one number; -1 when it fails (a table not created yet, the
// database stopped).
func count(db *pgxpool.Pool, sql string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int64
	if err := db.QueryRow(ctx, sql).Scan(&n); err != nil {
		return -1
	}
	return n
}

// readings are JSON readings numbered from first, keyed by device, spread over the topic's
// partitions by key.
func readings(first, n int) []*kafka.Message {
	out := make([]*kafka.Message, n)
	for i := range out {
		seq := first + i
		dev := fmt.Sprintf("dev-%d", seq%7)
		v, _ := json.Marshal(map[string]any{"seq": seq, "device_id": dev, "ts": time.UnixMilli(1714564800000 + int64(seq)).UTC().Format(time.RFC3339Nano),
			"reading": map[string]any{"temp": 20 + float64(seq%100)/10, "hum": seq % 100}})
		out[i] = &kafka.Message{Key: []byte(dev), Value: v}
	}
	return out
}

func sinkConfig(url, topic, table string, extra ...string) map[string]string {
	cfg := map[string]string{
		"connector.class": "timescale-sink", "tasks.max": "1", "topics": topic,
		"connection.url": url, "table": table, "auto.create": "true", "time.field": "ts",
		"consumer.max.batch.records": "200",
	}
	for i := 0; i < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	return cfg
}

// TestExactlyOnceAppendSurvivesAKilledWorker kills a worker process mid-stream, before it ever
// committed offsets to Kafka, and restarts it: with exactly.once the hypertable holds each
// record once; a connector beside it without exactly.once, on the same topic, shows that the restart
// did deliver records again.
func TestExactlyOnceAppendSurvivesAKilledWorker(t *testing.T) {
	url, db, schema := database(t)
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"offset.flush.interval.ms": "600000"} // no Kafka commits during the test
	p := c.StartProcess(settings)
	topic := sluicetest.UniqueName("ts-eos")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 3)
	eos, plain := sluicetest.UniqueName("ts-eos"), sluicetest.UniqueName("ts-plain")
	sluicetest.CreateConnector(t, p.URL, eos, sinkConfig(url, topic, schema+".eos", "exactly.once", "true", "offsets.table", schema+".offsets"))
	sluicetest.CreateConnector(t, p.URL, plain, sinkConfig(url, topic, schema+".plain"))
	sluicetest.WaitState(t, p.URL, eos, api.StateRunning, 1)

	const first, second = 3000, 100000 // the second batch long enough for the kill to land while both tables are still filling
	sluicetest.Produce(t, c.Bootstrap, topic, readings(0, first)...)
	sluicetest.Eventually(t, 60*time.Second, "the first records in both tables", func() (bool, string) {
		e, pl := count(db, "SELECT count(*) FROM "+schema+".eos"), count(db, "SELECT count(*) FROM "+schema+".plain")
		return e == first && pl == first, fmt.Sprintf("eos %d, plain %d", e, pl)
	})
	sluicetest.Produce(t, c.Bootstrap, topic, readings(first, second)...)
	sluicetest.Eventually(t, 60*time.Second, "the second records to start arriving", func() (bool, string) {
		n := count(db, "SELECT count(*) FROM "+schema+".eos")
		return n > first, fmt.Sprint(n)
	})
	p.Kill()
	atKill := count(db, "SELECT count(*) FROM "+schema+".eos")
	t.Logf("killed the worker with %d of %d rows written", atKill, first+second)

	p = c.StartProcess(settings)
	const total = first + second
	sluicetest.Eventually(t, 120*time.Second, "the stored offsets to cover every record", func() (bool, string) {
		n := count(db, "SELECT coalesce(sum(next_offset), 0) FROM "+schema+".offsets")
		return n == total, fmt.Sprintf("offsets sum %d", n)
	})
	if n, d := count(db, "SELECT count(*) FROM "+schema+".eos"), count(db, "SELECT count(DISTINCT seq) FROM "+schema+".eos"); n != total || d != total {
		t.Errorf("exactly once: %d rows, %d distinct, want %d of each", n, d, total)
	}
	sluicetest.Eventually(t, 120*time.Second, "every record in the plain table", func() (bool, string) {
		d := count(db, "SELECT count(DISTINCT seq) FROM "+schema+".plain")
		return d == total, fmt.Sprint(d)
	})
	if n := count(db, "SELECT count(*) FROM "+schema+".plain"); n <= total {
		t.Errorf("the plain connector has %d rows for %d records: the restart delivered nothing again, so the test proves nothing", n, total)
	}
	sluicetest.WaitState(t, p.URL, eos, api.StateRunning, 1)
	if n := count(db, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = '"+schema+"'"); n != 2 {
		t.Errorf("%d of the two tables are hypertables", n)
	}
}

// TestDatabaseStoppedUnderLoad stops PostgreSQL for 30 s while records keep arriving, starts
// it again, and checks that every record is in the table once and the task never failed.
func TestDatabaseStoppedUnderLoad(t *testing.T) {
	url, db, schema := database(t)
	script := connecttest.Env(t, connecttest.EnvTestenvScript)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("ts-down")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ts-down")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(url, topic, schema+".down", "exactly.once", "true",
		"offsets.table", schema+".offsets", "write.timeout", "5s", "connection.timeout", "2s"))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)

	// Load: 200 records every 100 ms until told to stop.
	producer, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "acks": "all"})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var produced int64 // records Kafka acknowledged; read after done
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		next := 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			delivered := make(chan kafka.Event, 200)
			for _, m := range readings(next, 200) {
				m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
				if err := producer.Produce(m, delivered); err != nil {
					t.Errorf("produce: %v", err)
					return
				}
			}
			next += 200
			for range 200 {
				if m := (<-delivered).(*kafka.Message); m.TopicPartition.Error != nil {
					t.Errorf("produce: %v", m.TopicPartition.Error)
					return
				}
				produced++
			}
		}
	}()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	defer stopLoad()
	sluicetest.Eventually(t, 60*time.Second, "rows to arrive", func() (bool, string) {
		n := count(db, "SELECT count(*) FROM "+schema+".down")
		return n > 1000, fmt.Sprint(n)
	})

	testenv := func(cmd string) {
		t.Helper()
		if out, err := exec.Command(script, cmd, "postgres").CombinedOutput(); err != nil {
			t.Fatalf("%s %s postgres: %v\n%s", script, cmd, err, out)
		}
	}
	testenv("stop")
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = exec.Command(script, "start", "postgres").Run()
		}
	})
	// The outage itself is the thing under test: 30 s with records arriving.
	outage := time.NewTimer(30 * time.Second)
	<-outage.C
	testenv("start")
	stopped = false
	stopLoad()
	total := produced
	t.Logf("%d records produced, during 30 s of them with the database stopped", total)
	sluicetest.Eventually(t, 120*time.Second, "every record written after the restart", func() (bool, string) {
		n := count(db, "SELECT count(DISTINCT seq) FROM "+schema+".down")
		return n == total, fmt.Sprintf("%d of %d", n, total)
	})
	if n := count(db, "SELECT count(*) FROM "+schema+".down"); n != total {
		t.Errorf("%d rows for %d records, want each once", n, total)
	}
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	if !strings.Contains(c.Logs.String(), "put failed; retrying the same batch") {
		t.Errorf("the worker never retried a batch: the outage was not noticed")
	}
}

// TestBadRowsLandOnTheDeadLetterTopic writes good and bad readings into a table with a check
// constraint: the good rows are written, the bad ones are on the dead-letter topic with their
// original bytes and the database's reason.
func TestBadRowsLandOnTheDeadLetterTopic(t *testing.T) {
	url, db, schema := database(t)
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+schema+".dl (time timestamptz NOT NULL, device_id text NOT NULL, temp double precision, hum double precision CHECK (hum BETWEEN 0 AND 100))"); err != nil {
		t.Fatal(err)
	}
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic, dlq := sluicetest.UniqueName("ts-bad"), sluicetest.UniqueName("ts-dlq")
	name := sluicetest.UniqueName("ts-bad")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(url, topic, schema+".dl", "auto.create", "false",
		"errors.tolerance", "all", "errors.deadletterqueue.topic.name", dlq, "errors.deadletterqueue.topic.replication.factor", "-1",
		"errors.deadletterqueue.context.headers.enable", "true"))
	msg := func(dev string, temp, hum any) *kafka.Message {
		v, _ := json.Marshal(map[string]any{"ts": "2024-05-01T12:00:00Z", "device_id": dev, "temp": temp, "hum": hum})
		return &kafka.Message{Key: []byte(dev), Value: v}
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msg("good-1", 20.5, 40), msg("bad-type", "warm", 40), msg("good-2", 21.5, 41),
		msg("bad-check", 22.5, 140), msg("good-3", 23.5, 42))
	sluicetest.Eventually(t, 60*time.Second, "the good rows", func() (bool, string) {
		n := count(db, "SELECT count(*) FROM "+schema+".dl")
		return n == 3, fmt.Sprint(n)
	})
	got := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 2, 60*time.Second)
	if len(got) != 2 {
		t.Fatalf("%d records on the dead-letter topic, want 2", len(got))
	}
	want := map[string]string{
		"bad-type":  `invalid input syntax for type double precision: "warm"`,
		"bad-check": `violates check constraint "dl_hum_check"`,
	}
	for _, m := range got {
		reason, _ := sluicetest.Header(m, "__connect.errors.exception.message")
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("dead-letter value %q is not the original JSON: %v", m.Value, err)
		}
		if w := want[string(m.Key)]; w == "" || !strings.Contains(reason, w) || v["device_id"] != string(m.Key) {
			t.Errorf("dead letter %s (%s) with reason %q, want one containing %q", m.Key, m.Value, reason, w)
		}
		if stage, _ := sluicetest.Header(m, "__connect.errors.stage"); stage != "TASK_PUT" {
			t.Errorf("stage %q", stage)
		}
	}
	if rows := count(db, "SELECT count(*) FROM "+schema+".dl WHERE device_id LIKE 'good-%'"); rows != 3 {
		t.Errorf("%d good rows, want 3", rows)
	}
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)

	// The REST API's validation tests the connection.
	var infos api.ConfigInfos
	cfg := sinkConfig("postgres://sluice:x@127.0.0.1:1/db", topic, "t", "connection.timeout", "2s")
	if code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/timescale-sink/config/validate", cfg, &infos); code != 200 {
		t.Fatalf("validate: %d", code)
	}
	var urlErrors []string
	for _, ci := range infos.Configs {
		if ci.Value.Name == "connection.url" {
			urlErrors = ci.Value.Errors
		}
	}
	if infos.ErrorCount != 1 || len(urlErrors) != 1 || !strings.Contains(urlErrors[0], "Cannot connect to 127.0.0.1:1") {
		t.Errorf("validate with nothing listening: %d errors, on connection.url %q", infos.ErrorCount, urlErrors)
	}
	cfg["connection.url"] = url
	if sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/timescale-sink/config/validate", cfg, &infos); infos.ErrorCount != 0 {
		t.Errorf("validate against the test database: %+v", infos)
	}
}
