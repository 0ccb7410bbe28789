package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/cluster"
)

// The tests below run worker processes of one cluster (one group.id) on the test Kafka.

// ownerOf maps worker ids (host:port) to the processes.
func ownerOf(ws []*sluicetest.Process, id string) *sluicetest.Process {
	for _, w := range ws {
		if w.URL == "http://"+id {
			return w
		}
	}
	return nil
}

// placement waits until the connector and its n tasks are RUNNING, each on a live worker,
// and ok accepts the task count per worker; it returns the task -> worker id map.
func placement(t *testing.T, base, name string, n int, live []*sluicetest.Process, timeout time.Duration, ok func(perWorker map[string]int) bool) map[int]string {
	t.Helper()
	var where map[int]string
	sluicetest.Eventually(t, timeout, fmt.Sprintf("%s's %d tasks RUNNING on live workers", name, n), func() (bool, string) {
		var st api.ConnectorStatus
		if code := sluicetest.Call(t, "GET", base+"/connectors/"+name+"/status", nil, &st); code != 200 {
			return false, fmt.Sprint("status ", code)
		}
		if st.Connector.State != api.StateRunning || ownerOf(live, st.Connector.WorkerID) == nil || len(st.Tasks) != n {
			return false, fmt.Sprintf("%+v", st)
		}
		where = map[int]string{}
		perWorker := map[string]int{}
		for _, ts := range st.Tasks {
			if ts.State != api.StateRunning || ownerOf(live, ts.WorkerID) == nil {
				return false, fmt.Sprintf("%+v", st)
			}
			where[ts.ID] = ts.WorkerID
			perWorker[ts.WorkerID]++
		}
		return ok(perWorker), fmt.Sprintf("tasks per worker %v", perWorker)
	})
	return where
}

func spread(min, max int) func(map[string]int) bool {
	return func(per map[string]int) bool {
		for _, n := range per {
			if n < min || n > max {
				return false
			}
		}
		return true
	}
}

var taskStartLine = regexp.MustCompile(`msg="starting task".* task=(\S+)`)

// taskStarts counts how often a worker process started each task, from its log.
func taskStarts(p *sluicetest.Process) map[string]int {
	out := map[string]int{}
	for _, m := range taskStartLine.FindAllStringSubmatch(p.Log.String(), -1) {
		out[m[1]]++
	}
	return out
}

// startDatagenToFile creates datagen (tasks tasks, perTask records each at rate per second)
// into a topic with one partition per task and a file sink writing one file per task; it
// returns the connector names and the sink files' glob.
func startDatagenToFile(t *testing.T, c *sluicetest.Cluster, base string, tasks, perTask, rate int) (gen, sink, files string) {
	t.Helper()
	gen, sink = c.Prefix+"-gen", c.Prefix+"-sink"
	dir := t.TempDir()
	sluicetest.CreateConnector(t, base, gen, map[string]string{
		"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "tasks.max": fmt.Sprint(tasks),
		"max.records": fmt.Sprint(perTask), "rate": fmt.Sprint(rate),
		"topic.creation.default.partitions": fmt.Sprint(tasks), "topic.creation.default.replication.factor": "-1"})
	sluicetest.CreateConnector(t, base, sink, map[string]string{
		"connector.class": "file", "topics": c.Prefix + "-data", "file": filepath.Join(dir, "out-{task}.jsonl"),
		"tasks.max": fmt.Sprint(tasks)})
	return gen, sink, filepath.Join(dir, "out-*.jsonl")
}

