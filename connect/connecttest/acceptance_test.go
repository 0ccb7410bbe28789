package connecttest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// These tests run the acceptance checks against fake plugins over an in-memory "server", and
// check that the checks pass a plugin that does its job and fail one that drops a record,
// changes a value, repeats records it promised not to, or leaks a goroutine.

// fakeT is a testing.TB that records failures instead of failing the test it wraps; Fatal
// ends the check's goroutine as testing's does. Everything else goes to the real test.
type fakeT struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) { f.record(fmt.Sprintf(format, args...)) }
func (f *fakeT) Error(args ...any)                 { f.record(fmt.Sprint(args...)) }
func (f *fakeT) Fail()                             { f.record("Fail") }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeT) Fatal(args ...any) { f.record(fmt.Sprint(args...)); runtime.Goexit() }
func (f *fakeT) FailNow()          { f.record("FailNow"); runtime.Goexit() }

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errors) > 0
}

func (f *fakeT) record(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, msg)
}

// runCheck runs a check with a fakeT and returns its failures, joined.
func runCheck(t *testing.T, check func(testing.TB)) string {
	t.Helper()
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(ft)
	}()
	<-done
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return strings.Join(ft.errors, "\n")
}

// fakeConfig is the fake plugins' configuration.
type fakeConfig struct {
	Topic string `config:"kafka.topic" default:"fake" doc:"Topic of the fake source's records."`
}

// register registers a plugin in a registry of its own, which sets its type.
func register(t *testing.T, name string, newConn func() connect.Connector) connect.Plugin {
	t.Helper()
	reg := connect.NewRegistry()
	reg.Register(connect.Plugin{Name: name, Doc: "A fake for the acceptance check's own tests.", Config: fakeConfig{}, New: newConn})
	p, _ := reg.Lookup(name)
	return p
}

// faults are what a fake plugin gets wrong.
type faults struct {
	drop      string        // suffix of the id of a record it loses
	change    string        // suffix of the id of a record whose reading it changes
	duplicate bool          // a sink stores records again when they are delivered again
	leak      chan struct{} // a goroutine of the task waits for it to close
	report    bool          // a sink hands every record to the error policy
	noResume  bool          // a source ignores its stored offset
	never     bool          // a sink never lets an offset be committed
}

// fakeStore is the sink's "server": rows by id, as Read returns them.
type fakeStore struct {
	mu   sync.Mutex
	rows map[string][]map[string]any
}

func (s *fakeStore) read(context.Context, connect.SinkTask) ([]map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, rows := range s.rows {
		out = append(out, rows...)
	}
	return out, nil
}

type fakeSink struct {
	connect.Base
	store *fakeStore
	f     faults
}

func (c *fakeSink) NewTask() connect.SinkTask { return &fakeSinkTask{store: c.store, f: c.f} }

type fakeSinkTask struct {
	store *fakeStore
	f     faults
	tc    connect.SinkTaskContext
	stop  chan struct{}
}

func (k *fakeSinkTask) Start(_ context.Context, _ connect.Config, tc connect.SinkTaskContext) error {
	k.tc, k.stop = tc, make(chan struct{})
	go func() { <-k.stop }() // a goroutine of the task that Stop ends
	if k.f.leak != nil {
		go func() { <-k.f.leak }()
	}
	return nil
}

func (k *fakeSinkTask) Put(ctx context.Context, batch []connect.Record) error {
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	for _, r := range batch {
		if k.f.report {
			if err := k.tc.Report(ctx, r, fmt.Errorf("refused")); err != nil {
				return err
			}
			continue
		}
		id := r.Key.(string)
		if k.f.drop != "" && strings.HasSuffix(id, k.f.drop) {
			continue
		}
		row := maps.Clone(r.Value.(map[string]any))
		if k.f.change != "" && strings.HasSuffix(id, k.f.change) {
			row["reading"] = row["reading"].(float64) + 0.001
		}
		row[MetaKey], row[MetaTime], row[MetaOffset] = r.Key, r.Time.UnixMilli(), r.KafkaOffset
		if len(k.store.rows[id]) > 0 && !k.f.duplicate {
			k.store.rows[id] = k.store.rows[id][:0]
		}
		k.store.rows[id] = append(k.store.rows[id], row)
	}
	return nil
}

