package cluster

import (
	"fmt"
	"testing"
	"time"
)

func tasksOf(connector string, n int) []Task {
	out := make([]Task, n)
	for i := range out {
		out[i] = Task{connector, i}
	}
	return out
}

// group simulates members that run exactly what the assignor tells them.
type group struct {
	t       *testing.T
	a       *Assignor
	running map[string]Work
	now     time.Time
	conns   []string
	tasks   []Task
	starts  map[Task]int // how often each task was started

	generation int32
	views      map[string]*View // the view each member last heard from a leader
}

func newGroup(t *testing.T, delay time.Duration, conns []string, tasks []Task, members ...string) *group {
	g := &group{t: t, a: &Assignor{MaxDelay: delay}, running: map[string]Work{}, now: time.Unix(1000, 0),
		conns: conns, tasks: tasks, starts: map[Task]int{}, views: map[string]*View{}}
	for _, m := range members {
		g.running[m] = Work{}
	}
	return g
}

// round runs one rebalance and applies its plans; it returns the result.
func (g *group) round() Result {
	var members []Member
	for id, w := range g.running {
		members = append(members, Member{ID: id, Running: w, View: g.views[id]})
	}
	g.generation++
	res := g.a.Assign(g.now, g.generation, members, g.conns, g.tasks)
	for id, p := range res.Plans {
		g.views[id] = &res.View
		w := g.running[id]
		w.Connectors = minus(w.Connectors, p.Revoked.Connectors)
		w.Tasks = minusT(w.Tasks, p.Revoked.Tasks)
		w.Connectors = append(w.Connectors, p.Assigned.Connectors...)
		w.Tasks = append(w.Tasks, p.Assigned.Tasks...)
		for _, t := range p.Assigned.Tasks {
			g.starts[t]++
		}
		g.running[id] = w
	}
	return res
}

// roundHolding runs a round in which lost work must wait: the round asks for a rebalance
// after delay and assigns nothing.
func (g *group) roundHolding(delay time.Duration) {
	g.t.Helper()
	res := g.round()
	if res.Delay != delay {
		g.t.Errorf("delay %v, want %v", res.Delay, delay)
	}
	for id, p := range res.Plans {
		if !p.Assigned.empty() {
			g.t.Errorf("%s got %v while the lost work waits", id, p.Assigned)
		}
	}
}

// settle runs rounds until a round changes nothing (the protocol rebalances again after a
// revocation).
func (g *group) settle() {
	for i := 0; i < 5; i++ {
		res := g.round()
		changed := false
		for _, p := range res.Plans {
			if !p.Assigned.empty() || !p.Revoked.empty() {
				changed = true
			}
		}
		if !changed {
			return
		}
	}
	g.t.Fatal("assignments did not settle in 5 rounds")
}

func (g *group) loads() map[string]int {
	out := map[string]int{}
	for id, w := range g.running {
		out[id] = len(w.Tasks)
	}
	return out
}

