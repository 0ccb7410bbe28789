// Package sluicetest runs Sluice workers for integration tests: in-process workers that share
// one set of internal topics, worker processes a test can kill, and the REST and Kafka helpers
// tests use to drive and check them. Connector packages use it from their tests only.
package sluicetest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/rest"
	"github.com/sluicehq/sluice/worker"
)

// Cluster is a set of workers sharing internal topics and a group, named uniquely per test.
type Cluster struct {
	T         testing.TB
	Bootstrap string
	Prefix    string
	// Registry holds the plugins in-process workers run: every registered connector, plus
	// whatever the test registers before starting workers.
	Registry *connect.Registry
	// Logs collects every in-process worker's log lines.
	Logs *SyncBuffer
	// ProcessFlags are flags StartProcess gives `sluice worker` (--log-level DEBUG, say).
	ProcessFlags []string
}

// NewCluster names a new cluster on the test Kafka (skipping the test when there is none).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	r := connect.NewRegistry()
	for _, p := range connect.Default().Plugins() {
		r.Register(p)
	}
	return &Cluster{T: t, Bootstrap: bootstrap, Prefix: UniqueName("it"), Registry: r, Logs: &SyncBuffer{}}
}

// Settings are the worker settings of this cluster for a worker listening on listener.
func (c *Cluster) Settings(listener string, extra map[string]string) map[string]string {
	s := map[string]string{
		"bootstrap.servers":                 c.Bootstrap,
		"group.id":                          c.Prefix,
		"config.storage.topic":              c.Prefix + "-configs",
		"offset.storage.topic":              c.Prefix + "-offsets",
		"status.storage.topic":              c.Prefix + "-status",
		"config.storage.replication.factor": "-1",
		"offset.storage.replication.factor": "-1",
		"status.storage.replication.factor": "-1",
		"offset.storage.partitions":         "5",
		"status.storage.partitions":         "2",
		"offset.flush.interval.ms":          "500",
		"scheduled.rebalance.max.delay.ms":  "3000",
		"listeners":                         listener,
		"key.converter":                     "org.apache.kafka.connect.storage.StringConverter",
		"value.converter":                   "org.apache.kafka.connect.json.JsonConverter",
		"value.converter.schemas.enable":    "false",
		// The tests' files (file and file-source connectors) are under t.TempDir().
		"connector.file.allowed.paths": os.TempDir(),
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// Worker is an in-process worker with its REST API.
type Worker struct {
	W   *worker.Worker
	URL string
	srv *httptest.Server
}

// StartWorker starts an in-process worker of the cluster with extra settings; it stops when
// the test ends.
func (c *Cluster) StartWorker(extra map[string]string) *Worker {
	t := c.T
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := worker.ParseWorkerConfig(c.Settings("http://"+lis.Addr().String(), extra))
	if err != nil {
		t.Fatal(err)
	}
	levels := worker.NewLogLevels(slog.NewTextHandler(io.MultiWriter(c.Logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo)
	w, err := worker.NewWorker(cfg, worker.Options{Registry: c.Registry, Levels: levels, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rest.New(w, rest.Options{Logger: levels.Logger("sluice.rest"),
		Metrics: promhttp.HandlerFor(w.Metrics(), promhttp.HandlerOpts{})}))
	srv.Listener.Close()
	srv.Listener = lis
	srv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		srv.Close()
		t.Fatalf("start worker: %v", err)
	}
	tw := &Worker{W: w, srv: srv, URL: srv.URL}
	t.Cleanup(tw.Stop)
	return tw
}

// Stop stops the worker gracefully (leaving the group); calling it again does nothing.
func (tw *Worker) Stop() {
	if tw.srv == nil {
		return
	}
	tw.srv.Close()
	tw.W.Stop()
	tw.srv = nil
}

// SyncBuffer collects output written from several goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogWriter sends worker logs to the test log, shown when a test fails.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// UniqueName returns a name unique to this run, for topics, groups and connectors
// (connecttest.UniqueName).
func UniqueName(prefix string) string { return connecttest.UniqueName(prefix) }

// Counter sums a counter of the worker's metrics over the series of one connector.
func (tw *Worker) Counter(t testing.TB, name, connector string) float64 {
	t.Helper()
	mfs, err := tw.W.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" && l.GetValue() == connector {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
