package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/cluster"
	"github.com/sluicehq/sluice/worker/kafkaclient"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// membership is the worker's place in the group: what the leader assigned it, and who leads.
type membership struct {
	mu sync.Mutex
	membershipView
}

// membershipView is a copy of the membership at one moment.
type membershipView struct {
	known        bool // an assignment is in force (false before the first, after losing the group)
	rebalancing  bool // a rebalance round is underway: the leader may change, writes wait
	memberID     string
	leaderID     string
	leaderURL    string
	generation   int32
	connectors   map[string]bool
	tasks        map[api.TaskID]bool
	configOffset int64         // the leader's config offset in the last assignment
	behind       string        // why this worker's config view is behind the leader's, for /health
	view         *cluster.View // the group's view from the last assignment, sent back on rejoin
}

func (m *membership) snapshot() membershipView {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.membershipView
	v.connectors, v.tasks = maps.Clone(m.connectors), maps.Clone(m.tasks)
	return v
}

func (m membershipView) leader() bool { return m.known && m.memberID == m.leaderID }

// startMembership joins the worker group; the returned function leaves it.
func (w *Worker) startMembership() (func(), error) {
	security, err := kafkaclient.GroupOptions(w.cfg.Client.Common)
	if err != nil {
		return nil, err
	}
	client, err := kgo.NewClient(append(security, kgo.SeedBrokers(strings.Split(w.cfg.BootstrapServers, ",")...),
		kgo.ClientID("sluice-"+w.id))...)
	if err != nil {
		return nil, fmt.Errorf("group client: %w", err)
	}
	w.assignor = &cluster.Assignor{MaxDelay: w.cfg.ScheduledRebalanceMaxDelay}
	w.member = cluster.NewMembership(client, cluster.Config{
		Group: w.cfg.GroupID, SessionTimeout: w.cfg.SessionTimeout, RebalanceTimeout: w.cfg.RebalanceTimeout,
		HeartbeatInterval: w.cfg.HeartbeatInterval, Logger: w.log,
	}, (*groupHandler)(w))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.member.Run(ctx)
		client.Close()
	}()
	return func() { cancel(); <-done }, nil
}

// groupHandler is the worker seen as a member of the group.
type groupHandler Worker

func (h *groupHandler) w() *Worker { return (*Worker)(h) }

// State reports this worker's URL, config offset and its current assignment.
func (h *groupHandler) State() cluster.MemberState {
	w := h.w()
	st := cluster.MemberState{URL: w.url, ConfigOffset: w.configs.Snapshot().Offset,
		WorkerID: w.id, Version: w.opts.Version, Started: w.startedAt}
	w.cluster.mu.Lock()
	st.View = w.cluster.view
	w.cluster.rebalancing = true
	w.cluster.mu.Unlock()
	m := w.cluster.snapshot()
	for name := range m.connectors {
		st.Running.Connectors = append(st.Running.Connectors, name)
	}
	for id := range m.tasks {
		st.Running.Tasks = append(st.Running.Tasks, cluster.Task{Connector: id.Connector, ID: id.Task})
	}
	return st
}

// Lead computes everyone's assignment, after making sure this worker has read the config topic
// as far as any member.
func (h *groupHandler) Lead(ctx context.Context, generation int32, members []cluster.JoinedMember) map[string]cluster.Assignment {
	w := h.w()
	maxOffset := int64(-1)
	for _, m := range members {
		maxOffset = max(maxOffset, m.ConfigOffset)
	}
	snap := w.configs.Snapshot()
	if snap.Offset < maxOffset {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = w.configs.Log.ReadToEnd(rctx)
		cancel()
		snap = w.configs.Snapshot()
	}
	out := map[string]cluster.Assignment{}
	if snap.Offset < maxOffset {
		w.log.Warn("the leader is behind a member on the config topic; asking everyone to rejoin", "leader_offset", snap.Offset, "member_offset", maxOffset)
		for _, m := range members {
			out[m.ID] = cluster.Assignment{Error: cluster.ConfigMismatch, LeaderURL: w.url, ConfigOffset: snap.Offset}
		}
		return out
	}
	var ms []cluster.Member
	var leaderID string
	for _, m := range members {
		ms = append(ms, cluster.Member{ID: m.ID, Running: m.Running, View: m.View})
		if m.URL == w.url {
			leaderID = m.ID
		}
	}
	var tasks []cluster.Task
	for id := range snap.TaskConfigs {
		tasks = append(tasks, cluster.Task{Connector: id.Connector, ID: id.Task})
	}
	res := w.assignor.Assign(time.Now(), generation, ms, sortedKeys(snap.Connectors), tasks)
	res.View.Workers = map[string]cluster.WorkerMeta{}
	for _, m := range members {
		res.View.Workers[m.ID] = cluster.WorkerMeta{WorkerID: m.WorkerID, URL: m.URL, Version: m.Version, Started: m.Started, ConfigOffset: m.ConfigOffset}
	}
	for _, m := range members {
		p := res.Plans[m.ID]
		out[m.ID] = cluster.Assignment{Leader: leaderID, LeaderURL: w.url, ConfigOffset: snap.Offset,
			Assigned: p.Assigned, Revoked: p.Revoked, Delay: res.Delay, View: &res.View}
	}
	return out
}