// TestClusterBalancesAndMovesOnlyWhatItMust: six tasks over three workers are 2/2/2; a fourth
// worker takes some, and the tasks that stayed where they were were never restarted.
func TestClusterBalancesAndMovesOnlyWhatItMust(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil), c.StartProcess(nil)}
	name := c.Prefix + "-gen"
	sluicetest.CreateConnector(t, ws[1].URL, name, map[string]string{
		"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "tasks.max": "6", "rate": "5",
		"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"})
	before := placement(t, ws[0].URL, name, 6, ws, time.Minute, func(per map[string]int) bool {
		return len(per) == 3 && spread(2, 2)(per)
	})

	ws = append(ws, c.StartProcess(nil))
	after := placement(t, ws[0].URL, name, 6, ws, time.Minute, func(per map[string]int) bool {
		return len(per) == 4 && spread(1, 2)(per)
	})
	moved := 0
	for task, worker := range before {
		id := fmt.Sprintf("%s-%d", name, task)
		if after[task] != worker {
			moved++
			continue
		}
		if n := taskStarts(ownerOf(ws, worker))[id]; n != 1 {
			t.Errorf("task %s stayed on %s but was started %d times there", id, worker, n)
		}
	}
	if moved > 2 {
		t.Errorf("%d tasks moved to make room for the fourth worker; 2 are enough: before %v, after %v", moved, before, after)
	}
	t.Logf("before %v; after %v; moved %d", before, after, moved)
}

// TestKilledWorkersTasksMoveInTime kills a worker with SIGKILL under load, with the default
// session timeout and rebalance delay: its tasks run elsewhere within session timeout +
// scheduled delay + 5 s, and no sequence number is lost. The time is the figure in the docs.
func TestKilledWorkersTasksMoveInTime(t *testing.T) {
	c := sluicetest.NewCluster(t)
	defaults := map[string]string{"scheduled.rebalance.max.delay.ms": "15000", "session.timeout.ms": "10000"}
	ws := []*sluicetest.Process{c.StartProcess(defaults), c.StartProcess(defaults), c.StartProcess(defaults)}
	const tasks, perTask, rate = 3, 20000, 500
	gen, sink, files := startDatagenToFile(t, c, ws[0].URL, tasks, perTask, rate)
	placement(t, ws[0].URL, gen, tasks, ws, time.Minute, spread(1, 1))
	placement(t, ws[0].URL, sink, tasks, ws, time.Minute, spread(1, 1))
	awaitLines(t, files, tasks*rate*3)

	victim := ws[2]
	victim.Kill()
	killed := time.Now()
	live := ws[:2]
	placement(t, ws[0].URL, gen, tasks, live, time.Minute, spread(1, 2))
	placement(t, ws[0].URL, sink, tasks, live, time.Minute, spread(1, 2))
	took := time.Since(killed)
	t.Logf("all tasks RUNNING again %v after the SIGKILL", took.Round(100*time.Millisecond))
	fmt.Printf("BENCH failover_seconds %.1f (session.timeout.ms=10000, scheduled.rebalance.max.delay.ms=15000)\n", took.Seconds())
	if bound := 10*time.Second + 15*time.Second + 5*time.Second; took > bound {
		t.Errorf("the killed worker's tasks took %v to run elsewhere, more than %v", took, bound)
	}
	awaitEverySeq(t, files, tasks, perTask, 3*time.Minute)
}