func (k *fakeSinkTask) PreCommit(_ context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	if k.f.never {
		return nil, nil
	}
	return offsets, nil
}

func (k *fakeSinkTask) Stop() error {
	close(k.stop)
	return nil
}

func fakeSinkPlugin(t *testing.T, f faults) (connect.Plugin, *fakeStore) {
	store := &fakeStore{rows: map[string][]map[string]any{}}
	return register(t, "fake-sink", func() connect.Connector { return &fakeSink{store: store, f: f} }), store
}

func TestCheckSinkPassesAGoodSink(t *testing.T) {
	for _, idempotent := range []bool{true, false} {
		p, store := fakeSinkPlugin(t, faults{})
		if msg := runCheck(t, func(tb testing.TB) {
			CheckSink(tb, p, SinkAcceptance{Read: store.read, Idempotent: idempotent, Timeout: 2 * time.Second})
		}); msg != "" {
			t.Errorf("idempotent %v: the check failed a good sink:\n%s", idempotent, msg)
		}
	}
}

func TestCheckSinkPassesAnAtLeastOnceSinkThatPromisesNoMore(t *testing.T) {
	p, store := fakeSinkPlugin(t, faults{duplicate: true})
	if msg := runCheck(t, func(tb testing.TB) {
		CheckSink(tb, p, SinkAcceptance{Read: store.read, Timeout: 2 * time.Second})
	}); msg != "" {
		t.Errorf("the check failed a sink that stores replayed records again without promising otherwise:\n%s", msg)
	}
}

