package connecttest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// The acceptance checks run a plugin against its real test server the way the runtime would,
// as the acceptance test of Conduit's connector SDK does: CheckSink writes generated records
// and reads them back from the server; CheckSource has records written to the outside system
// and polls them. Both stop and start a task again in between, to see that what was committed
// is neither lost nor (where the connector promises it) repeated, and both fail when a
// goroutine the plugin started outlives its Stop. The checks compare; the callbacks a
// connector's test gives only write or read.
//
// Each record the checks generate has a value
//
//	{"id": "<run>-007", "reading": 22.59, "note": "reading 7: ü, \"quoted\" & spaced"}
//
// (a string id, distinct per run and record, a float and a string), as the JSON converter
// hands it to a sink: a map[string]any.

// SinkAcceptance says how CheckSink runs a sink plugin against its test server.
type SinkAcceptance struct {
	// Config is the connector configuration, pointing at the test server. CheckSink sets name
	// (a new one per run), connector.class, tasks.max (1) and topics when they are missing.
	Config connect.Config
	// Topic of the records; a new one per run (UniqueName("acc")) when empty.
	Topic string
	// Records is how many records are written; 20 when 0. They are spread over two Kafka
	// partitions and handed to Put in two batches.
	Records int
	// Read returns what the test server holds of the run's records, one row per record
	// stored, duplicates included: the fields of the record value by name, as plain Go values
	// (numbers of any type, text as string or []byte, times as time.Time), and any of the
	// Meta keys (MetaKey, MetaTime, ...) for what the server keeps of the record itself. task
	// is the running task, for sinks that serve what they hold themselves. Read does not
	// compare: CheckSink calls it again until the rows match or Timeout passes, for servers
	// that make writes visible later.
	Read func(ctx context.Context, task connect.SinkTask) ([]map[string]any, error)
	// Idempotent says the connector promises that records delivered again are stored once,
	// whether a new task is given them after a crash or the same task after a failed Put:
	// the replays must leave no duplicate. Without it a replay may store records again, but
	// must lose none.
	Idempotent bool
	// Timeout bounds each wait: Put asking for retries, PreCommit holding offsets back, Read
	// finding the records, and the plugin's goroutines ending after Stop. 60s when 0.
	Timeout time.Duration
}

// SourceAcceptance says how CheckSource runs a source plugin against its outside system.
type SourceAcceptance struct {
	// Config is the connector configuration, pointing at the outside system. CheckSource sets
	// name (a new one per run), connector.class and tasks.max (1) when they are missing.
	Config connect.Config
	// Records is how many records are written before the restart, and again after it; 20
	// when 0.
	Records int
	// Write makes the outside system hold rows, once the task has started: it publishes them,
	// appends them to a file... The record a task makes of a row must have the row as its
	// value: a map, or JSON text of an object (a string or []byte).
	Write func(ctx context.Context, rows []map[string]any) error
	// Generated is for sources that make up their records, with no outside system (leave Write
	// nil): the value the n-th record the task produces should have, from 0, counted across
	// the restart. The records must come in this order; the check takes at least Records of
	// them before the restart and as many after it, and checks every one it polled. IDField
	// names the field that tells the records apart.
	Generated func(n int) map[string]any
	// IDField is the value field that tells records apart with Generated; "id" when empty.
	IDField string
	// Resumes says the connector promises that a task restarted with the offsets stored for
	// the records it produced (and the acknowledgements it was given) does not produce those
	// records again. Without it they may come again, but no other record may.
	Resumes bool
	// Timeout bounds each wait: polling for the records, and the plugin's goroutines ending
	// after Stop. 60s when 0.
	Timeout time.Duration
}

const (
	defaultRecords = 20
	defaultTimeout = 60 * time.Second
	// quietPoll is how long the source check polls on after it has every record, for records
	// that should not come (duplicates, records re-delivered): absence cannot be awaited.
	quietPoll = time.Second
)

var nameSeq struct {
	sync.Mutex
	n int
}

// UniqueName returns a name unique to this process and run, for topics, tables and
// connectors on shared test servers: prefix, a time-based part and a counter, joined by dashes.
func UniqueName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, nameSeq.n)
}

// Row is the value of the n-th generated record of a run: {"id", "reading", "note"}.
func Row(run string, n int) map[string]any {
	return map[string]any{
		"id":      fmt.Sprintf("%s-%03d", run, n),
		"reading": 20 + float64(n)*0.37,
		"note":    fmt.Sprintf("reading %d: ü, \"quoted\" & spaced", n),
	}
}