// TestADeadLeadersWorkWaitsForIt kills the worker that leads the group, the one whose memory
// of who ran what Kafka Connect's new leader starts without (it then moves the dead leader's
// work at once, a rebalance storm on every leader restart). Sluice's new leader learns the
// last assignment from the members, holds the dead leader's tasks for
// scheduled.rebalance.max.delay.ms like anyone else's, and hands them to the restarted worker
// as soon as it joins.
func TestADeadLeadersWorkWaitsForIt(t *testing.T) {
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"scheduled.rebalance.max.delay.ms": "600000", "session.timeout.ms": "6000"}
	ws := []*sluicetest.Process{c.StartProcess(settings), c.StartProcess(settings), c.StartProcess(settings)}
	name := c.Prefix + "-gen"
	sluicetest.CreateConnector(t, ws[0].URL, name, map[string]string{
		"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "tasks.max": "3", "rate": "5",
		"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"})
	where := placement(t, ws[0].URL, name, 3, ws, time.Minute, spread(1, 1))
	leaderOf := func(procs []*sluicetest.Process) (*sluicetest.Process, int32) {
		for _, w := range procs {
			var info api.ServerInfo
			if sluicetest.Call(t, "GET", w.URL+"/", nil, &info) == 200 && info.Worker != nil && info.Worker.Leader {
				return w, info.Worker.Generation
			}
		}
		return nil, 0
	}
	leader, gen := leaderOf(ws)
	if leader == nil {
		t.Fatal("no leader among three workers")
	}
	// GET /cluster: every worker draws the same picture of the group, and it matches the
	// statuses.
	for _, w := range ws {
		var ci api.ClusterInfo
		sluicetest.Eventually(t, 30*time.Second, w.URL+"'s GET /cluster with three workers", func() (bool, string) {
			ci = api.ClusterInfo{}
			code := sluicetest.Call(t, "GET", w.URL+"/cluster", nil, &ci)
			return code == 200 && len(ci.Workers) == 3 && !ci.Rebalancing && ci.Generation >= gen, fmt.Sprintf("%d %+v", code, ci)
		})
		if "http://"+ci.Leader != leader.URL || ci.LeaderURL != leader.URL || ci.Held != nil ||
			len(ci.Unassigned.Connectors)+len(ci.Unassigned.Tasks) != 0 {
			t.Errorf("%s: GET /cluster %+v; the leader is %s", w.URL, ci, leader.URL)
		}
		for _, cw := range ci.Workers {
			if cw.Self != (cw.URL == w.URL) || cw.Leader != (cw.URL == leader.URL) || "http://"+cw.WorkerID != cw.URL ||
				cw.Version == "" || cw.StartedAt.IsZero() || cw.UptimeMs <= 0 || cw.CatchingUp != "" {
				t.Errorf("%s: worker %+v in GET /cluster", w.URL, cw)
			}
			for _, task := range cw.Tasks {
				if where[task.Task] != cw.WorkerID {
					t.Errorf("%s: GET /cluster puts task %v on %s, its status on %s", w.URL, task, cw.WorkerID, where[task.Task])
				}
			}
		}
	}
	var lost []string
	for id, worker := range where {
		if "http://"+worker == leader.URL {
			lost = append(lost, fmt.Sprintf("%s-%d", name, id))
		}
	}
	if len(lost) != 1 {
		t.Fatalf("the leader %s runs tasks %v, want one", leader.URL, lost)
	}
	var live []*sluicetest.Process
	for _, w := range ws {
		if w != leader {
			live = append(live, w)
		}
	}
	leader.Kill()
	var newGen int32
	sluicetest.Eventually(t, time.Minute, "a new leader among the live workers", func() (bool, string) {
		l, g := leaderOf(live)
		newGen = g
		return l != nil && g > gen, fmt.Sprint(l, g)
	})
	sluicetest.Eventually(t, 30*time.Second, "the live workers in the new leader's generation", func() (bool, string) {
		for _, w := range live {
			var info api.ServerInfo
			if sluicetest.Call(t, "GET", w.URL+"/", nil, &info) != 200 || info.Worker == nil || info.Worker.Generation < newGen {
				return false, fmt.Sprintf("%s: %+v", w.URL, info.Worker)
			}
		}
		return true, ""
	})
	// GET /cluster shows the dead leader's task held for it, and when it will move.
	for _, w := range live {
		var ci api.ClusterInfo
		sluicetest.Call(t, "GET", w.URL+"/cluster", nil, &ci)
		held := ci.Held
		if len(ci.Workers) != 2 || held == nil || len(held.Tasks) != 1 || held.Tasks[0].String() != lost[0] ||
			held.MovesAt.Sub(held.Since) != 10*time.Minute {
			t.Errorf("%s: GET /cluster %+v, held %+v; want two workers and %s held for 10 minutes", w.URL, ci, held, lost[0])
		}
	}
	// The round that would have moved the dead leader's task has run: watch a few seconds
	// that no live worker starts it.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		for _, w := range live {
			if n := taskStarts(w)[lost[0]]; n > 0 {
				t.Fatalf("%s started the dead leader's task %s at once; it should wait for its worker", w.URL, lost[0])
			}
		}
	}
	ws = append(live, c.StartProcess(settings))
	placement(t, ws[0].URL, name, 3, ws, time.Minute, spread(1, 1))
	for _, w := range live {
		for task, n := range taskStarts(w) {
			if task == lost[0] {
				t.Errorf("%s started the dead leader's task %s; the restarted worker should have it", w.URL, task)
			} else if n != 1 {
				// session.timeout.ms=6000 with the default heartbeat interval once made every
				// worker drop its work every 3 s.
				t.Errorf("%s started its task %s %d times, want once", w.URL, task, n)
			}
		}
	}
}