// checkExactlyOnce fails unless every configured unit runs on exactly one member.
func (g *group) checkExactlyOnce() {
	g.t.Helper()
	seenC, seenT := map[string]int{}, map[Task]int{}
	for _, w := range g.running {
		for _, c := range w.Connectors {
			seenC[c]++
		}
		for _, t := range w.Tasks {
			seenT[t]++
		}
	}
	for _, c := range g.conns {
		if seenC[c] != 1 {
			g.t.Errorf("connector %s runs %d times", c, seenC[c])
		}
	}
	for _, t := range g.tasks {
		if seenT[t] != 1 {
			g.t.Errorf("task %s runs %d times", t, seenT[t])
		}
	}
	if len(seenT) != len(g.tasks) || len(seenC) != len(g.conns) {
		g.t.Errorf("running %v %v, configured %v %v", seenC, seenT, g.conns, g.tasks)
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func minusT(a, b []Task) []Task {
	var out []Task
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains[K comparable](list []K, x K) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

func TestSixTasksOverThreeWorkers(t *testing.T) {
	g := newGroup(t, time.Minute, []string{"c"}, tasksOf("c", 6), "w1", "w2", "w3")
	g.settle()
	g.checkExactlyOnce()
	for id, n := range g.loads() {
		if n != 2 {
			t.Errorf("%s runs %d tasks, want 2 each: %v", id, n, g.loads())
		}
	}
}

func TestAFourthWorkerMovesOnlyWhatMustMove(t *testing.T) {
	g := newGroup(t, time.Minute, []string{"c"}, tasksOf("c", 6), "w1", "w2", "w3")
	g.settle()
	before := map[Task]int{}
	for k, v := range g.starts {
		before[k] = v
	}
	g.running["w4"] = Work{}
	g.settle()
	g.checkExactlyOnce()
	counts := map[int]int{}
	for _, n := range g.loads() {
		counts[n]++
	}
	if counts[2] != 2 || counts[1] != 2 {
		t.Errorf("loads %v, want 2/2/1/1", g.loads())
	}
	restarted := 0
	for task, n := range g.starts {
		if n > before[task] {
			restarted++
		}
	}
	if restarted != 1 {
		t.Errorf("%d tasks restarted; only the one that moved should be", restarted)
	}
}

func TestLostWorkWaitsForItsWorkerThenMoves(t *testing.T) {
	g := newGroup(t, 20*time.Second, []string{"c"}, tasksOf("c", 6), "w1", "w2", "w3")
	g.settle()
	lost := g.running["w3"]
	delete(g.running, "w3")
	g.roundHolding(20 * time.Second)
	g.now = g.now.Add(5 * time.Second)
	if res := g.round(); res.Delay != 15*time.Second {
		t.Errorf("delay %v after 5s, want 15s", res.Delay)
	}
	g.now = g.now.Add(16 * time.Second)
	if res := g.round(); res.Delay != 0 {
		t.Errorf("delay %v after the deadline, want 0", res.Delay)
	}
	g.settle()
	g.checkExactlyOnce()
	if len(lost.Tasks) != 2 {
		t.Fatalf("w3 ran %v", lost)
	}
	for id, n := range g.loads() {
		if n != 3 {
			t.Errorf("%s runs %d tasks, want 3: %v", id, n, g.loads())
		}
	}
}

// The leader dies: a member becomes leader with a fresh assignor, which learns from the
// members' views who ran what, and holds the dead leader's work like anyone else's.
func TestANewLeaderHoldsTheDeadLeadersWork(t *testing.T) {
	g := newGroup(t, 20*time.Second, []string{"c"}, tasksOf("c", 6), "w1", "w2", "w3")
	g.settle()
	lost := g.running["w1"]
	delete(g.running, "w1")
	g.a = &Assignor{MaxDelay: 20 * time.Second}
	g.roundHolding(20 * time.Second)
	// And again: the second new leader takes over the held work and its deadline.
	g.now = g.now.Add(5 * time.Second)
	g.a = &Assignor{MaxDelay: 20 * time.Second}
	if res := g.round(); res.Delay != 15*time.Second {
		t.Errorf("delay %v after 5s under a second new leader, want 15s", res.Delay)
	}
	g.running["w1-restarted"] = Work{}
	res := g.round()
	if got := res.Plans["w1-restarted"].Assigned; fmt.Sprint(got.Tasks) != fmt.Sprint(lost.Tasks) || fmt.Sprint(got.Connectors) != fmt.Sprint(lost.Connectors) {
		t.Errorf("the restarted worker got %v, want the dead leader's %v", got, lost)
	}
	g.settle()
	g.checkExactlyOnce()
}

func TestLostWorkGoesAtOnceToAWorkerThatJoins(t *testing.T) {
	g := newGroup(t, time.Hour, []string{"c"}, tasksOf("c", 6), "w1", "w2", "w3")
	g.settle()
	lost := g.running["w3"]
	delete(g.running, "w3")
	g.round() // held
	g.running["w3-restarted"] = Work{}
	res := g.round()
	got := res.Plans["w3-restarted"].Assigned
	if fmt.Sprint(got.Tasks) != fmt.Sprint(lost.Tasks) {
		t.Errorf("the new member got %v, want the lost %v", got, lost)
	}
	g.settle()
	g.checkExactlyOnce()
}

func TestDeletedAndDuplicatedWorkIsRevoked(t *testing.T) {
	g := newGroup(t, time.Minute, []string{"a", "b"}, append(tasksOf("a", 2), tasksOf("b", 2)...), "w1", "w2")
	g.settle()
	// b is deleted; w2 also (wrongly) runs a-0, which w1 or w2 already runs.
	g.conns, g.tasks = []string{"a"}, tasksOf("a", 2)
	w := g.running["w2"]
	w.Tasks = append(w.Tasks, Task{"a", 0}, Task{"a", 1})
	g.running["w2"] = w
	g.settle()
	g.checkExactlyOnce()
}

func TestNoMembersNoPlans(t *testing.T) {
	a := &Assignor{}
	if res := a.Assign(time.Now(), 1, nil, []string{"c"}, tasksOf("c", 2)); len(res.Plans) != 0 {
		t.Errorf("plans %v for an empty group", res.Plans)
	}
}