// Acknowledge tells a source task that implements connect.SourceAcker that Kafka has the
// records, one by one as the runtime does once Kafka acknowledged each. Tests call
// Acknowledged through it only, so that a change of its signature is made here.
func Acknowledge(ctx context.Context, task connect.SourceTask, records []connect.Record) error {
	acker, ok := task.(connect.SourceAcker)
	if !ok {
		return nil
	}
	for _, rec := range records {
		if err := acker.Acknowledged(ctx, rec); err != nil {
			return fmt.Errorf("acknowledging %s: %w", rec.Topic, err)
		}
	}
	return nil
}

// run is what both checks share: the plugin, its goroutines, and what to stop on the way out.
type run struct {
	t       testing.TB
	p       connect.Plugin
	name    string
	timeout time.Duration
	g       *Goroutines
	cc      *ConnectorContext
	// connStop is the clean-up that stops the connector.
	connStop *func()
	stops    []*func() // clean-ups for a check that ends early, in the order registered
}

func newRun(t testing.TB, p connect.Plugin, want connect.PluginType, timeout time.Duration) *run {
	t.Helper()
	if p.Type != want {
		t.Fatalf("plugin %s is a %s, not a %s", p.Name, p.Type, want)
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &run{t: t, p: p, name: UniqueName("acc-" + p.Name), timeout: timeout, g: TrackGoroutines(p.Name),
		cc: &ConnectorContext{T: t}}
}

// do runs a call into the plugin, tracking the goroutines it starts.
func (r *run) do(f func() error) error {
	var err error
	r.g.Do(func() { err = f() })
	return err
}

// fatalf fails the check, naming the plugin.
func (r *run) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("plugin %s: "+format, append([]any{r.p.Name}, args...)...)
}

func (r *run) errorf(format string, args ...any) {
	r.t.Helper()
	r.t.Errorf("plugin %s: "+format, append([]any{r.p.Name}, args...)...)
}

// config completes the connector configuration as the runtime hands it over.
func (r *run) config(cfg connect.Config, extra connect.Config) connect.Config {
	out := maps.Clone(cfg)
	if out == nil {
		out = connect.Config{}
	}
	defaults := connect.Config{"name": r.name, "connector.class": r.p.Name, "tasks.max": "1"}
	maps.Copy(defaults, extra)
	for k, v := range defaults {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	r.name = out["name"]
	return out
}

// startConnector starts the connector and returns the configuration of its one task.
func (r *run) startConnector(conn connect.Connector, cfg connect.Config) connect.Config {
	r.t.Helper()
	ctx := r.t.Context()
	if err := r.do(func() error { return conn.Start(ctx, cfg, r.cc) }); err != nil {
		_ = r.do(conn.Stop) // Stop follows a failed Start too
		r.fatalf("connector Start: %v", err)
	}
	r.connStop = r.onExit(func() { _ = r.do(conn.Stop) })
	var tasks []connect.Config
	err := r.do(func() error {
		var err error
		tasks, err = conn.TaskConfigs(1)
		return err
	})
	if err != nil || len(tasks) != 1 {
		r.fatalf("TaskConfigs(1) = %d configurations, %v; want 1", len(tasks), err)
	}
	return tasks[0]
}

// onExit registers a clean-up for a check that ends early; setting *f to nil drops it.
func (r *run) onExit(f func()) *func() {
	r.stops = append(r.stops, &f)
	return &f
}

// exit runs the clean-ups left, last registered first.
func (r *run) exit() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		if f := *r.stops[i]; f != nil {
			f()
		}
	}
}

// stop calls a Stop of the plugin on the normal path, and forgets its clean-up.
func (r *run) stop(what string, cleanup *func(), stop func() error) {
	r.t.Helper()
	*cleanup = nil
	if err := r.do(stop); err != nil {
		r.errorf("%s Stop: %v", what, err)
	}
}

// finish stops the connector and checks that nothing the plugin started still runs and that
// it raised no error.
func (r *run) finish(conn connect.Connector) {
	r.t.Helper()
	*r.connStop = nil
	if err := r.do(conn.Stop); err != nil {
		r.errorf("connector Stop: %v", err)
	}
	r.g.CheckStopped(r.t, r.timeout)
	r.cc.mu.Lock()
	raised := r.cc.RaisedErrors
	r.cc.mu.Unlock()
	if len(raised) > 0 {
		r.errorf("the connector raised errors: %v", raised)
	}
}