// TestTerminatedWorkerHandsOverWithoutLoss stops a worker with SIGTERM under load: its tasks
// move, nothing is lost, and duplicates stay within one flush interval's worth.
func TestTerminatedWorkerHandsOverWithoutLoss(t *testing.T) {
	c := sluicetest.NewCluster(t)
	flush := map[string]string{"offset.flush.interval.ms": "1000"}
	ws := []*sluicetest.Process{c.StartProcess(flush), c.StartProcess(flush), c.StartProcess(flush)}
	const tasks, perTask, rate = 3, 12000, 600
	gen, sink, files := startDatagenToFile(t, c, ws[0].URL, tasks, perTask, rate)
	placement(t, ws[0].URL, sink, tasks, ws, time.Minute, spread(1, 1))
	awaitLines(t, files, tasks*rate*3)
	ws[1].Term()
	live := []*sluicetest.Process{ws[0], ws[2]}
	placement(t, ws[0].URL, gen, tasks, live, time.Minute, spread(1, 2))
	placement(t, ws[0].URL, sink, tasks, live, time.Minute, spread(1, 2))
	seqs, lines := awaitEverySeq(t, files, tasks, perTask, 3*time.Minute)
	// A graceful stop commits what it wrote; at most one flush interval of one worker's
	// tasks may be replayed.
	if dups, bound := lines-len(seqs), 2*rate*2; dups > bound {
		t.Errorf("%d duplicates after a graceful stop, more than one flush interval's worth (%d)", dups, bound)
	} else {
		t.Logf("duplicates after SIGTERM: %d", dups)
	}
}

