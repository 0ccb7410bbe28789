// Package cluster coordinates Sluice workers through a Kafka group: the member metadata and
// assignment formats, and the leader's incremental cooperative assignment (KIP-415), which
// moves only the work that must move.
package cluster

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Task names a connector's task.
type Task struct {
	Connector string `json:"connector"`
	ID        int    `json:"task"`
}

func (t Task) String() string { return fmt.Sprintf("%s-%d", t.Connector, t.ID) }

// Work is a set of connectors and tasks.
type Work struct {
	Connectors []string `json:"connectors"`
	Tasks      []Task   `json:"tasks"`
}

func (w Work) empty() bool { return len(w.Connectors) == 0 && len(w.Tasks) == 0 }

// Member is a worker in the group as the leader sees it: its id, what it runs, and the
// group's view it last heard from a leader.
type Member struct {
	ID      string
	Running Work
	View    *View
}

// View is a leader's memory after a round, handed to every member with its assignment and
// sent back by the members when they rejoin: who runs what, and the lost work waiting for
// its worker. A new leader (the old one died, or another member led in between) picks the
// latest view up, so the work of a dead leader waits for scheduled.rebalance.max.delay.ms
// like anyone else's instead of moving at once (Kafka Connect's new leader forgets it).
type View struct {
	Generation int32           `json:"generation"`
	Members    map[string]Work `json:"members"`
	Held       Work            `json:"held,omitzero"`
	LostSince  time.Time       `json:"lost_since,omitzero"`
	// Workers describes the members of this round by member id; the leader fills it in, the
	// assignor neither reads nor writes it.
	Workers map[string]WorkerMeta `json:"workers,omitempty"`
}

// Plan is the leader's decision for one member: what it should start and what it must stop.
type Plan struct {
	Assigned Work
	Revoked  Work
}

// Assignor computes incremental cooperative assignments. It is the leader's memory between
// rounds: who had what, and the lost work waiting for its worker to come back.
type Assignor struct {
	// MaxDelay is how long lost work waits for its worker before it moves
	// (scheduled.rebalance.max.delay.ms).
	MaxDelay time.Duration

	generation  int32           // the generation of the last round this assignor led
	previous    map[string]Work // member -> what it runs after the last round
	held        Work            // lost work waiting for its worker to come back
	lostSince   time.Time       // when the held work was first found lost
	revokedLast bool            // the last round revoked for balance: assign before revoking again
}

// Result is one round's plans, the delay after which the leader should rebalance again
// (lost work waiting) or zero, and the view to hand to every member.
type Result struct {
	Plans map[string]Plan
	Delay time.Duration
	View  View
}

// Assign plans round generation for the members of the group, given the connectors and tasks
// the config topic holds.
func (a *Assignor) Assign(now time.Time, generation int32, members []Member, connectors []string, tasks []Task) Result {
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	a.adoptLatestView(members)
	configuredC := setOf(connectors)
	configuredT := setOf(tasks)

	plans := map[string]Plan{}
	// What each member will run after this round, starting from what it runs now.
	runC := map[string]map[string]bool{}
	runT := map[string]map[Task]bool{}
	ownerC := map[string]string{}
	ownerT := map[Task]string{}
	for _, m := range members {
		runC[m.ID], runT[m.ID] = map[string]bool{}, map[Task]bool{}
		p := plans[m.ID]
		for _, c := range m.Running.Connectors {
			switch {
			case !configuredC[c]: // deleted
				p.Revoked.Connectors = append(p.Revoked.Connectors, c)
			case ownerC[c] != "": // a duplicate: the later one stops
				p.Revoked.Connectors = append(p.Revoked.Connectors, c)
			default:
				ownerC[c] = m.ID
				runC[m.ID][c] = true
			}
		}
		for _, t := range m.Running.Tasks {
			switch {
			case !configuredT[t]:
				p.Revoked.Tasks = append(p.Revoked.Tasks, t)
			case ownerT[t] != "":
				p.Revoked.Tasks = append(p.Revoked.Tasks, t)
			default:
				ownerT[t] = m.ID
				runT[m.ID][t] = true
			}
		}
		plans[m.ID] = p
	}

	// Lost work: what a member that is gone now ran after the last round, and what was
	// already held for a departed member, unless deleted or running elsewhere.
	present := map[string]bool{}
	for _, m := range members {
		present[m.ID] = true
	}
	lost := a.held
	for id, w := range a.previous {
		if !present[id] {
			lost.Connectors = append(lost.Connectors, w.Connectors...)
			lost.Tasks = append(lost.Tasks, w.Tasks...)
		}
	}
	held, heldT := map[string]bool{}, map[Task]bool{}
	for _, c := range lost.Connectors {
		if configuredC[c] && ownerC[c] == "" {
			held[c] = true
		}
	}
	for _, t := range lost.Tasks {
		if configuredT[t] && ownerT[t] == "" {
			heldT[t] = true
		}
	}
	var delay time.Duration
	holdLost := false
	if len(held)+len(heldT) > 0 {
		if a.lostSince.IsZero() {
			a.lostSince = now
		}
		// Hold it for its worker, unless the delay is over or a fresh member joined (a
		// restarted worker comes back under a new member id, empty-handed).
		if wait := a.lostSince.Add(a.MaxDelay).Sub(now); wait > 0 && !a.newMembers(members) {
			holdLost, delay = true, wait
		}
	}
	if holdLost {
		a.held = Work{Connectors: sortedKeys(held), Tasks: sortedTasks(heldT)}
	} else {
		a.held, a.lostSince = Work{}, time.Time{}
		held, heldT = nil, nil
	}

	// Unowned configured work is new (or lost and no longer held).
	var newC []string
	for _, c := range sortedKeys(configuredC) {
		if ownerC[c] == "" && !held[c] {
			newC = append(newC, c)
		}
	}
	var newT []Task
	for _, t := range sortedTasks(configuredT) {
		if ownerT[t] == "" && !heldT[t] {
			newT = append(newT, t)
		}
	}

	// Balance: revoke the excess of overloaded members, unless the last round revoked already
	// (moving takes two rounds: revoke, then assign in the next) or work is held for a
	// departed member. The revoked units are assigned in the next round, when their old owner
	// has stopped them, so no unit ever runs twice.
	revoked := false
	if !a.revokedLast && !holdLost && len(members) > 0 {
		revoked = revokeExcess(members, runC, len(configuredC), plans, func(p *Plan, c string) {
			p.Revoked.Connectors = append(p.Revoked.Connectors, c)
		}) || revoked
		revoked = revokeExcess(members, runT, len(configuredT), plans, func(p *Plan, t Task) {
			p.Revoked.Tasks = append(p.Revoked.Tasks, t)
		}) || revoked
	}
	a.revokedLast = revoked

	assignLeastLoaded(members, runC, newC, plans, func(p *Plan, c string) {
		p.Assigned.Connectors = append(p.Assigned.Connectors, c)
	})
	assignLeastLoaded(members, runT, newT, plans, func(p *Plan, t Task) {
		p.Assigned.Tasks = append(p.Assigned.Tasks, t)
	})

	a.previous = map[string]Work{}
	for _, m := range members {
		a.previous[m.ID] = Work{Connectors: sortedKeys(runC[m.ID]), Tasks: sortedTasks(runT[m.ID])}
	}
	for id, p := range plans {
		sortWork(&p.Assigned)
		sortWork(&p.Revoked)
		plans[id] = p
	}
	a.generation = generation
	view := View{Generation: generation, Members: a.previous, Held: a.held, LostSince: a.lostSince}
	return Result{Plans: plans, Delay: delay, View: view}
}