// await calls cond until it reports done or the timeout passes, and reports whether it was.
func (r *run) await(cond func() bool) bool {
	deadline := time.Now().Add(r.timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// CheckSink runs a sink plugin against its real test server, as the runtime would: it starts
// the connector and one task (Open when the task is connect.PartitionAware), Puts the
// generated records in two batches, calls PreCommit until it lets every offset be committed,
// and reads the records back through a.Read until each is there once, with its content. It
// then replays them as after a crash: a new task, started and opened (its Seeks honoured),
// is Put the records again, and then the same batches once more, as after a Put that failed;
// every record must be there after each, once if a.Idempotent. Last, it stops the connector
// and fails if a goroutine the plugin started still runs. Records the task reports to the
// error policy fail the check. Failures name the plugin, the record and the field.
func CheckSink(t testing.TB, p connect.Plugin, a SinkAcceptance) {
	t.Helper()
	r := newRun(t, p, connect.SinkType, a.Timeout)
	defer r.exit()
	if a.Read == nil {
		r.fatalf("SinkAcceptance.Read is nil: the check needs to read the records back")
	}
	n := a.Records
	if n <= 0 {
		n = defaultRecords
	}
	topic := a.Topic
	if topic == "" {
		topic = UniqueName("acc")
	}
	cfg := r.config(a.Config, connect.Config{"topics": topic})
	records, wants := sinkRecords(r.name, topic, n)

	conn, ok := p.New().(connect.SinkConnector)
	if !ok {
		r.fatalf("New returns no SinkConnector")
	}
	taskCfg := r.startConnector(conn, cfg)

	// The first task writes every record once.
	task, sc, done := r.startSinkTask(conn, taskCfg, records)
	r.put(task, sc, records, true)
	r.readBack("after the first Put", a.Read, task, wants, true)
	done()

	// A new task is given them again from where it seeks, as after a crash that lost the
	// commit; then the same batches once more, as when a Put failed after writing some and
	// the runtime hands the batch in again.
	task, sc, done = r.startSinkTask(conn, taskCfg, records)
	r.put(task, sc, records, true)
	r.readBack("after a new task was given the records again", a.Read, task, wants, a.Idempotent)
	r.put(task, sc, records, false)
	r.readBack("after the same task was given them once more", a.Read, task, wants, a.Idempotent)
	done()

	r.finish(conn)
}

// sinkRecords generates n records of topic over two partitions, as the runtime hands them to
// Put, and what the outside system should hold of each, by id.
func sinkRecords(run, topic string, n int) ([]connect.Record, map[string]want) {
	base := time.Now().Add(-time.Duration(n+60) * time.Second).Truncate(time.Millisecond)
	records := make([]connect.Record, n)
	wants := make(map[string]want, n)
	for i := range records {
		v := Row(run, i)
		records[i] = connect.Record{Topic: topic, Key: v["id"], Value: v, Time: base.Add(time.Duration(i) * time.Second),
			KafkaPartition: int32(i % 2), KafkaOffset: 100 + int64(i/2)}
		wants[v["id"].(string)] = sinkWant(i, records[i])
	}
	return records, wants
}

// partitionsOf lists the partitions of records, and the offsets to commit after them.
func partitionsOf(records []connect.Record) ([]connect.TopicPartition, connect.Offsets) {
	offsets := connect.Offsets{}
	var tps []connect.TopicPartition
	for _, rec := range records {
		tp := connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}
		if _, ok := offsets[tp]; !ok {
			tps = append(tps, tp)
		}
		offsets[tp] = max(offsets[tp], rec.KafkaOffset+1)
	}
	return tps, offsets
}

// startSinkTask starts a task and opens the records' partitions; done closes them and stops
// it.
func (r *run) startSinkTask(conn connect.SinkConnector, cfg connect.Config, records []connect.Record) (connect.SinkTask, *SinkContext, func()) {
	r.t.Helper()
	ctx := r.t.Context()
	task := conn.NewTask()
	sc := NewSinkContext(r.t, 0)
	sc.Name = r.name
	tps, _ := partitionsOf(records)
	sc.Assigned = tps
	if err := r.do(func() error { return task.Start(ctx, cfg, sc) }); err != nil {
		_ = r.do(task.Stop)
		r.fatalf("task Start: %v", err)
	}
	cleanup := r.onExit(func() { _ = r.do(task.Stop) })
	pa, aware := task.(connect.PartitionAware)
	if aware {
		if err := r.do(func() error { return pa.Open(ctx, tps) }); err != nil {
			r.fatalf("task Open(%v): %v", tps, err)
		}
	}
	return task, sc, func() {
		r.t.Helper()
		if aware {
			if err := r.do(func() error { return pa.Close(ctx, tps) }); err != nil {
				r.errorf("task Close(%v): %v", tps, err)
			}
		}
		r.stop("task", cleanup, task.Stop)
	}
}

// put hands the records to the task in two batches, as the runtime does: with seeks, without
// those below a partition's Seek; again after a retriable error. Then it calls PreCommit until
// it lets the offsets after them be committed. No record may go to the error policy.
func (r *run) put(task connect.SinkTask, sc *SinkContext, records []connect.Record, seeks bool) {
	r.t.Helper()
	ctx := r.t.Context()
	var deliver []connect.Record
	for _, rec := range records {
		sc.mu.Lock()
		seek, sought := sc.Seeks[connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}]
		sc.mu.Unlock()
		if !seeks || !sought || rec.KafkaOffset >= seek {
			deliver = append(deliver, rec)
		}
	}
	half := len(deliver) / 2
	for _, batch := range [][]connect.Record{deliver[:half], deliver[half:]} {
		if len(batch) == 0 {
			continue
		}
		var err error
		ok := r.await(func() bool {
			err = r.do(func() error { return task.Put(ctx, cloneRecords(batch)) })
			if err != nil && !connect.IsRetriable(err) {
				r.fatalf("Put of records %s to %s: %v", batch[0].Position(), batch[len(batch)-1].Position(), err)
			}
			return err == nil
		})
		if !ok {
			r.fatalf("Put of records %s to %s still asks for a retry after %v: %v", batch[0].Position(),
				batch[len(batch)-1].Position(), r.timeout, err)
		}
	}
	// The runtime asks to commit the offsets after what it handed to Put (none when a Seek
	// skipped every record: PreCommit is still called, as when the task asks for a commit).
	_, want := partitionsOf(deliver)
	var got connect.Offsets
	var err error
	ok := r.await(func() bool {
		err = r.do(func() error {
			var err error
			got, err = task.PreCommit(ctx, maps.Clone(want))
			return err
		})
		if err != nil {
			r.fatalf("PreCommit(%v): %v", want, err)
		}
		for tp, off := range want {
			if got[tp] < off {
				return false
			}
		}
		return true
	})
	if !ok {
		r.fatalf("PreCommit(%v) still returns %v after %v: the records are never committed", want, got, r.timeout)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.Reported) > 0 {
		var lines []string
		for i, rec := range sc.Reported {
			lines = append(lines, fmt.Sprintf("%s (id %v): %v", rec.Position(), rec.Key, sc.Reasons[i]))
		}
		r.fatalf("records of the run went to the error policy:\n\t%s", strings.Join(firstLines(lines, 10), "\n\t"))
	}
}