// TestFollowersForwardWritesAndRebalancesAnswer409 sends every kind of write to a follower,
// then holds the group in a rebalance and checks the writes answer 409 saying so.
func TestFollowersForwardWritesAndRebalancesAnswer409(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil), c.StartProcess(nil)}
	var follower *sluicetest.Process
	for _, w := range ws {
		var info api.ServerInfo
		sluicetest.Call(t, "GET", w.URL+"/", nil, &info)
		if info.Worker != nil && !info.Worker.Leader {
			follower = w
		}
	}
	if follower == nil {
		t.Fatal("no follower among three workers")
	}
	base, name := follower.URL, c.Prefix+"-gen"
	config := map[string]string{"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "rate": "5",
		"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}
	sluicetest.CreateConnector(t, base, name, config)
	sluicetest.WaitState(t, base, name, api.StateRunning, 1)
	config["rate"] = "7"
	if code := sluicetest.Call(t, "PUT", base+"/connectors/"+name+"/config", config, nil); code != 200 {
		t.Fatalf("update through a follower: %d", code)
	}
	var got map[string]string
	sluicetest.Call(t, "GET", ws[0].URL+"/connectors/"+name+"/config", nil, &got)
	if got["rate"] != "7" {
		t.Fatalf("update through a follower not in effect: %v", got)
	}
	if code := sluicetest.Call(t, "PUT", base+"/connectors/"+name+"/pause", nil, nil); code != 202 {
		t.Fatalf("pause through a follower: %d", code)
	}
	sluicetest.WaitState(t, ws[2].URL, name, api.StatePaused, 1)
	if code := sluicetest.Call(t, "PUT", base+"/connectors/"+name+"/resume", nil, nil); code != 202 {
		t.Fatalf("resume through a follower: %d", code)
	}
	sluicetest.WaitState(t, base, name, api.StateRunning, 1)
	if code := sluicetest.Call(t, "POST", base+"/connectors/"+name+"/restart?includeTasks=true", nil, nil); code != 202 {
		t.Fatalf("restart through a follower: %d", code)
	}
	sluicetest.WaitState(t, base, name, api.StateRunning, 1)

	// A member that joins and then never rejoins keeps the next rebalance open for its
	// rebalance timeout: the group cannot settle, and writes must say so.
	// (A write waits up to 5 s for a rebalance to end before it answers 409, so the hold is
	// longer than five writes take.)
	holdRebalance(t, c, 45*time.Second)
	sluicetest.Eventually(t, 20*time.Second, "every worker to be in the rebalance", func() (bool, string) {
		for _, w := range ws {
			var h api.Health
			sluicetest.Call(t, "GET", w.URL+"/health", nil, &h)
			if !strings.Contains(h.Message, "rebalance") {
				return false, w.URL + ": " + h.Message
			}
		}
		return true, ""
	})
	var e struct {
		Code    int    `json:"error_code"`
		Message string `json:"message"`
	}
	for _, req := range []struct{ method, path string }{
		{"POST", "/connectors"},
		{"PUT", "/connectors/" + name + "/config"},
		{"PUT", "/connectors/" + name + "/pause"},
		{"POST", "/connectors/" + name + "/restart"},
		{"DELETE", "/connectors/" + name},
	} {
		var body any
		switch {
		case req.method == "PUT" && strings.HasSuffix(req.path, "/config"):
			body = config
		case req.method == "POST" && req.path == "/connectors":
			body = map[string]any{"name": c.Prefix + "-second", "config": config}
		}
		e.Message = ""
		code := sluicetest.Call(t, req.method, base+req.path, body, &e)
		if code != 409 || !strings.Contains(e.Message, "rebalance") {
			t.Errorf("%s %s during a rebalance: %d %q, want 409 saying a rebalance is underway", req.method, req.path, code, e.Message)
		}
		// Reads still answer.
		if code := sluicetest.Call(t, "GET", base+"/connectors/"+name+"/status", nil, nil); code != 200 {
			t.Errorf("status during a rebalance: %d", code)
		}
	}

	// After the rebalance, the delete goes through the follower.
	sluicetest.Eventually(t, time.Minute, "the delete through a follower", func() (bool, string) {
		code := sluicetest.Call(t, "DELETE", base+"/connectors/"+name, nil, &e)
		return code == 204, fmt.Sprint(code, " ", e.Message)
	})
	sluicetest.Eventually(t, 10*time.Second, "the connector gone on every worker", func() (bool, string) {
		for _, w := range ws {
			if code := sluicetest.Call(t, "GET", w.URL+"/connectors/"+name, nil, nil); code != 404 {
				return false, fmt.Sprint(w.URL, " ", code)
			}
		}
		return true, ""
	})
}

// stuckMember is a group member that joins once and then never answers a rebalance.
type stuckMember struct{}

func (stuckMember) State() cluster.MemberState {
	return cluster.MemberState{URL: "http://127.0.0.1:1", ConfigOffset: -1}
}
func (stuckMember) Lead(context.Context, int32, []cluster.JoinedMember) map[string]cluster.Assignment {
	return nil
}
func (stuckMember) Assigned(ctx context.Context, _ cluster.Assignment) { <-ctx.Done() }
func (stuckMember) Lost(error)                                         {}

// holdRebalance adds a member that joins and then stops, then a second member whose join
// starts a rebalance that waits up to hold for the first.
func holdRebalance(t *testing.T, c *sluicetest.Cluster, hold time.Duration) {
	t.Helper()
	join := func(h cluster.Handler) {
		client, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		m := cluster.NewMembership(client, cluster.Config{Group: c.Prefix, SessionTimeout: hold, RebalanceTimeout: hold,
			HeartbeatInterval: time.Second}, h)
		go func() { defer close(done); _ = m.Run(ctx); client.Close() }()
		t.Cleanup(func() { cancel(); <-done })
	}
	stuck := &waitingMember{joined: make(chan struct{})}
	join(stuck)
	select {
	case <-stuck.joined:
	case <-time.After(30 * time.Second):
		t.Fatal("the test member did not join the group")
	}
	join(stuckMember{})
}