// Assigned applies this worker's assignment: stop what was revoked (before returning, so the
// work never runs twice), catch up on the config topic, and run what was assigned.
func (h *groupHandler) Assigned(ctx context.Context, a cluster.Assignment) {
	w := h.w()
	w.generation.Store(a.Generation)
	var stopTasks []api.TaskID
	for _, t := range a.Revoked.Tasks {
		stopTasks = append(stopTasks, api.TaskID{Connector: t.Connector, Task: t.ID})
	}
	w.stopTasks(stopTasks, true)
	for _, c := range a.Revoked.Connectors {
		w.stopConnector(c)
	}

	behind := ""
	if a.Error == cluster.ConfigMismatch || w.configs.Snapshot().Offset < a.ConfigOffset {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.configs.Log.ReadToEnd(rctx)
		cancel()
		if off := w.configs.Snapshot().Offset; err != nil || off < a.ConfigOffset {
			behind = fmt.Sprintf("config topic read to offset %d, the leader has %d", off, a.ConfigOffset)
			w.log.Warn("behind the leader on the config topic; rejoining", "offset", off, "leader_offset", a.ConfigOffset)
		}
	}

	w.cluster.mu.Lock()
	m := &w.cluster
	if m.connectors == nil {
		m.connectors, m.tasks = map[string]bool{}, map[api.TaskID]bool{}
	}
	for _, c := range a.Revoked.Connectors {
		delete(m.connectors, c)
	}
	for _, t := range a.Revoked.Tasks {
		delete(m.tasks, api.TaskID{Connector: t.Connector, Task: t.ID})
	}
	for _, c := range a.Assigned.Connectors {
		m.connectors[c] = true
	}
	for _, t := range a.Assigned.Tasks {
		m.tasks[api.TaskID{Connector: t.Connector, Task: t.ID}] = true
	}
	m.memberID, m.leaderID, m.leaderURL, m.generation = a.MemberID, a.Leader, a.LeaderURL, a.Generation
	m.configOffset = a.ConfigOffset
	if a.View != nil {
		m.view = a.View
	}
	m.known = a.Error == cluster.NoError && behind == ""
	m.rebalancing = !m.known
	m.behind = behind
	w.cluster.mu.Unlock()
	if behind != "" || a.Error != cluster.NoError {
		w.member.RequestRejoin()
		return
	}
	w.joinOnce.Do(func() { close(w.joined) })
	w.log.Info("assignment", "generation", a.Generation, "leader", a.Leader == a.MemberID,
		"assigned_connectors", len(a.Assigned.Connectors), "assigned_tasks", len(a.Assigned.Tasks),
		"revoked_connectors", len(a.Revoked.Connectors), "revoked_tasks", len(a.Revoked.Tasks))
	w.wake()
}

// Lost stops everything this worker runs: it is no longer a member, and another worker may be
// given its work.
func (h *groupHandler) Lost(reason error) {
	w := h.w()
	w.log.Error("lost the worker group membership; stopping all connectors and tasks", "err", reason)
	w.cluster.mu.Lock()
	w.cluster.known, w.cluster.rebalancing = false, true
	w.cluster.connectors, w.cluster.tasks = map[string]bool{}, map[api.TaskID]bool{}
	w.cluster.mu.Unlock()
	w.mu.Lock()
	ids, names := slices.Collect(maps.Keys(w.tasks)), slices.Collect(maps.Keys(w.connectors))
	w.mu.Unlock()
	w.stopTasks(ids, true)
	for _, n := range names {
		w.stopConnector(n)
	}
}

// assigned reports whether this worker should run the connector or task now.
func (w *Worker) assignedConnector(name string) bool {
	w.cluster.mu.Lock()
	defer w.cluster.mu.Unlock()
	return w.cluster.known && w.cluster.connectors[name]
}