// cloneRecords copies records and their values, which a task may change, so that each Put
// gets records of its own, as from Kafka.
func cloneRecords(records []connect.Record) []connect.Record {
	out := make([]connect.Record, len(records))
	for i, rec := range records {
		out[i] = rec
		if v, ok := rec.Value.(map[string]any); ok {
			out[i].Value = maps.Clone(v)
		}
	}
	return out
}

// readBack reads the records back until they match, or fails with the differences the last
// read showed.
func (r *run) readBack(when string, read func(context.Context, connect.SinkTask) ([]map[string]any, error),
	task connect.SinkTask, wants map[string]want, once bool) {
	r.t.Helper()
	var problems []string
	var err error
	ok := r.await(func() bool {
		var rows []map[string]any
		if rows, err = read(r.t.Context(), task); err != nil {
			return false
		}
		problems = diffRows("id", wants, rows, once)
		return len(problems) == 0
	})
	if ok {
		return
	}
	if err != nil {
		r.fatalf("%s: reading the records back failed for %v: %v", when, r.timeout, err)
	}
	r.fatalf("%s, what the server holds still differs after %v:\n\t%s", when, r.timeout, strings.Join(firstLines(problems, 20), "\n\t"))
}

// CheckSource runs a source plugin against its outside system, as the runtime would: it
// starts the connector and one task, has a.Write put rows in the outside system, and Polls
// until every record came, each once and with its row as value (with a.Generated, until the
// records the source makes up came in order, each the one expected). After each Poll it
// stores the records' offsets in the task's SourceContext, acknowledges them (Acknowledge)
// and calls Commit when the task is a connect.SourceCommitter, as the runtime does once Kafka
// has them. It then stops the task, starts a new one with the stored offsets, and does it
// again with as many new records: with a.Resumes none of the first may come again. Last, it
// stops the connector and fails if a goroutine the plugin started still runs. Failures name
// the plugin, the record and the field.
func CheckSource(t testing.TB, p connect.Plugin, a SourceAcceptance) {
	t.Helper()
	r := newRun(t, p, connect.SourceType, a.Timeout)
	defer r.exit()
	if (a.Write == nil) == (a.Generated == nil) {
		r.fatalf("SourceAcceptance needs Write, or Generated for a source without an outside system, not both")
	}
	n := a.Records
	if n <= 0 {
		n = defaultRecords
	}
	s := &sourceRun{run: r, a: a, idField: "id", earlier: map[string]want{}}
	if a.Generated != nil && a.IDField != "" {
		s.idField = a.IDField
	}
	cfg := r.config(a.Config, nil)
	conn, ok := p.New().(connect.SourceConnector)
	if !ok {
		r.fatalf("New returns no SourceConnector")
	}
	taskCfg := r.startConnector(conn, cfg)
	sc := NewSourceContext(t, 0)
	sc.Name = r.name
	s.phase("before the restart", conn, taskCfg, sc, n)
	s.phase("after the restart", conn, taskCfg, sc, n)
	if len(s.problems) > 0 {
		r.errorf("the records polled differ from those written:\n\t%s", strings.Join(firstLines(s.problems, 20), "\n\t"))
	}
	r.finish(conn)
}