// waitingMember reports when it got its first assignment and then never rejoins.
type waitingMember struct {
	stuckMember
	joined chan struct{}
}

func (m *waitingMember) Assigned(ctx context.Context, _ cluster.Assignment) {
	close(m.joined)
	<-ctx.Done()
}

// TestChurnKeepsEveryTaskOnOneWorker starts and stops workers repeatedly while a pipeline
// runs; at the end every task runs on exactly one worker and no sequence number is missing.
func TestChurnKeepsEveryTaskOnOneWorker(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	const tasks, perTask, rate = 4, 30000, 400
	gen, sink, files := startDatagenToFile(t, c, ws[0].URL, tasks, perTask, rate)
	placement(t, ws[0].URL, sink, tasks, ws, time.Minute, spread(2, 2))
	deadline := time.Now().Add(90 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		switch round % 3 {
		case 0:
			ws = append(ws, c.StartProcess(nil))
		case 1:
			ws[0].Term()
			ws = ws[1:]
		case 2:
			ws[len(ws)-1].Kill()
			ws = append(ws[:len(ws)-1], c.StartProcess(nil))
		}
		time.Sleep(5 * time.Second) // let the round's rebalance run under load before the next
	}
	for len(ws) < 3 {
		ws = append(ws, c.StartProcess(nil))
	}
	for _, name := range []string{gen, sink} {
		placement(t, ws[0].URL, name, tasks, ws, 2*time.Minute, func(map[string]int) bool { return true })
	}
	// Each task runs on exactly one live worker: the workers' own lists agree with statuses.
	sluicetest.Eventually(t, time.Minute, "each task on exactly one worker", func() (bool, string) {
		count := map[string]int{}
		for _, w := range ws {
			var h api.Health
			sluicetest.Call(t, "GET", w.URL+"/health", nil, &h)
			if h.Worker == nil {
				return false, "no worker info from " + w.URL
			}
			for _, id := range h.Worker.Tasks {
				count[id.String()]++
			}
		}
		var wrong []string
		for _, name := range []string{gen, sink} {
			for i := 0; i < tasks; i++ {
				if id := fmt.Sprintf("%s-%d", name, i); count[id] != 1 {
					wrong = append(wrong, fmt.Sprintf("%s on %d workers", id, count[id]))
				}
			}
		}
		slices.Sort(wrong)
		return len(wrong) == 0, strings.Join(wrong, ", ")
	})
	awaitEverySeq(t, files, tasks, perTask, 4*time.Minute)
}

