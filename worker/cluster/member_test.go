package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/connect/connecttest"
)

// worker is a test Handler: it runs what it is assigned, and as leader assigns with an
// Assignor.
type worker struct {
	id       string
	assignor *Assignor
	tasks    []Task

	mu      sync.Mutex
	running Work
	gen     int32
	view    *View
	lost    error
}

func (w *worker) State() MemberState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return MemberState{URL: "http://" + w.id, Running: w.running, View: w.view}
}

func (w *worker) Lead(_ context.Context, gen int32, members []JoinedMember) map[string]Assignment {
	var ms []Member
	for _, m := range members {
		ms = append(ms, Member{ID: m.ID, Running: m.Running, View: m.View})
	}
	res := w.assignor.Assign(time.Now(), gen, ms, []string{"c"}, w.tasks)
	out := map[string]Assignment{}
	for _, m := range members {
		p := res.Plans[m.ID]
		out[m.ID] = Assignment{Leader: "leader", Assigned: p.Assigned, Revoked: p.Revoked, Delay: res.Delay, View: &res.View}
	}
	return out
}

func (w *worker) Assigned(_ context.Context, a Assignment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running.Connectors = append(minus(w.running.Connectors, a.Revoked.Connectors), a.Assigned.Connectors...)
	w.running.Tasks = append(minusT(w.running.Tasks, a.Revoked.Tasks), a.Assigned.Tasks...)
	w.gen, w.view = a.Generation, a.View
}

func (w *worker) Lost(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lost = err
	w.running = Work{}
}

func (w *worker) tasksRunning() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running.Tasks)
}

func startMember(t *testing.T, brokers, group, id string, tasks []Task, opts ...kgo.Opt) (*worker, context.CancelFunc) {
	t.Helper()
	client, err := kgo.NewClient(append(opts, kgo.SeedBrokers(strings.Split(brokers, ",")...))...)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{id: id, assignor: &Assignor{MaxDelay: 2 * time.Second}, tasks: tasks}
	m := NewMembership(client, Config{Group: group, SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond}, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
		client.Close()
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return w, stop
}

func waitLoads(t *testing.T, what string, workers []*worker, want ...int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got []int
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, w := range workers {
			got = append(got, w.tasksRunning())
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: task loads %v, want %v", what, got, want)
}

func TestMembersShareTasksThroughTheKafkaGroup(t *testing.T) {
	brokers := connecttest.Env(t, connecttest.EnvKafka)
	group := fmt.Sprintf("cluster-test-%d", time.Now().UnixNano())
	tasks := tasksOf("c", 6)
	w1, _ := startMember(t, brokers, group, "w1", tasks)
	w2, _ := startMember(t, brokers, group, "w2", tasks)
	w3, stop3 := startMember(t, brokers, group, "w3", tasks)
	waitLoads(t, "three members", []*worker{w1, w2, w3}, 2, 2, 2)

	// A member that leaves: its tasks wait the scheduled delay (2 s), then move.
	stop3()
	waitLoads(t, "after w3 left", []*worker{w1, w2}, 3, 3)
	w4, _ := startMember(t, brokers, group, "w4", tasks)
	loads := func() []int { return []int{w1.tasksRunning(), w2.tasksRunning(), w4.tasksRunning()} }
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l := loads()
		if l[0]+l[1]+l[2] == 6 && l[0] == 2 && l[1] == 2 && l[2] == 2 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after w4 joined: loads %v, want 2/2/2", loads())
}

// cuttableNet dials through a switch the test can open: cut closes every connection and
// refuses new ones, as a network partition between a worker and Kafka would.
type cuttableNet struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (n *cuttableNet) dial(ctx context.Context, network, host string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut {
		return nil, errors.New("network cut by the test")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		n.conns = append(n.conns, c)
	}
	return c, err
}

func (n *cuttableNet) setCut(cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = cut
	if cut {
		for _, c := range n.conns {
			c.Close()
		}
		n.conns = nil
	}
}

func (w *worker) lostErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// A member cut off from the coordinator stops its work before the coordinator's session
// timeout would let another member take it (no zombies), and comes back when it can.
func TestMemberCutOffFromTheCoordinatorStopsItsWork(t *testing.T) {
	brokers := connecttest.Env(t, connecttest.EnvKafka)
	group := fmt.Sprintf("zombie-%d", time.Now().UnixNano())
	tasks := []Task{{"c", 0}, {"c", 1}}
	network := &cuttableNet{}
	w, _ := startMember(t, brokers, group, "w1", tasks, kgo.Dialer(network.dial))
	waitLoads(t, "the only member runs both tasks", []*worker{w}, 2)

	network.setCut(true)
	cut := time.Now()
	deadline := cut.Add(6 * time.Second) // the session timeout
	for w.lostErr() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if w.lostErr() == nil {
		t.Fatal("the member kept its work for a whole session timeout without reaching the coordinator")
	}
	if n := w.tasksRunning(); n != 0 {
		t.Fatalf("the member still runs %d tasks after losing the coordinator", n)
	}
	t.Logf("work stopped %v after the cut: %v", time.Since(cut).Round(10*time.Millisecond), w.lostErr())

	network.setCut(false)
	waitLoads(t, "the member back with its work", []*worker{w}, 2)
}
