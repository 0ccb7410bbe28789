package icebergsink_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// pendingOf counts the connector's publications waiting in the table.
func pendingOf(tbl *table.Table, connector string) int {
	n := 0
	if tbl == nil {
		return 0
	}
	for k := range tbl.Properties() {
		if strings.HasPrefix(k, "sluice.pending."+connector+".") {
			n++
		}
	}
	return n
}

// TestTask0AwayStopsThePublicationsAtTheBound runs two tasks on two worker processes and kills
// the process of task 0, the coordinator, with a rebalance delay long enough that task 0 stays
// away. Task 1 writes on: it publishes up to commit.max.pending.publications batches and no
// more, says in its status that it waits for task 0, and with its buffer full pauses (Put
// retried). A new worker takes task 0 on; it commits, task 1 moves again with its note cleared,
// and every record is in the table exactly once (read by iceberg-go, and by pyiceberg when the
// test environment has it).
func TestTask0AwayStopsThePublicationsAtTheBound(t *testing.T) {
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"scheduled.rebalance.max.delay.ms": "600000"}
	procs := []*sluicetest.Process{c.StartProcess(settings), c.StartProcess(settings)}
	topic := sluicetest.UniqueName("ice-away")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ice-away")
	const bound = 3
	sluicetest.CreateConnector(t, procs[0].URL, name, sinkConfig(l, topic, "tasks.max", "2",
		"commit.max.pending.publications", fmt.Sprint(bound), "commit.buffer.records", "1000"))
	status := func(base string) api.ConnectorStatus {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", base+"/connectors/"+name+"/status", nil, &st)
		return st
	}
	var coordProc, otherProc *sluicetest.Process
	sluicetest.Eventually(t, 90*time.Second, "the two tasks running on the two workers", func() (bool, string) {
		st := status(procs[0].URL)
		if len(st.Tasks) != 2 || st.Tasks[0].State != api.StateRunning || st.Tasks[1].State != api.StateRunning {
			return false, fmt.Sprintf("%+v", st)
		}
		for _, p := range procs {
			switch p.URL {
			case "http://" + st.Tasks[0].WorkerID:
				coordProc = p
			case "http://" + st.Tasks[1].WorkerID:
				otherProc = p
			}
		}
		return coordProc != nil && otherProc != nil && coordProc != otherProc, fmt.Sprintf("%+v", st)
	})
	tbl := tableOf(topic)
	total := 200
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, total, nil)...)
	sluicetest.Eventually(t, 60*time.Second, "the first records committed", func() (bool, string) {
		n := committed(l.load(t, tbl))
		return n == int64(total), fmt.Sprint(n)
	})

	coordProc.Kill()
	want := fmt.Sprintf("waiting for task 0 to commit %d published batches to table sluice.%s", bound, tbl)
	trace := func() string {
		if st := status(otherProc.URL); len(st.Tasks) == 2 {
			return st.Tasks[1].Trace
		}
		return "(no status of task 1)"
	}
	// Records keep coming; task 1 publishes them on its interval until the bound.
	sluicetest.Eventually(t, 2*time.Minute, "task 1 holding its buffer back", func() (bool, string) {
		sluicetest.Produce(t, c.Bootstrap, topic, frames(total, 20, nil)...)
		total += 20
		n := pendingOf(l.load(t, tbl), name)
		if n > bound {
			t.Fatalf("%d publications, more than commit.max.pending.publications=%d", n, bound)
		}
		tr := trace()
		return strings.Contains(tr, want), fmt.Sprintf("%d publications, trace %q", n, tr)
	})
	// More than a buffer's worth: task 1 buffers up to commit.buffer.records, then pauses.
	sluicetest.Produce(t, c.Bootstrap, topic, frames(total, 3000, nil)...)
	total += 3000
	sluicetest.Eventually(t, 2*time.Minute, "task 1 pausing with a full buffer", func() (bool, string) {
		n := pendingOf(l.load(t, tbl), name)
		if n > bound {
			t.Fatalf("%d publications, more than commit.max.pending.publications=%d", n, bound)
		}
		tr := trace()
		return strings.HasPrefix(tr, "retrying put: ") && strings.Contains(tr, want), fmt.Sprintf("%d publications, trace %q", n, tr)
	})
	if n := pendingOf(l.load(t, tbl), name); n != bound {
		t.Errorf("%d publications while task 0 is away, want them to stop at %d", n, bound)
	}
	before := committed(l.load(t, tbl))
	t.Logf("task 0 away: %d rows committed, %d publications waiting; task 1's status: %q", before, bound, trace())

	// Task 0 comes back on a new worker.
	c.StartProcess(settings)
	tb := l.awaitEachOnce(t, tbl, total)
	sluicetest.Eventually(t, time.Minute, "task 1's note cleared", func() (bool, string) {
		tr := trace()
		return tr == "", tr
	})
	t.Logf("task 0 back: %d rows committed, %d publications left", committed(tb), pendingOf(tb, name))
	if python := os.Getenv(envPyIceberg); python != "" {
		if got := pyIcebergRead(t, python, l, tbl); got.Count != total {
			t.Errorf("pyiceberg reads %d rows, want %d", got.Count, total)
		}
	}
}
