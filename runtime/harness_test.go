package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	_ "github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/rest"
	"github.com/sluicehq/sluice/runtime"
)

// cluster is a set of in-process workers sharing internal topics, with their REST APIs.
type cluster struct {
	t         *testing.T
	bootstrap string
	prefix    string
	registry  *connect.Registry
	logs      *syncBuffer
}

type testWorker struct {
	w   *runtime.Worker
	srv *httptest.Server
	url string
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var nameSeq struct {
	sync.Mutex
	n int
}

func uniqueName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, nameSeq.n)
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	r := connect.NewRegistry()
	for _, p := range connect.Default().Plugins() {
		r.Register(p)
	}
	registerTestPlugins(r)
	return &cluster{t: t, bootstrap: bootstrap, prefix: uniqueName("it"), registry: r, logs: &syncBuffer{}}
}

// startWorker starts a worker of the cluster with extra settings.
func (c *cluster) startWorker(extra map[string]string) *testWorker {
	t := c.t
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"bootstrap.servers":                 c.bootstrap,
		"group.id":                          c.prefix,
		"config.storage.topic":              c.prefix + "-configs",
		"offset.storage.topic":              c.prefix + "-offsets",
		"status.storage.topic":              c.prefix + "-status",
		"config.storage.replication.factor": "-1",
		"offset.storage.replication.factor": "-1",
		"status.storage.replication.factor": "-1",
		"offset.storage.partitions":         "5",
		"status.storage.partitions":         "2",
		"offset.flush.interval.ms":          "500",
		"listeners":                         "http://" + lis.Addr().String(),
		"key.converter":                     "org.apache.kafka.connect.storage.StringConverter",
		"value.converter":                   "org.apache.kafka.connect.json.JsonConverter",
		"value.converter.schemas.enable":    "false",
	}
	for k, v := range extra {
		settings[k] = v
	}
	cfg, err := runtime.ParseWorkerConfig(settings)
	if err != nil {
		t.Fatal(err)
	}
	levels := runtime.NewLogLevels(slog.NewTextHandler(io.MultiWriter(c.logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo)
	w, err := runtime.NewWorker(cfg, runtime.Options{Registry: c.registry, Levels: levels, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rest.New(w, rest.Options{Logger: levels.Logger("sluice.rest"), Metrics: promhttp.HandlerFor(w.Metrics(), promhttp.HandlerOpts{})}))
	srv.Listener.Close()
	srv.Listener = lis
	srv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		srv.Close()
		t.Fatalf("start worker: %v", err)
	}
	tw := &testWorker{w: w, srv: srv, url: srv.URL}
	t.Cleanup(func() { tw.stop() })
	return tw
}

func (tw *testWorker) stop() {
	if tw.srv == nil {
		return
	}
	tw.srv.Close()
	tw.w.Stop()
	tw.srv = nil
}

// testLogWriter sends worker logs to the test log, shown when a test fails.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// call sends a request to the REST API and decodes a JSON answer into out (when not nil).
func call(t *testing.T, method, url string, body any, out any) int {
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

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
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

// waitRunning waits until the connector and n tasks are RUNNING.
func waitState(t *testing.T, base, name string, want runtime.State, tasks int) runtime.ConnectorStatus {
	t.Helper()
	var st runtime.ConnectorStatus
	eventually(t, 60*time.Second, fmt.Sprintf("%s %s with %d tasks", name, want, tasks), func() (bool, string) {
		st = runtime.ConnectorStatus{}
		code := call(t, "GET", base+"/connectors/"+name+"/status", nil, &st)
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

// consumeAll reads every record of a topic from the beginning until it has seen n or the
// timeout passes.
func consumeAll(t *testing.T, bootstrap, topic string, n int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": uniqueName("reader"),
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

func produce(t *testing.T, bootstrap, topic string, msgs ...*kafka.Message) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "acks": "all"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	delivered := make(chan kafka.Event, len(msgs))
	for _, m := range msgs {
		m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
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