func TestCheckSinkFails(t *testing.T) {
	leak := make(chan struct{})
	t.Cleanup(func() { close(leak) })
	for _, tc := range []struct {
		name string
		f    faults
		want []string // in the failure message
	}{
		{"when a record is dropped", faults{drop: "-005"}, []string{"plugin fake-sink", "record 5 (", `-005": missing`}},
		{"when a value is changed", faults{change: "-007"}, []string{"plugin fake-sink", "record 7 (", `field "reading" = 22.591 (float64), want 22.59 (float64)`}},
		{"when a replay stores records twice", faults{duplicate: true}, []string{"after a new task was given the records again", "stored 2 times, want once"}},
		{"when a goroutine is leaked", faults{leak: leak}, []string{"plugin fake-sink: 2 goroutine(s) it started still run", "fakeSinkTask).Start.func2"}},
		{"when records go to the error policy", faults{report: true}, []string{"went to the error policy", "refused"}},
		{"when offsets are never committed", faults{never: true}, []string{"the records are never committed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, store := fakeSinkPlugin(t, tc.f)
			msg := runCheck(t, func(tb testing.TB) {
				CheckSink(tb, p, SinkAcceptance{Read: store.read, Idempotent: true, Timeout: time.Second})
			})
			if msg == "" {
				t.Fatal("the check passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the failure message does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

// fakeQueue is the source's outside system: a log of rows as JSON text.
type fakeQueue struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when a line is added
	acked   int
}

func newFakeQueue() *fakeQueue { return &fakeQueue{changed: make(chan struct{})} }

func (q *fakeQueue) write(_ context.Context, rows []map[string]any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, row := range rows {
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		q.lines = append(q.lines, string(b))
	}
	close(q.changed)
	q.changed = make(chan struct{})
	return nil
}

type fakeSource struct {
	connect.Base
	q *fakeQueue
	f faults
}

func (c *fakeSource) NewTask() connect.SourceTask { return &fakeSourceTask{q: c.q, f: c.f} }

type fakeSourceTask struct {
	q    *fakeQueue
	f    faults
	cfg  fakeConfig
	pos  int
	stop chan struct{}
}

var fakePartition = map[string]any{"queue": "q"}

func (k *fakeSourceTask) Start(ctx context.Context, raw connect.Config, tc connect.SourceTaskContext) error {
	cfg, err := connect.Decode[fakeConfig](raw)
	if err != nil {
		return err
	}
	k.cfg, k.stop = cfg, make(chan struct{})
	off, err := tc.Offset(ctx, fakePartition)
	if err != nil {
		return err
	}
	if pos, ok := off["pos"].(float64); ok && !k.f.noResume {
		k.pos = int(pos)
	}
	if k.f.leak != nil {
		go func() { <-k.f.leak }()
	}
	return nil
}

func (k *fakeSourceTask) Poll(ctx context.Context) ([]connect.Record, error) {
	k.q.mu.Lock()
	lines, changed := k.q.lines[k.pos:], k.q.changed
	k.q.mu.Unlock()
	if len(lines) == 0 {
		select {
		case <-changed:
		case <-ctx.Done():
		}
		return nil, nil
	}
	var out []connect.Record
	for _, line := range lines {
		k.pos++
		switch {
		case k.f.drop != "" && strings.Contains(line, k.f.drop+`"`):
			continue
		case k.f.change != "" && strings.Contains(line, k.f.change+`"`):
			line = strings.Replace(line, `"note":"reading`, `"note":"Reading`, 1)
		}
		out = append(out, connect.Record{Topic: k.cfg.Topic, Value: line, SourcePartition: fakePartition,
			SourceOffset: map[string]any{"pos": k.pos}})
	}
	return out, nil
}

func (k *fakeSourceTask) Acknowledged(context.Context, connect.Record) error {
	k.q.mu.Lock()
	defer k.q.mu.Unlock()
	k.q.acked++
	return nil
}

func (k *fakeSourceTask) Stop() error { return nil }

func fakeSourcePlugin(t *testing.T, f faults) (connect.Plugin, *fakeQueue) {
	q := newFakeQueue()
	return register(t, "fake-source", func() connect.Connector { return &fakeSource{q: q, f: f} }), q
}

func TestCheckSourcePassesAGoodSource(t *testing.T) {
	p, q := fakeSourcePlugin(t, faults{})
	if msg := runCheck(t, func(tb testing.TB) {
		CheckSource(tb, p, SourceAcceptance{Write: q.write, Resumes: true, Records: 5, Timeout: 2 * time.Second})
	}); msg != "" {
		t.Errorf("the check failed a good source:\n%s", msg)
	}
	if q.acked != 10 {
		t.Errorf("%d records acknowledged, want 10", q.acked)
	}
}

func TestCheckSourcePassesASourceThatRepeatsWithoutPromisingNotTo(t *testing.T) {
	p, q := fakeSourcePlugin(t, faults{noResume: true})
	if msg := runCheck(t, func(tb testing.TB) {
		CheckSource(tb, p, SourceAcceptance{Write: q.write, Records: 5, Timeout: 2 * time.Second})
	}); msg != "" {
		t.Errorf("the check failed an at-least-once source:\n%s", msg)
	}
}

func TestCheckSourceFails(t *testing.T) {
	leak := make(chan struct{})
	t.Cleanup(func() { close(leak) })
	for _, tc := range []struct {
		name string
		f    faults
		want []string
	}{
		{"when a record is dropped", faults{drop: "-003"}, []string{"plugin fake-source", "before the restart", "1 of 5 records did not come", `-003"`}},
		{"when a value is changed", faults{change: "-006"}, []string{"plugin fake-source", "after the restart: record 6", `field "note" = "Reading 6: ü, \"quoted\" & spaced", want "reading 6: ü, \"quoted\" & spaced"`}},
		{"when committed records come again", faults{noResume: true}, []string{"after the restart: record 0", "came again, though it was committed"}},
		{"when a goroutine is leaked", faults{leak: leak}, []string{"plugin fake-source: 2 goroutine(s) it started still run", "fakeSourceTask).Start.func1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, q := fakeSourcePlugin(t, tc.f)
			msg := runCheck(t, func(tb testing.TB) {
				CheckSource(tb, p, SourceAcceptance{Write: q.write, Resumes: true, Records: 5, Timeout: time.Second})
			})
			if msg == "" {
				t.Fatal("the check passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the failure message does not say %q:\n%s", w, msg)
				}
			}
		})
	}
}

// A source without an outside system: record n is {"seq": n}, resumed from the stored offset.
type fakeGenerator struct{ connect.Base }

func (*fakeGenerator) NewTask() connect.SourceTask { return &fakeGeneratorTask{} }

type fakeGeneratorTask struct{ next, end int }

func (k *fakeGeneratorTask) Start(ctx context.Context, _ connect.Config, tc connect.SourceTaskContext) error {
	off, err := tc.Offset(ctx, fakePartition)
	if seq, ok := off["seq"].(float64); ok {
		k.next = int(seq) + 1
	}
	k.end = k.next + 4
	return err
}

func (k *fakeGeneratorTask) Poll(ctx context.Context) ([]connect.Record, error) {
	if k.next >= k.end {
		<-ctx.Done()
		return nil, nil
	}
	r := connect.Record{Topic: "gen", Value: map[string]any{"seq": int64(k.next)}, SourcePartition: fakePartition,
		SourceOffset: map[string]any{"seq": k.next}}
	k.next++
	return []connect.Record{r}, nil
}

func (k *fakeGeneratorTask) Stop() error { return nil }

func TestCheckSourceOfGeneratedRecords(t *testing.T) {
	p := register(t, "fake-generator", func() connect.Connector { return &fakeGenerator{} })
	gen := func(n int) map[string]any { return map[string]any{"seq": n} }
	if msg := runCheck(t, func(tb testing.TB) {
		CheckSource(tb, p, SourceAcceptance{Generated: gen, IDField: "seq", Resumes: true, Records: 4, Timeout: 2 * time.Second})
	}); msg != "" {
		t.Errorf("the check failed a good generator:\n%s", msg)
	}
	// Told to expect more per phase than the task makes, the check fails naming a missing one.
	msg := runCheck(t, func(tb testing.TB) {
		CheckSource(tb, p, SourceAcceptance{Generated: gen, IDField: "seq", Resumes: true, Records: 5, Timeout: time.Second})
	})
	if !strings.Contains(msg, `1 of 5 records did not come, such as seq "4"`) {
		t.Errorf("failure message %q", msg)
	}
}

func TestDiffRows(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	rec := connect.Record{Topic: "t", Key: "a", Value: map[string]any{"id": "a", "x": 1.5, "s": "é"}, Time: at, KafkaPartition: 1, KafkaOffset: 7}
	wants := map[string]want{"a": sinkWant(3, rec)}
	good := func(extra map[string]any) map[string]any {
		row := map[string]any{"id": "a", "x": 1.5, "s": "é"}
		maps.Copy(row, extra)
		return row
	}
	for _, tc := range []struct {
		name string
		rows []map[string]any
		once bool
		want string // a problem's text; "" for none
	}{
		{"equal", []map[string]any{good(nil)}, true, ""},
		{"representations", []map[string]any{good(map[string]any{"x": json.Number("1.5"), "s": []byte("é"),
			MetaTime: at, MetaKey: []byte("a"), MetaPartition: int64(1), MetaOffset: 7.0, MetaTopic: "t"})}, true, ""},
		{"time as epoch millis", []map[string]any{good(map[string]any{MetaTime: at.UnixMilli()})}, true, ""},
		{"time as text", []map[string]any{good(map[string]any{MetaTime: at.UTC().Format(time.RFC3339Nano)})}, true, ""},
		{"missing", nil, true, `record 3 (t/1@7), id "a": missing`},
		{"twice", []map[string]any{good(nil), good(nil)}, true, "stored 2 times, want once"},
		{"twice allowed", []map[string]any{good(nil), good(nil)}, false, ""},
		{"changed", []map[string]any{good(map[string]any{"x": 1.25})}, true, `field "x" = 1.25 (float64), want 1.5 (float64)`},
		{"float32", []map[string]any{good(map[string]any{"x": float32(1.1)})}, true, ""},
		{"number as text", []map[string]any{good(map[string]any{"x": "1.5"})}, true, `field "x" = "1.5", want 1.5 (float64)`},
		{"field missing", []map[string]any{{"id": "a", "x": 1.5}}, true, `field "s" missing`},
		{"wrong time", []map[string]any{good(map[string]any{MetaTime: at.Add(time.Millisecond)})}, true, "@time ="},
		{"wrong offset", []map[string]any{good(map[string]any{MetaOffset: 8})}, true, "@offset = 8 (int), want 7 (int64)"},
		{"unexpected", []map[string]any{good(nil), {"id": "b"}}, true, `no record written: id "b"`},
		{"no id", []map[string]any{good(nil), {"x": 1}}, true, `has no "id" field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := diffRows("id", wants, tc.rows, tc.once)
			if tc.name == "float32" { // 1.1 as a float32 is not 1.1
				tc.want = `field "x" = 1.1 (float32), want 1.5 (float64)`
			}
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tc.want != "" && !strings.Contains(strings.Join(problems, "\n"), tc.want):
				t.Errorf("problems %q, want one saying %q", problems, tc.want)
			}
		})
	}
}

func TestSameValue(t *testing.T) {
	for _, tc := range []struct {
		want, got any
		same      bool
	}{
		{int64(3), 3.0, true},
		{3.0, json.Number("3"), true},
		{int64(1 << 60), float64(1 << 60), true},
		{int64(1<<60 + 1), float64(1 << 60), false}, // beyond a float's exact integers
		{0.1, float32(0.1), false},
		{"x", []byte("x"), true},
		{"3", 3, false},
		{true, "true", false},
		{nil, nil, true},
		{nil, "", false},
		{map[string]any{"a": int64(1)}, map[string]any{"a": 1.0}, true},
		{map[string]any{"a": 1}, map[string]any{"a": 1, "b": 2}, false},
		{[]any{1, "x"}, []any{1.0, "x"}, true},
	} {
		if got := sameValue(tc.want, tc.got); got != tc.same {
			t.Errorf("sameValue(%#v, %#v) = %v, want %v", tc.want, tc.got, got, tc.same)
		}
	}
}

func TestGoroutinesFindsOnlyThoseStartedUnderDo(t *testing.T) {
	g := TrackGoroutines("p")
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	g.Do(func() {
		go func() { // and one it starts in turn
			go func() { started.Done(); <-release }()
			started.Done()
			<-release
		}()
	})
	other := make(chan struct{})
	go func() { <-other }() // not the plugin's
	defer close(other)
	started.Wait()
	left, err := g.running()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, gg := range left {
		n += gg.count
	}
	if n != 2 {
		t.Fatalf("%d goroutines found, want the 2 started under Do: %v", n, left)
	}
	msg := runCheck(t, func(tb testing.TB) { g.CheckStopped(tb, 50*time.Millisecond) })
	if !strings.Contains(msg, "plugin p: 2 goroutine(s) it started still run") || !strings.Contains(msg, "TestGoroutinesFindsOnlyThoseStartedUnderDo") {
		t.Errorf("failure message %q", msg)
	}
	close(release)
	if msg := runCheck(t, func(tb testing.TB) { g.CheckStopped(tb, 10*time.Second) }); msg != "" {
		t.Errorf("after the goroutines ended: %s", msg)
	}
}

func TestParseGoroutineProfile(t *testing.T) {
	profile := "goroutine profile: total 3\n" +
		"2 @ 0x47d92e 0x480b25 0x4dc3a9 0x483e41\n" +
		"# labels: {\"sluice.acceptance\":\"x#1\"}\n" +
		"#\t0x480b24\ttime.Sleep+0x164\t\t/usr/local/go/src/runtime/time.go:363\n" +
		"#\t0x4dc3a8\tmain.main.func1.1+0x28\t/tmp/main.go:14\n" +
		"\n" +
		"1 @ 0x442931 0x47cd1d\n" +
		"#\t0x4c89f0\truntime/pprof.writeRuntimeProfile+0xb0\t/usr/local/go/src/runtime/pprof/pprof.go:851\n\n"
	groups, err := parseGoroutineProfile(strings.NewReader(profile))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].count != 2 || groups[0].labels != `{"sluice.acceptance":"x#1"}` ||
		len(groups[0].frames) != 2 || groups[0].frames[1] != "main.main.func1.1 /tmp/main.go:14" ||
		groups[1].count != 1 || groups[1].labels != "" {
		t.Errorf("parsed %+v", groups)
	}
}
