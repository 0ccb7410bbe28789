package sluicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/worker/api"
)

// Call sends a request to a REST API and decodes a JSON answer into out (when not nil); it
// returns the status code.
func Call(t testing.TB, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: answer %s is not the JSON expected: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

// CreateConnector creates a connector through POST /connectors and fails the test unless the
// answer is 201.
func CreateConnector(t testing.TB, base, name string, config map[string]string) {
	t.Helper()
	var out map[string]any
	if code := Call(t, "POST", base+"/connectors", map[string]any{"name": name, "config": config}, &out); code != http.StatusCreated {
		t.Fatalf("create connector %s: %d %v", name, code, out)
	}
}

// Eventually polls cond until it holds or the timeout passes; cond's second result describes
// the state seen, for the failure message.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, last)
}

// WaitState waits until the connector and exactly n tasks are in the wanted state.
func WaitState(t testing.TB, base, name string, want api.State, tasks int) api.ConnectorStatus {
	t.Helper()
	var st api.ConnectorStatus
	Eventually(t, 60*time.Second, fmt.Sprintf("%s %s with %d tasks", name, want, tasks), func() (bool, string) {
		st = api.ConnectorStatus{}
		code := Call(t, "GET", base+"/connectors/"+url.PathEscape(name)+"/status", nil, &st)
		if code != 200 || st.Connector.State != want || len(st.Tasks) != tasks {
			return false, fmt.Sprintf("%d %+v", code, st)
		}
		for _, ts := range st.Tasks {
			if ts.State != want {
				return false, fmt.Sprintf("%+v", st)
			}
		}
		return true, ""
	})
	return st
}

// ConsumeAll reads a topic from the beginning until it has seen n records or the timeout
// passes.
func ConsumeAll(t testing.TB, bootstrap, topic string, n int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": UniqueName("reader"),
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	var out []*kafka.Message
	deadline := time.Now().Add(timeout)
	for len(out) < n && time.Now().Before(deadline) {
		m, err := c.ReadMessage(200 * time.Millisecond)
		if err == nil {
			out = append(out, m)
		}
	}
	return out
}

// Produce writes messages to a topic (any partition unless set) and waits until all are
// acknowledged.
func Produce(t testing.TB, bootstrap, topic string, msgs ...*kafka.Message) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "acks": "all"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	delivered := make(chan kafka.Event, len(msgs))
	for _, m := range msgs {
		if m.TopicPartition.Topic == nil {
			m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
		}
		if err := p.Produce(m, delivered); err != nil {
			t.Fatal(err)
		}
	}
	for range msgs {
		select {
		case e := <-delivered:
			if m := e.(*kafka.Message); m.TopicPartition.Error != nil {
				t.Fatalf("produce to %s: %v", topic, m.TopicPartition.Error)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("records to %s not delivered within 30 s", topic)
		}
	}
}

// Header returns the value of a record header.
func Header(m *kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// CreateTopic creates a topic with the given partitions (the broker's replication factor) on
// the test Kafka; one that exists already is fine.
func CreateTopic(t testing.TB, bootstrap, topic string, partitions int) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1}})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError && r.Error.Code() != kafka.ErrTopicAlreadyExists {
			t.Fatalf("create topic %s: %v", topic, r.Error)
		}
	}
}

// SteadyRate waits until count reaches want and returns the count per second from the first
// progress seen to the end, leaving out start-up (group joins, connections, topic creation),
// which the benchmarks measure for neither Sluice nor the raw client.
func SteadyRate(t testing.TB, timeout time.Duration, what string, want int64, count func() int64) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var t0 time.Time
	var c0 int64
	for time.Now().Before(deadline) {
		c := count()
		if c > 0 && t0.IsZero() {
			t0, c0 = time.Now(), c
		}
		if c >= want {
			return float64(c-c0) / time.Since(t0).Seconds()
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %d of %d", what, count(), want)
	return 0
}

// ScrapeJob makes the test Prometheus scrape the targets the given service-discovery URLs
// list, until the test ends: a job file in the test environment's Prometheus jobs directory
// (envDir/prometheus/jobs) and `script prometheus-reload` (scripts/testenv).
func ScrapeJob(t testing.TB, envDir, script, job string, sdURLs ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "  - job_name: %s\n    http_sd_configs:\n", job)
	for _, u := range sdURLs {
		fmt.Fprintf(&b, "      - url: %s\n        refresh_interval: 1s\n", u)
	}
	path := filepath.Join(envDir, "prometheus", "jobs", job+".yml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	reload := func() error {
		if out, err := exec.Command(script, "prometheus-reload").CombinedOutput(); err != nil {
			return fmt.Errorf("%s prometheus-reload: %v: %s", script, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		os.Remove(path)
		if err := reload(); err != nil {
			t.Error(err)
		}
	})
	if err := reload(); err != nil {
		t.Fatal(err)
	}
}

// MongoDatabase returns a database of its own on the test MongoDB at uri, named after prefix,
// dropped when the test ends.
func MongoDatabase(t testing.TB, uri, prefix string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	db := client.Database(strings.ReplaceAll(UniqueName(prefix), "-", "_"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	return db
}

// SettingsFromEnv reads the environment variable name as "k=v,k=v" into settings, which the
// benchmarks use to try worker settings without a change to the code.
func SettingsFromEnv(name string, settings map[string]string) map[string]string {
	if settings == nil {
		settings = map[string]string{}
	}
	for _, kv := range strings.Split(os.Getenv(name), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			settings[k] = v
		}
	}
	return settings
}
