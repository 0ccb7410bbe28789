package worker_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Test plugins: sinks that fail, panic, retry or leak a secret on purpose.

type probeConfig struct {
	Password string `config:"password" secret:"true" doc:"A secret, to check it never leaks."`
	Server   string `config:"server" endpoint:"true" doc:"Where the sink would log in with password (it never connects)."`
	Mode     string `config:"mode" default:"ok" enum:"ok,fail,panic,flaky,leak,request-commit,seek-later,seek-back,pause-once,slow" doc:"How the sink misbehaves; request-commit asks for a commit at start, records or not; seek-later seeks partition 1 of its topic to offset 0 in its first put; seek-back seeks the partition of its first put's records back to offset 0 there; pause-once pauses the partition of its first put's records and resumes it at the next PreCommit; slow takes 5 ms a put."`
	Flaky    int    `config:"flaky.failures" default:"3" doc:"Retriable failures before puts succeed."`
	FailTask int    `config:"fail.task" default:"-1" doc:"In fail and panic modes, the task that fails on its first record; -1 fails any task on a record {\"poison\": true}."`
}

type probeConnector struct{ connect.Base }

func (*probeConnector) NewTask() connect.SinkTask { return &probeTask{} }

// collected holds what probe sinks wrote, by connector name.
var collected = struct {
	sync.Mutex
	values map[string][]any
}{values: map[string][]any{}}

func collectedValues(name string) []any {
	collected.Lock()
	defer collected.Unlock()
	return append([]any(nil), collected.values[name]...)
}

type probeTask struct {
	cfg      probeConfig
	tc       connect.SinkTaskContext
	failures int
	stopped  atomic.Bool
	sought   bool
	paused   *connect.TopicPartition // pause-once: the partition paused, until PreCommit
	didPause bool
}

// deliveredWhilePaused counts, by connector name, the records of a paused partition a probe
// task got: the SDK promises none.
var deliveredWhilePaused sync.Map