func (w *Worker) assignedTask(id api.TaskID) bool {
	w.cluster.mu.Lock()
	defer w.cluster.mu.Unlock()
	return w.cluster.known && w.cluster.tasks[id]
}

// rebalanceWait is how long a write waits for a rebalance in progress to finish before it is
// answered with 409; joinWait is how long it waits for a worker that has not joined its group
// yet (a worker just started, or a Kafka just started), as Kafka Connect holds requests until
// its herder has joined.
const (
	rebalanceWait = 5 * time.Second
	joinWait      = 60 * time.Second
)

// leaderOnly returns nil on the leader; elsewhere the error that makes the API forward the
// request to the leader, or a 409 while no leader is known.
func (w *Worker) leaderOnly(ctx context.Context) error {
	m := w.cluster.snapshot()
	// A rebalance usually takes a moment, and a worker that has just started joins within
	// seconds: wait for either rather than send the client away.
	wait := time.Now().Add(rebalanceWait)
	if !isDone(w.joined) {
		wait = time.Now().Add(joinWait)
	}
	for (m.rebalancing || !m.known) && time.Now().Before(wait) && retry.Sleep(ctx, 20*time.Millisecond) == nil {
		m = w.cluster.snapshot()
	}
	switch {
	case m.rebalancing && m.known:
		return api.Errorf(api.ErrRebalance, "Cannot complete request because a rebalance is in progress; retry shortly")
	case !m.known || m.leaderURL == "":
		return api.Errorf(api.ErrRebalance, "Cannot complete request momentarily due to no known leader URL (leader unknown), likely because a rebalance is underway")
	case m.leader():
		return nil
	}
	return &api.NotLeaderError{URL: m.leaderURL, What: "leader"}
}

// PutTaskConfigs answers the internal POST /connectors/{name}/tasks: the leader writes the task
// configurations a connector's worker generated.
func (w *Worker) PutTaskConfigs(ctx context.Context, name string, configs []map[string]string, sig sessionkey.Signature) error {
	if err := w.leaderOnly(ctx); err != nil {
		return err
	}
	if err := sessionkey.Verify(sig, w.configs.SessionKeysList()...); err != nil {
		return err
	}
	if _, err := w.snapshotOf(name); err != nil {
		return err
	}
	return w.configs.PutTaskConfigs(ctx, name, configs)
}