// TestWorkersJoiningDuringConfigChangesCatchUp starts workers while connectors are being
// created, so they join with config offsets that differ from the leader's: they catch up,
// agree on the offset, and the group settles without a rebalance loop.
func TestWorkersJoiningDuringConfigChangesCatchUp(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	const n = 15
	first := ws[0].URL // ws grows below while this goroutine creates connectors
	created := make(chan struct{})
	go func() {
		defer close(created)
		for i := 0; i < n; i++ {
			body := map[string]any{"name": fmt.Sprintf("%s-%d", c.Prefix, i), "config": map[string]string{
				"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "rate": "1",
				"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}}
			for code := 0; code != 201; {
				code = sluicetest.Call(t, "POST", first+"/connectors", body, nil)
				if code != 201 && code != 409 {
					t.Errorf("create %d answered %d", i, code)
					return
				}
			}
		}
	}()
	ws = append(ws, c.StartProcess(nil), c.StartProcess(nil))
	<-created
	for i := 0; i < n; i++ {
		placement(t, ws[0].URL, fmt.Sprintf("%s-%d", c.Prefix, i), 1, ws, time.Minute, func(map[string]int) bool { return true })
	}
	sluicetest.Eventually(t, 30*time.Second, "every worker at the same config offset and settled", func() (bool, string) {
		offsets := map[int64]bool{}
		for _, w := range ws {
			var h api.Health
			sluicetest.Call(t, "GET", w.URL+"/health", nil, &h)
			if h.Worker == nil || strings.Contains(h.Message, "behind") || strings.Contains(h.Message, "rebalance") {
				return false, w.URL + ": " + h.Message
			}
			offsets[h.Worker.ConfigOffset] = true
		}
		return len(offsets) == 1, fmt.Sprint("config offsets ", offsets)
	})
	// Each connector and its tasks may cause a round or two; a loop would cause many more.
	rounds := regexp.MustCompile(`msg=assignment`)
	for _, w := range ws {
		if got := len(rounds.FindAllString(w.Log.String(), -1)); got > 4*n+10 {
			t.Errorf("worker %s went through %d rebalance rounds for %d connectors: a loop", w.URL, got, n)
		} else {
			t.Logf("worker %s: %d rounds", w.URL, got)
		}
	}
}

// TestBrokerStoppedUnderLoadLosesNothing stops one of three brokers while datagen -> Kafka ->
// file runs on three workers: the workers keep running and every record arrives. It needs
// the three-broker environment (scripts/testenv up --brokers 3; make test runs it so).
func TestBrokerStoppedUnderLoadLosesNothing(t *testing.T) {
	if os.Getenv("SLUICE_TEST_KAFKA_BROKERS") != "3" {
		t.Skip("needs three brokers: SLUICE_TEST_KAFKA_BROKERS=3 (scripts/testenv up --brokers 3)")
	}
	script := os.Getenv("SLUICE_TEST_ENV_SCRIPT")
	c := sluicetest.NewCluster(t)
	rf := map[string]string{"config.storage.replication.factor": "3", "offset.storage.replication.factor": "3", "status.storage.replication.factor": "3"}
	ws := []*sluicetest.Process{c.StartProcess(rf), c.StartProcess(rf), c.StartProcess(rf)}
	const tasks, perTask, rate = 3, 15000, 500
	gen, sink, files := startDatagenToFile(t, c, ws[0].URL, tasks, perTask, rate)
	placement(t, ws[0].URL, sink, tasks, ws, time.Minute, spread(1, 1))
	awaitLines(t, files, tasks*rate*3)
	broker := "kafka-2"
	if out, err := exec.Command(script, "stop", broker).CombinedOutput(); err != nil {
		t.Fatalf("stop %s: %v\n%s", broker, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "start", broker).CombinedOutput(); err != nil {
			t.Errorf("start %s again: %v\n%s", broker, err, out)
		}
	})
	awaitEverySeq(t, files, tasks, perTask, 4*time.Minute)
	for _, name := range []string{gen, sink} {
		placement(t, ws[0].URL, name, tasks, ws, time.Minute, func(map[string]int) bool { return true })
	}
	for _, w := range ws {
		select {
		case <-w.Exited:
			t.Errorf("worker %s exited while a broker was down", w.URL)
		default:
		}
	}
}

var connectorStartLine = regexp.MustCompile(`msg="connector started".* connector=(\S+)`)

// TestTaskCountChangeLeavesOtherConnectorsAlone raises one connector's tasks.max on a
// three-worker cluster: the new task runs, and the other connector and its tasks are not
// restarted anywhere. GET / shows one leader and everyone's generation.
func TestTaskCountChangeLeavesOtherConnectorsAlone(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil), c.StartProcess(nil)}
	config := func(tasks int) map[string]string {
		return map[string]string{"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "rate": "5",
			"tasks.max": fmt.Sprint(tasks), "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}
	}
	a, b := c.Prefix+"-a", c.Prefix+"-b"
	sluicetest.CreateConnector(t, ws[0].URL, a, config(2))
	sluicetest.CreateConnector(t, ws[0].URL, b, config(2))
	placement(t, ws[0].URL, a, 2, ws, time.Minute, func(map[string]int) bool { return true })
	placement(t, ws[0].URL, b, 2, ws, time.Minute, func(map[string]int) bool { return true })

	if code := sluicetest.Call(t, "PUT", ws[1].URL+"/connectors/"+a+"/config", config(3), nil); code != 200 {
		t.Fatalf("raise tasks.max: %d", code)
	}
	placement(t, ws[0].URL, a, 3, ws, time.Minute, func(map[string]int) bool { return true })

	starts, connStarts := map[string]int{}, map[string]int{}
	for _, w := range ws {
		for id, n := range taskStarts(w) {
			starts[id] += n
		}
		for _, m := range connectorStartLine.FindAllStringSubmatch(w.Log.String(), -1) {
			connStarts[m[1]]++
		}
	}
	for _, id := range []string{b + "-0", b + "-1"} {
		if starts[id] != 1 {
			t.Errorf("task %s of the unchanged connector started %d times", id, starts[id])
		}
	}
	if connStarts[b] != 1 {
		t.Errorf("the unchanged connector started %d times", connStarts[b])
	}
	if starts[a+"-2"] != 1 {
		t.Errorf("the new task %s-2 started %d times", a, starts[a+"-2"])
	}

	leaders, generations := 0, map[int32]bool{}
	for _, w := range ws {
		var info api.ServerInfo
		sluicetest.Call(t, "GET", w.URL+"/", nil, &info)
		if info.Worker == nil || info.Worker.Generation <= 0 || info.Worker.LeaderURL == "" {
			t.Fatalf("GET / on %s does not show the worker's place in the group: %+v", w.URL, info.Worker)
		}
		if info.Worker.Leader {
			leaders++
		}
		generations[info.Worker.Generation] = true
	}
	if leaders != 1 {
		t.Errorf("%d workers say they lead, want 1", leaders)
	}
	t.Logf("generations seen: %v", generations)
}