// sourceRun is the state of CheckSource.
type sourceRun struct {
	*run
	a        SourceAcceptance
	idField  string
	earlier  map[string]want // the records of the phases before, by id
	next     int             // the number of the first record of the next phase
	problems []string
}

// row is the n-th record's value.
func (s *sourceRun) row(n int) map[string]any {
	if s.a.Generated != nil {
		return s.a.Generated(n)
	}
	return Row(s.name, n)
}

// want is what the n-th record should be, and its id.
func (s *sourceRun) want(n int) (string, want) {
	row := s.row(n)
	id, ok := idOf(row[s.idField])
	if !ok {
		s.fatalf("row %d has no %q field: %v", n, s.idField, row)
	}
	return id, want{desc: fmt.Sprintf("record %d", n), fields: row}
}

// phase starts a task, has count records written, and polls until each came. It stops the
// task.
func (s *sourceRun) phase(when string, conn connect.SourceConnector, cfg connect.Config, sc *SourceContext, count int) {
	s.t.Helper()
	from, to := s.next, s.next+count
	ctx := s.t.Context()
	task := conn.NewTask()
	if err := s.do(func() error { return task.Start(ctx, cfg, sc) }); err != nil {
		_ = s.do(task.Stop)
		s.fatalf("%s: task Start: %v", when, err)
	}
	cleanup := s.onExit(func() { _ = s.do(task.Stop) })
	wanted := map[string]want{}
	var rows []map[string]any
	for n := from; n < to; n++ {
		id, w := s.want(n)
		wanted[id] = w
		rows = append(rows, w.fields)
	}
	if s.a.Write != nil {
		if err := s.a.Write(ctx, rows); err != nil {
			s.fatalf("%s: writing %d rows to the outside system: %v", when, len(rows), err)
		}
	}
	p := &poller{sourceRun: s, when: when, wanted: wanted, seen: map[string]int{}, next: from, to: to}
	deadline := time.Now().Add(s.timeout)
	var quietUntil time.Time
	for {
		now := time.Now()
		if p.done() && quietUntil.IsZero() {
			if s.a.Generated != nil {
				break // a source that makes up records never falls quiet
			}
			quietUntil = now.Add(quietPoll)
		}
		if !quietUntil.IsZero() && !now.Before(quietUntil) {
			break
		}
		if now.After(deadline) {
			id, _ := p.missing()
			s.fatalf("%s: after polling for %v, %d of %d records did not come, such as %s %q", when, s.timeout,
				len(wanted)-len(p.seen), len(wanted), s.idField, id)
		}
		until := deadline
		if !quietUntil.IsZero() {
			until = quietUntil
		}
		pctx, cancel := context.WithDeadline(ctx, until)
		var recs []connect.Record
		err := s.do(func() error {
			var err error
			recs, err = task.Poll(pctx)
			return err
		})
		cancel()
		if err != nil && !connect.IsRetriable(err) {
			s.fatalf("%s: Poll: %v", when, err)
		}
		for i := range recs {
			p.take(&recs[i])
		}
		// What the runtime does once Kafka has the records.
		sc.Store(recs)
		if err := s.do(func() error { return Acknowledge(ctx, task, recs) }); err != nil {
			s.fatalf("%s: Acknowledged: %v", when, err)
		}
		if c, ok := task.(connect.SourceCommitter); ok && len(recs) > 0 {
			if err := s.do(func() error { return c.Commit(ctx) }); err != nil {
				s.fatalf("%s: Commit: %v", when, err)
			}
		}
	}
	sc.mu.Lock()
	reasons := slices.Clone(sc.Reasons)
	sc.mu.Unlock()
	if len(reasons) > 0 {
		s.fatalf("%s: %d records went to the error policy, the first for %v", when, len(reasons), reasons[0])
	}
	s.stop("task", cleanup, task.Stop)
	if s.a.Generated != nil {
		to = p.next // the last poll may have gone past the records wanted
	}
	for n := from; n < to; n++ {
		id, w := s.want(n)
		s.earlier[id] = w
	}
	s.next = to
}

