package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
)

// buildSluice builds the sluice binary once per test binary.
var builtBinary string

func sluiceBinary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	builtBinary = bin
	return bin
}

// workerProcess is a sluice worker running as its own process, so it can be killed.
type workerProcess struct {
	cmd    *exec.Cmd
	url    string
	log    *syncBuffer
	exited chan struct{}
}

// syncBuffer collects a process's output while the test reads it.
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startWorkerProcess(t *testing.T, settings map[string]string) *workerProcess {
	t.Helper()
	args := []string{"worker"}
	for k, v := range settings {
		args = append(args, "--set", k+"="+v)
	}
	cmd := exec.Command(sluiceBinary(t), args...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wp := &workerProcess{cmd: cmd, url: settings["listeners"], log: log}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-wp.exited
		if t.Failed() {
			t.Logf("worker log:\n%s", log.String())
		}
	})
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	wp.exited = exited
	waitFor(t, 90*time.Second, "the worker to answer /health", func() bool {
		select {
		case <-exited:
			t.Fatalf("the worker exited: %s", log.String())
		default:
		}
		resp, err := http.Get(wp.url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return wp
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func postJSON(t *testing.T, url string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// countSeqs counts each (task, partition, seq) in the file sink's JSON lines.
func countSeqs(t *testing.T, path string) (map[string]int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return map[string]int{}, 0
	}
	defer f.Close()
	out, lines := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Value struct{ Task, Partition, Seq int64 } `json:"value"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue // a line torn by the kill
		}
		lines++
		out[fmt.Sprintf("%d/%d/%d", line.Value.Task, line.Value.Partition, line.Value.Seq)]++
	}
	return out, lines
}

// TestKilledWorkerLosesNothing runs datagen -> Kafka -> file in a worker process, kills it
// with SIGKILL mid-run, starts it again, and checks that every sequence number arrives and
// that duplicates stay within what one offset flush interval can replay.
func TestKilledWorkerLosesNothing(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	prefix := fmt.Sprintf("crash-%d", time.Now().UnixNano())
	port := freePort(t)
	const (
		tasks, perTask = 2, 15000
		rate           = 1500 // records per second per task
		flushInterval  = time.Second
	)
	settings := map[string]string{
		"bootstrap.servers": bootstrap, "group.id": prefix,
		"config.storage.topic": prefix + "-configs", "offset.storage.topic": prefix + "-offsets", "status.storage.topic": prefix + "-status",
		"config.storage.replication.factor": "-1", "offset.storage.replication.factor": "-1", "status.storage.replication.factor": "-1",
		"offset.flush.interval.ms": fmt.Sprint(flushInterval.Milliseconds()),
		"listeners":                fmt.Sprintf("http://127.0.0.1:%d", port),
		"value.converter":          "json", "value.converter.schemas.enable": "false", "key.converter": "string",
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	topic := prefix + "-data"
	w := startWorkerProcess(t, settings)
	if code := postJSON(t, w.url+"/connectors", map[string]any{"name": prefix + "-gen", "config": map[string]string{
		"connector.class": "datagen", "kafka.topic": topic, "tasks.max": fmt.Sprint(tasks), "max.records": fmt.Sprint(perTask),
		"rate": fmt.Sprint(rate), "topic.creation.default.partitions": "2", "topic.creation.default.replication.factor": "-1"}}); code != 201 {
		t.Fatalf("create datagen: %d", code)
	}
	if code := postJSON(t, w.url+"/connectors", map[string]any{"name": prefix + "-sink", "config": map[string]string{
		"connector.class": "file", "topics": topic, "file": out, "tasks.max": "2"}}); code != 201 {
		t.Fatalf("create file sink: %d", code)
	}
	waitFor(t, 90*time.Second, "a third of the records in the file", func() bool {
		_, n := countSeqs(t, out)
		return n > tasks*perTask/3
	})
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.exited
	_, atKill := countSeqs(t, out)
	t.Logf("killed the worker with %d of %d records in the file", atKill, tasks*perTask)

	startWorkerProcess(t, settings)
	var seqs map[string]int
	var lines int
	waitFor(t, 3*time.Minute, "every sequence number in the file", func() bool {
		seqs, lines = countSeqs(t, out)
		return len(seqs) == tasks*perTask
	})
	for task := 0; task < tasks; task++ {
		for s := 0; s < perTask; s++ {
			if k := fmt.Sprintf("%d/0/%d", task, s); seqs[k] == 0 {
				t.Fatalf("sequence %s missing", k)
			}
		}
	}
	dups := lines - len(seqs)
	// What one flush interval can replay: the source regenerates at most the records it made
	// since its last stored offsets, and the sink rewrites at most what it wrote since its last
	// commit; each is bounded by the rate over an interval plus one batch in flight.
	bound := 2 * tasks * (rate*int(flushInterval/time.Second+1) + 500)
	t.Logf("duplicates after the kill: %d (bound %d)", dups, bound)
	if dups > bound {
		t.Errorf("%d duplicates, more than one flush interval's worth (%d)", dups, bound)
	}
}

// TestIdleMemory reports the resident memory of an idle worker process (make bench).
func TestIdleMemory(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("memory measurement skipped: set SLUICE_BENCH=1 (make bench) to run it")
	}
	prefix := fmt.Sprintf("idle-%d", time.Now().UnixNano())
	w := startWorkerProcess(t, map[string]string{
		"bootstrap.servers": bootstrap, "group.id": prefix,
		"config.storage.topic": prefix + "-configs", "offset.storage.topic": prefix + "-offsets", "status.storage.topic": prefix + "-status",
		"config.storage.replication.factor": "-1", "offset.storage.replication.factor": "-1", "status.storage.replication.factor": "-1",
		"listeners": fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
	})
	time.Sleep(10 * time.Second) // idle, on purpose: the figure is the settled idle footprint
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			t.Logf("idle worker %s", line)
			fmt.Printf("BENCH idle_worker_rss %s\n", strings.Join(strings.Fields(line)[1:], " "))
			return
		}
	}
	t.Fatal("no VmRSS in /proc status")
}
