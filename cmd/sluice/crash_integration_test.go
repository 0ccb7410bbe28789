package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// countSeqs counts each (task, partition, seq) in the JSON lines of the file sink's files
// matching pattern.
func countSeqs(t *testing.T, pattern string) (map[string]int, int) {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	out, lines := map[string]int{}, 0
	for _, path := range paths {
		lines += countFileSeqs(t, path, out)
	}
	return out, lines
}

func countFileSeqs(_ *testing.T, path string, out map[string]int) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	lines := 0
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
	return lines
}

// awaitEverySeq waits until the files matching pattern hold every sequence number of
// datagen's tasks (one partition each), and returns the counts and the number of lines.
func awaitEverySeq(t *testing.T, pattern string, tasks, perTask int, timeout time.Duration) (map[string]int, int) {
	t.Helper()
	var seqs map[string]int
	var lines int
	sluicetest.Eventually(t, timeout, "every sequence number in the files", func() (bool, string) {
		seqs, lines = countSeqs(t, pattern)
		return len(seqs) == tasks*perTask, fmt.Sprint(len(seqs), " distinct")
	})
	if k := missingSeq(seqs, tasks, perTask); k != "" {
		t.Fatalf("sequence %s missing", k)
	}
	return seqs, lines
}

// awaitLines waits until the files matching pattern hold more than n lines.
func awaitLines(t *testing.T, pattern string, n int) {
	t.Helper()
	sluicetest.Eventually(t, 90*time.Second, fmt.Sprintf("more than %d lines in the files", n), func() (bool, string) {
		_, got := countSeqs(t, pattern)
		return got > n, fmt.Sprint(got)
	})
}

// missingSeq names the first sequence number of datagen's tasks (one partition each) that is
// not in seqs, or returns "".
func missingSeq(seqs map[string]int, tasks, perTask int) string {
	for task := 0; task < tasks; task++ {
		for s := 0; s < perTask; s++ {
			if k := fmt.Sprintf("%d/0/%d", task, s); seqs[k] == 0 {
				return k
			}
		}
	}
	return ""
}

// TestKilledWorkerLosesNothing runs datagen -> Kafka -> file in a worker process, kills it
// with SIGKILL mid-run, starts it again, and checks that every sequence number arrives and
// that duplicates stay within what one offset flush interval can replay.
func TestKilledWorkerLosesNothing(t *testing.T) {
	c := sluicetest.NewCluster(t)
	const (
		tasks, perTask = 2, 15000
		rate           = 1500 // records per second per task
		flushInterval  = time.Second
	)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	topic, prefix := c.Prefix+"-data", c.Prefix
	w := c.StartProcess(map[string]string{"offset.flush.interval.ms": fmt.Sprint(flushInterval.Milliseconds())})
	sluicetest.CreateConnector(t, w.URL, prefix+"-gen", map[string]string{
		"connector.class": "datagen", "kafka.topic": topic, "tasks.max": fmt.Sprint(tasks), "max.records": fmt.Sprint(perTask),
		"rate": fmt.Sprint(rate), "topic.creation.default.partitions": "2", "topic.creation.default.replication.factor": "-1"})
	sluicetest.CreateConnector(t, w.URL, prefix+"-sink", map[string]string{
		"connector.class": "file", "topics": topic, "file": out, "tasks.max": "2"})
	awaitLines(t, out, tasks*perTask/3)
	w.Kill()
	_, atKill := countSeqs(t, out)
	t.Logf("killed the worker with %d of %d records in the file", atKill, tasks*perTask)

	sluicetest.StartProcess(t, w.Settings)
	seqs, lines := awaitEverySeq(t, out, tasks, perTask, 3*time.Minute)
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
	c := sluicetest.NewCluster(t)
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("memory measurement skipped: set SLUICE_BENCH=1 (make bench) to run it")
	}
	w := c.StartProcess(nil)
	time.Sleep(10 * time.Second) // idle, on purpose: the figure is the settled idle footprint
	fields, err := procStatus(w.Cmd.Process.Pid)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// VmRSS counts the pages of the (large, statically linked) binary that were touched, which
	// are shared and reclaimable; RssAnon is the memory the worker itself holds.
	if fields["VmRSS"] != "" {
		t.Logf("idle worker VmRSS %s, RssAnon %s, RssFile %s", fields["VmRSS"], fields["RssAnon"], fields["RssFile"])
		fmt.Printf("BENCH idle_worker_rss %s (anonymous %s, file-backed %s)\n", fields["VmRSS"], fields["RssAnon"], fields["RssFile"])
		return
	}
	t.Fatal("no VmRSS in /proc status")
}