// poller checks the records of one phase as they come.
type poller struct {
	*sourceRun
	when   string
	wanted map[string]want
	seen   map[string]int
	next   int // with Generated, the number of the record that comes next
	to     int // the first record of the next phase
}

// done reports whether every record wanted came.
func (p *poller) done() bool {
	if p.a.Generated != nil {
		return p.next >= p.to
	}
	return len(p.seen) == len(p.wanted)
}

// missing names a record that did not come.
func (p *poller) missing() (string, bool) {
	if p.a.Generated != nil {
		id, _ := p.want(p.next)
		return id, true
	}
	for _, id := range slices.Sorted(maps.Keys(p.wanted)) {
		if p.seen[id] == 0 {
			return id, true
		}
	}
	return "", false
}

func (p *poller) problem(format string, args ...any) {
	p.problems = append(p.problems, p.when+": "+fmt.Sprintf(format, args...))
}

// take checks a polled record: it must be a record of the phase that did not come yet, with
// its row as value (with Generated, the one that comes next), or, unless the connector
// promises to resume, one of an earlier phase.
func (p *poller) take(rec *connect.Record) {
	if rec.Topic == "" {
		p.problem("a polled record names no topic: %v", rec.Value)
	}
	row, err := recordRow(*rec)
	if err != nil {
		p.problem("a polled record: %v", err)
		return
	}
	id, ok := idOf(row[p.idField])
	if !ok {
		p.problem("a polled record has no %q field: %v", p.idField, row)
		return
	}
	if w, ok := p.earlier[id]; ok {
		if p.a.Resumes {
			p.problem("%s, %s %q: came again, though it was committed before the restart", w.desc, p.idField, id)
		}
		return
	}
	if p.a.Generated != nil {
		nextID, w := p.want(p.next)
		if id != nextID {
			p.fatalf("%s: %s %q came where %s, %s %q, should: the records are not the stream Generated describes",
				p.when, p.idField, id, w.desc, p.idField, nextID)
		}
		p.next++
		p.seen[id]++
		for _, d := range diffRow(w, row) {
			p.problem("%s, %s %q: %s", w.desc, p.idField, id, d)
		}
		return
	}
	w, ok := p.wanted[id]
	if !ok {
		p.problem("polled a record that is none of those written: %s %q: %v", p.idField, id, row)
		return
	}
	if p.seen[id]++; p.seen[id] > 1 {
		p.problem("%s, %s %q: came %d times", w.desc, p.idField, id, p.seen[id])
		return
	}
	for _, d := range diffRow(w, row) {
		p.problem("%s, %s %q: %s", w.desc, p.idField, id, d)
	}
}