func deliveredWhilePausedCount(name string) int64 {
	if n, ok := deliveredWhilePaused.Load(name); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// callsAfterStop counts, by connector name, the calls a probe task got after its Stop: the SDK
// promises there are none.
var callsAfterStop sync.Map

func (p *probeTask) called(_ string) {
	if p.stopped.Load() {
		n, _ := callsAfterStop.LoadOrStore(p.tc.Connector(), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
}

func callsAfterStopCount(name string) int64 {
	if n, ok := callsAfterStop.Load(name); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (p *probeTask) Start(_ context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[probeConfig](cfg)
	if err != nil {
		return err
	}
	p.cfg, p.tc = c, tc
	if c.Mode == "request-commit" {
		tc.RequestCommit()
	}
	if c.Mode == "leak" {
		// A careless connector logging its secret and putting it into an error: the runtime
		// must scrub both.
		tc.Logger().Warn("logging in", "password", c.Password, "err", fmt.Errorf("attempt with %q", c.Password))
		return fmt.Errorf("cannot log in with password %s", c.Password)
	}
	return nil
}

func (p *probeTask) Put(_ context.Context, batch []connect.Record) error {
	p.called("Put")
	for _, r := range batch {
		m, _ := r.Value.(map[string]any)
		poisoned := m["poison"] == true
		if p.cfg.FailTask >= 0 {
			poisoned = p.tc.TaskID() == p.cfg.FailTask
		}
		switch {
		case p.cfg.Mode == "fail" && poisoned:
			return connect.BadField("poison", m["poison"], "boom at %s", r.Position())
		case p.cfg.Mode == "panic" && poisoned:
			panic("boom")
		}
	}
	if p.paused != nil {
		for _, r := range batch {
			if r.Topic == p.paused.Topic && r.KafkaPartition == p.paused.Partition {
				n, _ := deliveredWhilePaused.LoadOrStore(p.tc.Connector(), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}
	}
	if p.cfg.Mode == "pause-once" && !p.didPause && len(batch) > 0 {
		p.didPause = true
		p.paused = &connect.TopicPartition{Topic: batch[0].Topic, Partition: batch[0].KafkaPartition}
		p.tc.Pause(*p.paused)
	}
	if p.cfg.Mode == "seek-back" && !p.sought && len(batch) > 0 {
		p.sought = true
		p.tc.Seek(connect.TopicPartition{Topic: batch[0].Topic, Partition: batch[0].KafkaPartition}, 0)
	}
	if p.cfg.Mode == "seek-later" && !p.sought && len(batch) > 0 {
		p.sought = true
		p.tc.Seek(connect.TopicPartition{Topic: batch[0].Topic, Partition: 1}, 0)
	}
	if p.cfg.Mode == "slow" {
		time.Sleep(5 * time.Millisecond)
	}
	if p.cfg.Mode == "flaky" && p.failures < p.cfg.Flaky {
		p.failures++
		return connect.Retriable(errors.New("database unavailable"))
	}
	collected.Lock()
	for _, r := range batch {
		collected.values[p.tc.Connector()] = append(collected.values[p.tc.Connector()], r.Value)
	}
	collected.Unlock()
	return nil
}

// holding counts, by connector and task, the partitions each probe task holds.
var holding = struct {
	sync.Mutex
	n map[string]map[int]int
}{n: map[string]map[int]int{}}

func (p *probeTask) Open(_ context.Context, tps []connect.TopicPartition) error {
	p.called("Open")
	p.hold(len(tps))
	return nil
}

func (p *probeTask) Close(_ context.Context, tps []connect.TopicPartition) error {
	p.called("Close")
	p.hold(-len(tps))
	return nil
}

func (p *probeTask) hold(delta int) {
	holding.Lock()
	defer holding.Unlock()
	if holding.n[p.tc.Connector()] == nil {
		holding.n[p.tc.Connector()] = map[int]int{}
	}
	holding.n[p.tc.Connector()][p.tc.TaskID()] += delta
}

// partitionsHeld says how many partitions each task of a probe connector holds.
func partitionsHeld(name string) map[int]int {
	holding.Lock()
	defer holding.Unlock()
	return maps.Clone(holding.n[name])
}

func (p *probeTask) PreCommit(_ context.Context, o connect.Offsets) (connect.Offsets, error) {
	p.called("PreCommit")
	if p.paused != nil {
		p.tc.Resume(*p.paused)
		p.paused = nil
	}
	n, _ := preCommits.LoadOrStore(p.tc.Connector(), new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return o, nil
}

// preCommits counts the PreCommit calls of probe sinks, by connector name.
var preCommits sync.Map

func preCommitCount(name string) int64 {
	if n, ok := preCommits.Load(name); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}
func (p *probeTask) Stop() error {
	p.called("Stop")
	p.stopped.Store(true)
	return nil
}

func registerTestPlugins(r *connect.Registry) {
	r.Register(connect.Plugin{Name: "probe-sink", Doc: "A sink for tests.", Config: probeConfig{},
		New: func() connect.Connector { return &probeConnector{} }})
	for _, p := range extraTestPlugins {
		r.Register(p)
	}
}

// probeSource emits {"n": i} records for i in [0, count); every record whose n is a multiple
// of bad.every is reported as malformed instead.
type probeSourceConfig struct {
	Topic    string `config:"topic" required:"true" doc:"Where records go."`
	Count    int    `config:"count" default:"20" doc:"Records to emit."`
	BadEvery int    `config:"bad.every" default:"0" doc:"Report every n-th record as malformed; 0 never."`
	Mode     string `config:"mode" default:"ok" enum:"ok,panic-ack,flaky-poll" doc:"How the source misbehaves: panic in Acknowledged, or fail polls retriably (poll.failures times) first."`
	Failures int    `config:"poll.failures" default:"3" doc:"Retriable poll failures in flaky-poll mode."`
	PadAt    int    `config:"pad.at" default:"-1" doc:"The record whose n this is gets a field pad of pad.bytes characters; -1 none."`
	PadBytes int    `config:"pad.bytes" default:"0" doc:"The size of the pad."`
}

type probeSourceConnector struct{ connect.Base }

func (*probeSourceConnector) NewTask() connect.SourceTask { return &probeSourceTask{} }

type probeSourceTask struct {
	cfg      probeSourceConfig
	tc       connect.SourceTaskContext
	next     int
	failures int
}

func (p *probeSourceTask) Acknowledged(context.Context, connect.Record) error {
	if p.cfg.Mode == "panic-ack" {
		panic("acknowledging went wrong")
	}
	return nil
}

func (p *probeSourceTask) Start(ctx context.Context, cfg connect.Config, tc connect.SourceTaskContext) error {
	c, err := connect.Decode[probeSourceConfig](cfg)
	if err != nil {
		return err
	}
	p.cfg, p.tc = c, tc
	off, err := tc.Offset(ctx, map[string]any{"probe": "p"})
	if err != nil {
		return err
	}
	if n, ok := off["n"].(float64); ok {
		p.next = int(n) + 1
	}
	return nil
}

func (p *probeSourceTask) Poll(ctx context.Context) ([]connect.Record, error) {
	if p.cfg.Mode == "flaky-poll" && p.failures < p.cfg.Failures {
		p.failures++
		return nil, connect.Retriable(errors.New("device gateway unreachable"))
	}
	if p.next >= p.cfg.Count {
		<-ctx.Done()
		return nil, nil
	}
	var out []connect.Record
	for ; p.next < p.cfg.Count; p.next++ {
		rec := connect.Record{Topic: p.cfg.Topic, Key: fmt.Sprint(p.next), Value: map[string]any{"n": int64(p.next)},
			SourcePartition: map[string]any{"probe": "p"}, SourceOffset: map[string]any{"n": p.next}}
		if p.next == p.cfg.PadAt {
			rec.Value.(map[string]any)["pad"] = strings.Repeat("x", p.cfg.PadBytes)
		}
		if p.cfg.BadEvery > 0 && p.next%p.cfg.BadEvery == 0 {
			rec.Value = []byte(fmt.Sprintf("garbage-%d", p.next))
			if err := p.tc.Report(ctx, rec, connect.BadField("payload", rec.Value, "not JSON")); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

func (p *probeSourceTask) Stop() error { return nil }

func init() {
	extraTestPlugins = append(extraTestPlugins, connect.Plugin{Name: "probe-source", Doc: "A source for tests.",
		Config: probeSourceConfig{}, New: func() connect.Connector { return &probeSourceConnector{} }})
}

var extraTestPlugins []connect.Plugin