// TestConnectorNamesThatNeedEscapingGetTasksOnAFollower creates connectors whose names need
// escaping in a URL (#, ?, %, a space, non-ASCII, + and &) on two workers: a connector that
// runs on the follower hands its task configurations to the leader over the internal REST
// endpoint, and every one of them must get its task.
func TestConnectorNamesThatNeedEscapingGetTasksOnAFollower(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	names := []string{"hash#1", "query?2", "percent%3", "space 4", "grüße-5", "all #?% é-6", "plus+and&7"}
	for _, n := range names {
		sluicetest.CreateConnector(t, ws[0].URL, c.Prefix+"-"+n, map[string]string{"connector.class": "datagen",
			"kafka.topic": c.Prefix + "-data", "rate": "1", "tasks.max": "1",
			"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"})
	}
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = c.Prefix + "-" + n
	}
	t.Logf("%d of %d connectors ran on a follower", runningOnAFollower(t, nil, []string{ws[0].URL, ws[1].URL}, full), len(names))
}

// runningOnAFollower waits until each connector runs with one task, asking through client
// (nil for http.DefaultClient), and returns how many run on a worker other than the leader; it
// fails the test when none does (a test of what followers do would prove nothing).
func runningOnAFollower(t *testing.T, client *http.Client, urls []string, names []string) int {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	get := func(u string, out any) int {
		resp, err := client.Get(u)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	leader := ""
	for _, u := range urls {
		var info api.ServerInfo
		if get(u+"/", &info) == 200 && info.Worker != nil && info.Worker.Leader {
			leader = info.Worker.WorkerID
		}
	}
	onFollower := 0
	for _, n := range names {
		var st api.ConnectorStatus
		sluicetest.Eventually(t, time.Minute, n+" running with its task", func() (bool, string) {
			st = api.ConnectorStatus{}
			code := get(urls[len(urls)-1]+"/connectors/"+url.PathEscape(n)+"/status", &st)
			return code == 200 && st.Connector.State == api.StateRunning && len(st.Tasks) == 1 && st.Tasks[0].State == api.StateRunning,
				fmt.Sprintf("%d %+v", code, st)
		})
		if st.Connector.WorkerID != leader {
			onFollower++
		}
	}
	if leader == "" || onFollower == 0 {
		t.Fatalf("no connector ran on a follower (leader %q): the test proves nothing", leader)
	}
	return onFollower
}