// adoptLatestView takes over the memory of a leader that led after this assignor's last
// round, as the members heard it: the previous owners and the held lost work.
func (a *Assignor) adoptLatestView(members []Member) {
	var latest *View
	for _, m := range members {
		if v := m.View; v != nil && v.Generation > a.generation && (latest == nil || v.Generation > latest.Generation) {
			latest = v
		}
	}
	if latest == nil {
		return
	}
	a.generation = latest.Generation
	a.previous = maps.Clone(latest.Members)
	a.held, a.lostSince = latest.Held, latest.LostSince
	a.revokedLast = false
}

// newMembers reports whether a member without work joined: lost work can go to it at once,
// as a restarted worker usually comes back under a new member id.
func (a *Assignor) newMembers(members []Member) bool {
	for _, m := range members {
		if _, known := a.previous[m.ID]; !known && m.Running.empty() {
			return true
		}
	}
	return false
}

// revokeExcess revokes, from members running more than their fair share, the units above it.
func revokeExcess[K comparable](members []Member, run map[string]map[K]bool, total int, plans map[string]Plan, revoke func(*Plan, K)) bool {
	n := len(members)
	floor, extra := total/n, total%n
	// Members sorted by load, heaviest first, get the extra units.
	order := slices.Clone(members)
	sort.SliceStable(order, func(i, j int) bool { return len(run[order[i].ID]) > len(run[order[j].ID]) })
	revoked := false
	for i, m := range order {
		quota := floor
		if i < extra {
			quota++
		}
		units := sortedAny(run[m.ID])
		for len(units) > quota {
			u := units[len(units)-1]
			units = units[:len(units)-1]
			delete(run[m.ID], u)
			p := plans[m.ID]
			revoke(&p, u)
			plans[m.ID] = p
			revoked = true
		}
	}
	return revoked
}

// assignLeastLoaded gives each unit to the member running the fewest.
func assignLeastLoaded[K comparable](members []Member, run map[string]map[K]bool, units []K, plans map[string]Plan, assign func(*Plan, K)) {
	for _, u := range units {
		best := ""
		for _, m := range members {
			if best == "" || len(run[m.ID]) < len(run[best]) {
				best = m.ID
			}
		}
		if best == "" {
			return
		}
		run[best][u] = true
		p := plans[best]
		assign(&p, u)
		plans[best] = p
	}
}

func setOf[K comparable](items []K) map[K]bool {
	m := make(map[K]bool, len(items))
	for _, i := range items {
		m[i] = true
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedTasks(m map[Task]bool) []Task {
	out := make([]Task, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortTasks(out)
	return out
}

func sortTasks(ts []Task) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Connector != ts[j].Connector {
			return ts[i].Connector < ts[j].Connector
		}
		return ts[i].ID < ts[j].ID
	})
}

// sortedAny orders the units of a member deterministically by their text.
func sortedAny[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return lessText(out[i], out[j]) })
	return out
}

func lessText(a, b any) bool {
	if ta, ok := a.(Task); ok {
		tb := b.(Task)
		if ta.Connector != tb.Connector {
			return ta.Connector < tb.Connector
		}
		return ta.ID < tb.ID
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) < 0
}

func sortWork(w *Work) {
	sort.Strings(w.Connectors)
	sortTasks(w.Tasks)
}