// writeTaskConfigs has the leader write task configurations: itself, or over its REST API.
func (w *Worker) writeTaskConfigs(ctx context.Context, name string, configs []map[string]string) error {
	m := w.cluster.snapshot()
	if m.leader() {
		return w.configs.PutTaskConfigs(ctx, name, configs)
	}
	if !m.known || m.leaderURL == "" {
		return api.Errorf(api.ErrRebalance, "no leader to write the task configurations of %s", name)
	}
	if configs == nil {
		configs = []map[string]string{}
	}
	key, _ := w.configs.SessionKeys()
	if len(key.Key) == 0 {
		return api.Errorf(api.ErrRebalance, "no session key yet to sign the task configurations of %s for the leader", name)
	}
	body, _ := json.Marshal(configs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.leaderURL+"/connectors/"+url.PathEscape(name)+"/tasks?forward=true", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(sessionkey.Header, sessionkey.Sign(key.Key, body))
	req.Header.Set(sessionkey.AlgorithmHeader, sessionkey.Algorithm)
	resp, err := w.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("handing task configurations to the leader at %s: %w", m.leaderURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("the leader at %s refused the task configurations of %s: %s %s", m.leaderURL, name, resp.Status, b)
	}
	return nil
}

// Cluster answers GET /cluster, Sluice's addition to the API: the worker group as the last
// rebalance left it (every worker, the leader, what each runs, the work held for a departed
// worker), seen from this worker. Every member holds the same picture: the leader hands it to
// all of them with their assignments.
func (w *Worker) Cluster(context.Context) api.ClusterInfo {
	m := w.cluster.snapshot()
	now := time.Now()
	info := api.ClusterInfo{Generation: m.generation, LeaderURL: m.leaderURL, ConfigOffset: m.configOffset,
		Rebalancing: m.rebalancing || !m.known, Workers: []api.ClusterWorker{}}
	placed := map[string]bool{}
	placedT := map[api.TaskID]bool{}
	self := api.ClusterWorker{WorkerID: w.id, URL: w.url, Self: true, Leader: m.leader(), Version: w.opts.Version,
		StartedAt: w.startedAt, ConfigOffset: w.configs.Snapshot().Offset, CatchingUp: m.behind,
		Connectors: sortedKeys(m.connectors), Tasks: sortedTaskIDs(m.tasks)}
	if v := m.view; v != nil && m.known {
		for memberID, work := range v.Members {
			if memberID == m.memberID {
				continue
			}
			meta := v.Workers[memberID]
			cw := api.ClusterWorker{WorkerID: meta.WorkerID, URL: meta.URL, Leader: memberID == m.leaderID, Version: meta.Version,
				StartedAt: meta.Started, ConfigOffset: meta.ConfigOffset, Connectors: slices.Clone(work.Connectors), Tasks: []api.TaskID{}}
			if cw.WorkerID == "" { // a view from a leader that did not describe its members
				cw.WorkerID = memberID
			}
			for _, t := range work.Tasks {
				cw.Tasks = append(cw.Tasks, api.TaskID{Connector: t.Connector, Task: t.ID})
			}
			info.Workers = append(info.Workers, cw)
		}
		if len(v.Held.Connectors)+len(v.Held.Tasks) > 0 {
			held := &api.HeldWork{Connectors: slices.Clone(v.Held.Connectors), Tasks: []api.TaskID{}, Since: v.LostSince,
				MovesAt: v.LostSince.Add(w.cfg.ScheduledRebalanceMaxDelay)}
			for _, t := range v.Held.Tasks {
				held.Tasks = append(held.Tasks, api.TaskID{Connector: t.Connector, Task: t.ID})
			}
			info.Held = held
		}
	}
	info.Workers = append(info.Workers, self)
	for i := range info.Workers {
		cw := &info.Workers[i]
		if cw.Leader {
			info.Leader = cw.WorkerID
		}
		if !cw.StartedAt.IsZero() {
			cw.UptimeMs = now.Sub(cw.StartedAt).Milliseconds()
		}
		if cw.Connectors == nil {
			cw.Connectors = []string{}
		}
		for _, c := range cw.Connectors {
			placed[c] = true
		}
		for _, t := range cw.Tasks {
			placedT[t] = true
		}
	}
	if info.Held != nil {
		for _, c := range info.Held.Connectors {
			placed[c] = true
		}
		for _, t := range info.Held.Tasks {
			placedT[t] = true
		}
	}
	sort.Slice(info.Workers, func(i, j int) bool { return info.Workers[i].WorkerID < info.Workers[j].WorkerID })

	// Configured work no worker runs: between the two rounds of a move, or before the leader
	// has assigned a new connector.
	info.Unassigned = api.ClusterWork{Connectors: []string{}, Tasks: []api.TaskID{}}
	if w.started.Load() {
		snap := w.configs.Snapshot()
		for _, c := range sortedKeys(snap.Connectors) {
			if !placed[c] {
				info.Unassigned.Connectors = append(info.Unassigned.Connectors, c)
			}
		}
		for _, t := range sortedTaskIDs(snap.TaskConfigs) {
			if !placedT[t] {
				info.Unassigned.Tasks = append(info.Unassigned.Tasks, t)
			}
		}
	}
	return info
}

// WorkerMetrics answers GET /cluster/workers/{worker}/metrics: nil when worker is this one
// (the API serves its own metrics), a *NotLeaderError with the member's URL when it is another
// member of the group, so the request is forwarded there, and ErrNotFound for any other name:
// the API only ever forwards to the group's own members.
func (w *Worker) WorkerMetrics(_ context.Context, worker string) error {
	if worker == w.id {
		return nil
	}
	m := w.cluster.snapshot()
	if v := m.view; v != nil && m.known {
		for memberID := range v.Members {
			if meta := v.Workers[memberID]; meta.WorkerID == worker && meta.URL != "" {
				return &api.NotLeaderError{URL: meta.URL, What: "worker " + worker}
			}
		}
	}
	return api.Errorf(api.ErrNotFound, "Worker %s is not a member of this cluster", worker)
}

// rotateSessionKey writes a new session key when this worker leads and the current one is
// missing or older than inter.worker.key.ttl.ms.
func (w *Worker) rotateSessionKey(ctx context.Context) {
	if !w.cluster.snapshot().leader() {
		return
	}
	cur, _ := w.configs.SessionKeys()
	if len(cur.Key) > 0 && time.Since(cur.Created) < w.cfg.KeyTTL {
		return
	}
	key := make([]byte, sessionkey.Bytes)
	if _, err := rand.Read(key); err != nil {
		w.log.Error("making a session key failed", "err", err)
		return
	}
	if err := w.configs.PutSessionKey(ctx, sessionkey.Key{Key: key, Created: time.Now()}); err != nil {
		w.log.Warn("writing a new session key failed; will retry", "err", err)
	}
}
