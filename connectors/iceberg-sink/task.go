package icebergsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/connect"
)

// Task buffers its records as Arrow columns, one set per table, and commits them on the commit
// interval: per table, one Parquet write and one snapshot whose summary carries the Kafka
// offsets the data reaches.
type Task struct {
	cfg Config
	log *slog.Logger
	tc  connect.SinkTaskContext
	cat catalog.Catalog
	key string // the snapshot summary property of this connector's offsets
	// coord is task 0, which commits for all tasks; prefix starts the table properties by
	// which the other tasks publish their data files to it (see coord.go).
	coord  bool
	prefix string
	ns     table.Identifier
	times  map[string]bool
	mem    memory.Allocator

	tables      map[string]*tableState
	topicTables map[string]string
	seen        map[connect.TopicPartition]int64 // offset after the last record given to Put
	// readFrom is where the task's reading of a partition began: the offset it last seeked
	// to, or its first record. The task has seen every record from there on.
	readFrom   map[connect.TopicPartition]int64
	lastCommit time.Time
	buffered   atomic.Int64 // records buffered in all tables
	waiting    atomic.Bool  // data files published and not yet seen committed
	// note is what the task's status says it waits for: task 0's commit of the publications
	// of the tables it holds back (see commit.max.pending.publications); "" when it waits for
	// nothing.
	note string
	vals []any // scratch for one record's column values

	stop   chan struct{}
	ticker sync.WaitGroup
}

// tableState is what a task knows and buffers of one table.
type tableState struct {
	name  string
	ident table.Identifier
	tbl   *table.Table
	// stale means the stored offsets must be read again before they are trusted (after a
	// rebalance another task may have committed).
	stale bool
	// stored are the table's offsets for this connector as of the last load or commit;
	// cursor adds the publications waiting for the coordinator that continue them.
	stored, cursor map[string]int64

	// files are the data files written for batches, kept across commit attempts; pubStart and
	// pubEnd are the offsets this task published to the coordinator and has not yet seen
	// committed.
	files            []iceberg.DataFile
	pubStart, pubEnd map[connect.TopicPartition]int64
	// cov is where what the table may get of a partition from this task begins: the end of the
	// task's last publication or commit to the table, else (absent) the task's readFrom.
	cov map[connect.TopicPartition]int64
	// held is how many of this task's publications wait in the table for task 0 when the task
	// held its buffer back because they reached commit.max.pending.publications; 0 when not.
	held int

	cols    map[string]*colBuffer
	order   []string
	rows    int
	batches []arrow.RecordBatch              // finished, not yet committed
	start   map[connect.TopicPartition]int64 // first buffered offset per partition
	end     map[connect.TopicPartition]int64 // offset after the last buffered record
}

type colBuffer struct {
	field iceberg.NestedField
	b     array.Builder
}

func tpKey(tp connect.TopicPartition) string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// Start connects to the catalog.
func (t *Task) Start(ctx context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("iceberg-sink: invalid configuration: %w", err)
	}
	cat, err := openCatalog(ctx, c)
	if err != nil {
		return connect.Retriable(fmt.Errorf("iceberg-sink: opening the catalog: %w", err))
	}
	t.cfg, t.log, t.tc, t.cat = c, tc.Logger(), tc, cat
	t.key = offsetsKey(tc.Connector())
	t.coord, t.prefix = tc.TaskID() == 0, pendingKey(tc.Connector())
	t.ns = catalog.ToIdentifier(strings.Split(c.Namespace, ".")...)
	t.times = map[string]bool{}
	for _, f := range c.TimeFields {
		t.times[f] = true
	}
	t.mem = memory.DefaultAllocator
	t.tables = map[string]*tableState{}
	t.topicTables = map[string]string{}
	t.seen = map[connect.TopicPartition]int64{}
	t.readFrom = map[connect.TopicPartition]int64{}
	t.lastCommit = time.Now()
	t.stop = make(chan struct{})
	t.ticker.Add(1)
	go t.tick()
	t.log.Info("writing to Iceberg", "catalog", c.CatalogType, "namespace", c.Namespace, "route", c.Route, "commit.interval", c.CommitInterval)
	return nil
}

// tick asks the runtime for an offset commit, and so a PreCommit, once per commit interval
// while records are buffered, so data is committed on time when no more records arrive.
func (t *Task) tick() {
	defer t.ticker.Done()
	every := t.cfg.CommitInterval / 4
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			if t.coord || t.buffered.Load() > 0 || t.waiting.Load() {
				t.tc.RequestCommit()
			}
		}
	}
}

// Open resumes each partition where the Iceberg table's latest snapshot says this connector's
// data ends, when the partition's records go to one known table.
func (t *Task) Open(ctx context.Context, tps []connect.TopicPartition) error {
	for _, ts := range t.tables {
		ts.stale = true
	}
	if t.cfg.Route == RouteField {
		return nil // a partition's records may go to any table: resume from the group's offsets
	}
	for _, tp := range tps {
		name := t.cfg.Table
		if t.cfg.Route == RouteTopic {
			name = tableName(tp.Topic)
		}
		ts, err := t.table(ctx, name, nil)
		if err != nil {
			return err
		}
		if ts == nil {
			continue // not created yet
		}
		if off, ok := ts.cursor[tpKey(tp)]; ok {
			t.log.Info("resuming from the table's offsets (its latest snapshot and the data files waiting for the coordinator)",
				"partition", tp.String(), "table", name, "offset", off, "committed", ts.stored[tpKey(tp)])
			t.seek(tp, off)
		}
	}
	return nil
}

func (t *Task) seek(tp connect.TopicPartition, off int64) {
	t.tc.Seek(tp, off)
	t.readFrom[tp] = off
}

// Close hands what is buffered to the coordinator before the partitions go to another task:
// the data files are written and published, to be in the coordinator's next snapshot, so a
// rebalance adds no snapshot of its own.
func (t *Task) Close(ctx context.Context, tps []connect.TopicPartition) error {
	err := t.settleAll(ctx, true)
	for _, ts := range t.tables {
		if err != nil || ts.held > 0 {
			// Not handed over: the records are read again, by this task or the partitions'
			// next one.
			t.discard(ts)
		}
	}
	for _, tp := range tps {
		delete(t.seen, tp)
		delete(t.readFrom, tp)
		for _, ts := range t.tables {
			delete(ts.pubStart, tp)
			delete(ts.pubEnd, tp)
			delete(ts.cov, tp)
		}
	}
	t.updateWaiting()
	t.updateNote()
	return err
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_]`)

// batchRows is how many rows a table's column builders take before they become a batch.
const batchRows = 16384

// topicTable is tableName, remembered per topic.
func (t *Task) topicTable(topic string) string {
	if n, ok := t.topicTables[topic]; ok {
		return n
	}
	n := tableName(topic)
	t.topicTables[topic] = n
	return n
}

func tableName(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return nonName.ReplaceAllString(s, "_")
		}
	}
	return s // already a table name: no copy
}

func (t *Task) due() bool {
	return t.buffered.Load() >= int64(t.cfg.MaxBuffered) ||
		((t.coord || t.buffered.Load() > 0 || t.waiting.Load()) && time.Since(t.lastCommit) >= t.cfg.CommitInterval)
}

// Put buffers the batch. A due commit happens first, so a failed one leaves the batch
// undelivered and the runtime hands it again.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	if t.buffered.Load() > 0 && t.due() { // the coordinator's other rounds happen in PreCommit
		if err := t.commitAll(ctx); err != nil {
			return connect.Retriable(err)
		}
		if t.note != "" && t.buffered.Load() >= int64(t.cfg.MaxBuffered) {
			// Back-pressure: nothing more is buffered until task 0 commits; the runtime
			// pauses and hands the same records again.
			return connect.Retriable(fmt.Errorf("%s (commit.max.pending.publications=%d), with a full buffer of %d records (commit.buffer.records=%d)",
				t.note, t.cfg.MaxPending, t.buffered.Load(), t.cfg.MaxBuffered))
		}
	}
	for _, r := range batch {
		tp := connect.TopicPartition{Topic: r.Topic, Partition: r.KafkaPartition}
		if err := t.buffer(ctx, r, tp); err != nil {
			var de *connect.DataError
			if !errors.As(err, &de) {
				return connect.Retriable(err) // buffered records are skipped when redelivered
			}
			if err := t.tc.Report(ctx, r, err); err != nil {
				return err
			}
		}
		if _, ok := t.readFrom[tp]; !ok {
			t.readFrom[tp] = r.KafkaOffset
		}
		t.seen[tp] = r.KafkaOffset + 1
	}
	return nil
}

// buffer adds one record to its table's columns, unless the table already has it.
func (t *Task) buffer(ctx context.Context, r connect.Record, tp connect.TopicPartition) error {
	if r.Value == nil {
		return nil // a tombstone: nothing to append
	}
	value, ok := r.Value.(map[string]any)
	if !ok {
		return connect.BadField("", r.Value, "the value is not a JSON object or struct")
	}
	name := t.cfg.Table
	var routed any // the value that named the table, for a bad record's reason
	switch t.cfg.Route {
	case RouteTopic:
		name, routed = t.topicTable(r.Topic), r.Topic
	case RouteField:
		s, ok := value[t.cfg.RouteField].(string)
		if ok {
			name = tableName(s)
		}
		if !ok || name == "" {
			return connect.BadField(t.cfg.RouteField, value[t.cfg.RouteField], "names no table")
		}
		routed = s
	}
	ts := t.tables[name]
	if ts != nil && !ts.stale && r.KafkaOffset < ts.floor(tp) {
		return nil // committed already, or buffered before a redelivery
	}
	if ts == nil || ts.idle() {
		if open := t.openTables(name); open >= t.cfg.MaxTables {
			field := t.cfg.RouteField
			if t.cfg.Route == RouteTopic {
				field = "topic"
			}
			return connect.BadField(field, routed, "routes to table %s, one more than the %d tables this task writes at a time (table.max.open=%d)",
				name, open, t.cfg.MaxTables)
		}
	}
	var cols []column // the record's columns, derived only when a table is created or evolved
	if ts == nil || ts.stale {
		t.closeIdle(t.cfg.MaxTables-1, name)
		cols = recordColumns(value, r.ValueSchema, t.times, t.cfg.Numbers == "double")
		var err error
		if ts, err = t.table(ctx, name, cols); err != nil {
			return err
		}
		if ts == nil {
			return connect.BadField("", name, "table %s does not exist and table.auto.create is false", name)
		}
	}
	if r.KafkaOffset < ts.floor(tp) {
		return nil // committed already, or buffered before a redelivery
	}
	if t.cfg.Evolve && ts.lacksColumns(value, r.ValueSchema) {
		if cols == nil {
			cols = recordColumns(value, r.ValueSchema, t.times, t.cfg.Numbers == "double")
		}
		if err := t.addColumns(ctx, ts, cols); err != nil {
			return err
		}
	}
	vals := t.vals[:0]
	for _, n := range ts.order {
		c := ts.cols[n]
		v, err := toValue(n, c.field.Type, value[n])
		if err != nil {
			return err
		}
		if v == nil && c.field.Required {
			return connect.BadField(n, nil, "column %s is required", n)
		}
		vals = append(vals, v)
	}
	for i, n := range ts.order {
		appendValue(ts.cols[n].b, vals[i])
	}
	clear(vals)
	t.vals = vals
	ts.rows++
	if ts.rows >= batchRows {
		// Finished batches keep the builders small: growing one huge buffer costs more in
		// copying than the batches cost in bookkeeping.
		ts.batches = append(ts.batches, t.finish(ts))
	}
	if _, ok := ts.start[tp]; !ok {
		ts.start[tp] = r.KafkaOffset
	}
	ts.end[tp] = r.KafkaOffset + 1
	t.buffered.Add(1)
	return nil
}

// lacksColumns reports whether the record has a field (a non-null one, for a value without a
// schema) that the table has no column for.
func (ts *tableState) lacksColumns(value map[string]any, sch *connect.Schema) bool {
	if sch != nil && sch.Type == connect.Struct {
		for _, f := range sch.Fields {
			if _, ok := ts.cols[f.Name]; !ok {
				return true
			}
		}
		return false
	}
	for k, v := range value {
		if _, ok := ts.cols[k]; !ok && v != nil {
			return true
		}
	}
	return false
}

// floor is the offset below which the table has a partition's records, committed, published
// or buffered.
func (ts *tableState) floor(tp connect.TopicPartition) int64 {
	if e, ok := ts.end[tp]; ok {
		return e
	}
	if e, ok := ts.pubEnd[tp]; ok {
		return e
	}
	if s, ok := ts.cursor[tpKey(tp)]; ok {
		return s
	}
	return 0
}

// table returns the state of a table, loading it, or creating it from cols when they are given
// and auto-creation is on; nil when it does not exist and is not to be created.
func (t *Task) table(ctx context.Context, name string, cols []column) (*tableState, error) {
	ts := t.tables[name]
	if ts != nil && !ts.stale {
		return ts, nil
	}
	ident := append(append(table.Identifier{}, t.ns...), name)
	tbl, err := t.cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		if cols == nil || !t.cfg.AutoCreate {
			return nil, nil
		}
		tbl, err = t.create(ctx, ident, cols)
	}
	if err != nil {
		return nil, err
	}
	stored, err := storedOffsets(tbl, t.key)
	if err != nil {
		return nil, err
	}
	pubs, err := publications(tbl, t.prefix)
	if err != nil {
		return nil, err
	}
	_, cursor, _ := chain(stored, pubs)
	if ts == nil {
		ts = &tableState{name: name, ident: ident, cols: map[string]*colBuffer{},
			start: map[connect.TopicPartition]int64{}, end: map[connect.TopicPartition]int64{},
			pubStart: map[connect.TopicPartition]int64{}, pubEnd: map[connect.TopicPartition]int64{},
			cov: map[connect.TopicPartition]int64{}}
		t.tables[name] = ts
	}
	ts.tbl, ts.stored, ts.cursor, ts.stale = tbl, stored, cursor, false
	if err := t.syncColumns(ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// create makes the namespace and the table, tolerating another task doing it first.
func (t *Task) create(ctx context.Context, ident table.Identifier, cols []column) (*table.Table, error) {
	if err := t.cat.CreateNamespace(ctx, t.ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return nil, fmt.Errorf("creating namespace %s: %w", t.cfg.Namespace, err)
	}
	sc := newSchema(cols)
	spec, err := partitionSpec(sc, t.cfg.Partition)
	if err != nil {
		return nil, err
	}
	tbl, err := t.cat.CreateTable(ctx, ident, sc, catalog.WithPartitionSpec(spec))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		return t.cat.LoadTable(ctx, ident)
	}
	if err == nil {
		t.log.Info("created table", "table", strings.Join(ident, "."), "schema", tbl.Schema().String())
	}
	return tbl, err
}

// syncColumns gives every top-level column of the table's schema a buffer, filling new ones
// with nulls for the rows already buffered.
func (t *Task) syncColumns(ts *tableState) error {
	for _, f := range ts.tbl.Schema().Fields() {
		if c, ok := ts.cols[f.Name]; ok {
			if !c.field.Type.Equals(f.Type) {
				return fmt.Errorf("table %s: column %s changed type from %s to %s", ts.name, f.Name, c.field.Type, f.Type)
			}
			continue
		}
		dt, err := arrowType(f.Type)
		if err != nil {
			return fmt.Errorf("table %s: column %s: %w", ts.name, f.Name, err)
		}
		b := array.NewBuilder(t.mem, dt)
		b.AppendNulls(ts.rows)
		ts.cols[f.Name] = &colBuffer{field: f, b: b}
		ts.order = append(ts.order, f.Name)
	}
	return nil
}

// addColumns evolves the table's schema with the record's fields it lacks.
func (t *Task) addColumns(ctx context.Context, ts *tableState, cols []column) error {
	var missing []column
	for _, c := range cols {
		if _, ok := ts.cols[c.name]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 || !t.cfg.Evolve {
		return nil
	}
	for attempt := 0; ; attempt++ {
		if err := ts.tbl.Refresh(ctx); err != nil {
			return err
		}
		tx := ts.tbl.NewTransaction()
		upd := tx.UpdateSchema(true, false)
		n := 0
		for _, c := range missing {
			if _, ok := ts.tbl.Schema().FindFieldByName(c.name); ok {
				continue // another task added it
			}
			upd.AddColumn([]string{c.name}, c.typ, "", false, nil)
			n++
		}
		var err error
		if n > 0 {
			if err = upd.Commit(); err == nil {
				var tbl *table.Table
				if tbl, err = tx.Commit(ctx); err == nil {
					ts.tbl = tbl
					t.log.Info("added columns", "table", ts.name, "schema", tbl.Schema().String())
				}
			}
		}
		if err == nil {
			return t.syncColumns(ts)
		}
		if !errors.Is(err, table.ErrCommitFailed) || attempt >= t.cfg.CommitRetries {
			return fmt.Errorf("table %s: adding columns: %w", ts.name, err)
		}
	}
}

// PreCommit commits the buffered records to the tables when the commit interval is up, and
// returns the offsets up to which every record is in Iceberg.
func (t *Task) PreCommit(ctx context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	var err error
	if t.due() {
		err = t.commitAll(ctx)
	}
	safe := connect.Offsets{}
	for tp, off := range offsets {
		s, ok := t.seen[tp]
		if !ok {
			continue
		}
		for _, ts := range t.tables {
			if st, ok := ts.start[tp]; ok && st < s {
				s = st
			}
			if st, ok := ts.pubStart[tp]; ok && st < s {
				s = st
			}
		}
		safe[tp] = min(s, off)
	}
	return safe, err
}

// commitAll commits every table with buffered records: the coordinator (task 0) appends its
// own data files and those the other tasks published, in one snapshot per table; the other
// tasks write their data files and publish them to the coordinator.
func (t *Task) commitAll(ctx context.Context) error { return t.settleAll(ctx, false) }

// settleAll is commitAll, or with closing, has every task, the coordinator too, publish its
// buffer rather than commit it.
func (t *Task) settleAll(ctx context.Context, closing bool) error {
	var errs []error
	coordinate := t.coord && !closing
	if coordinate {
		if err := t.discoverTables(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ts := range t.tables {
		if !coordinate && ts.rows == 0 && len(ts.batches) == 0 && len(ts.pubEnd) == 0 {
			continue
		}
		if err := t.commit(ctx, ts, coordinate); err != nil {
			errs = append(errs, fmt.Errorf("table %s: %w", ts.name, err))
		}
	}
	t.updateWaiting()
	t.updateNote()
	if !closing {
		t.closeIdle(t.cfg.MaxTables, "")
	}
	if len(errs) == 0 && !closing {
		t.lastCommit = time.Now()
	}
	return errors.Join(errs...)
}

// discoverTables takes on the namespace's tables the coordinator does not write itself but
// other tasks published data files to.
func (t *Task) discoverTables(ctx context.Context) error {
	for ident, err := range t.cat.ListTables(ctx, t.ns) {
		if errors.Is(err, catalog.ErrNoSuchNamespace) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing the tables of %s: %w", t.cfg.Namespace, err)
		}
		name := ident[len(ident)-1]
		if _, ok := t.tables[name]; ok {
			continue
		}
		tbl, err := t.cat.LoadTable(ctx, ident)
		if err != nil {
			t.log.Warn("cannot look for published data files", "table", strings.Join(ident, "."), "err", err)
			continue
		}
		if pubs, err := publications(tbl, t.prefix); err != nil || len(pubs) == 0 {
			continue // not one of ours, or nothing waiting
		}
		if _, err := t.table(ctx, name, nil); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
	}
	return nil
}

// updateNote tells the task's status which tables' publications it waits for task 0 to
// commit, when the note changes.
func (t *Task) updateNote() {
	var parts []string
	for _, ts := range t.tables {
		if ts.held > 0 {
			parts = append(parts, fmt.Sprintf("waiting for task 0 to commit %d published batches to table %s", ts.held, strings.Join(ts.ident, ".")))
		}
	}
	sort.Strings(parts)
	note := strings.Join(parts, "; ")
	if note == t.note {
		return
	}
	if note != "" {
		t.log.Warn("holding the buffer back until task 0 commits", "status", note, "commit.max.pending.publications", t.cfg.MaxPending)
	} else {
		t.log.Info("task 0 committed; handing data files over again")
	}
	t.note = note
	t.tc.SetStatusNote(note)
}

// ownPublications counts this task's publications waiting in the table.
func (t *Task) ownPublications(pubs map[string]*publication) int {
	n := 0
	for _, p := range pubs {
		if p.Task == t.tc.TaskID() {
			n++
		}
	}
	return n
}

// idle is a table of which the task holds nothing: no buffer, no data files, no publication
// waiting for task 0.
func (ts *tableState) idle() bool {
	return ts.rows == 0 && len(ts.batches) == 0 && ts.files == nil && len(ts.pubEnd) == 0
}

// openTables counts the tables that are not idle, but for the one named except.
func (t *Task) openTables(except string) int {
	n := 0
	for name, ts := range t.tables {
		if name != except && !ts.idle() {
			n++
		}
	}
	return n
}

// closeIdle forgets idle tables, but for the one named except, until at most keep are left.
// A forgotten table is loaded again when a record goes to it.
func (t *Task) closeIdle(keep int, except string) {
	for name, ts := range t.tables {
		if len(t.tables) <= keep {
			return
		}
		if name == except || !ts.idle() {
			continue
		}
		for _, c := range ts.cols {
			c.b.Release()
		}
		delete(t.tables, name)
	}
}

func (t *Task) updateWaiting() {
	w := false
	for _, ts := range t.tables {
		w = w || len(ts.pubEnd) > 0
	}
	t.waiting.Store(w)
}

var errOverlap = errors.New("another writer committed records of the same partitions")

// commit settles one table. It reads the table's offsets and the publications waiting for the
// coordinator, and checks that the buffer continues them; then the coordinator commits the
// buffer and the publications that continue the offsets as one snapshot whose summary holds
// the connector's offsets, and another task publishes its buffer's data files. Both commits
// assert the branch head the offsets were read from; when another writer got there first the
// table is refreshed and the commit tried again.
func (t *Task) commit(ctx context.Context, ts *tableState, coordinate bool) error {
	if ts.rows > 0 {
		ts.batches = append(ts.batches, t.finish(ts))
	}
	began := time.Now()
	for attempt := 0; ; attempt++ {
		if err := ts.tbl.Refresh(ctx); err != nil {
			return err
		}
		stored, err := storedOffsets(ts.tbl, t.key)
		if err != nil {
			return err
		}
		pubs, err := publications(ts.tbl, t.prefix)
		if err != nil {
			return err
		}
		next, cursor, stale := chain(stored, pubs)
		ts.stored, ts.cursor = stored, cursor
		ts.confirm()
		var ranges map[string][2]int64
		if len(ts.batches) > 0 {
			var done bool
			ranges, done, err = ts.ranges(cursor, t.covFrom(ts))
			if err != nil {
				t.log.Warn("dropping buffered records and reading them again", "table", ts.name, "err", err)
				t.discard(ts)
				return err
			}
			if done { // an earlier commit or publication whose result was unknown went through
				t.clear(ts)
				ranges = nil
			}
		}
		ts.held = 0
		if ranges != nil && !coordinate {
			if n := t.ownPublications(pubs); n >= t.cfg.MaxPending {
				// Task 0 has not committed this task's last publications: publish no more,
				// so the table's metadata stops growing, and keep the buffer.
				ts.held = n
				return nil
			}
		}
		if ranges == nil && (!coordinate || len(next)+len(stale) == 0) {
			return nil
		}
		if ranges != nil && ts.files == nil {
			if ts.files, err = t.writeFiles(ctx, ts); err != nil {
				return err
			}
		}
		if coordinate {
			err = t.commitSnapshot(ctx, ts, pubs, next, stale, cursor, ranges, began)
		} else {
			err = t.publish(ctx, ts, ranges)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, table.ErrCommitFailed) || attempt >= t.cfg.CommitRetries {
			return err
		}
		t.log.Info("commit conflict; refreshing and retrying", "table", ts.name, "err", err)
	}
}

// ranges are the offset ranges the buffer brings the table's partitions to. Each starts at
// the table's offset (cursor) when it has one, else where the task's coverage of the partition
// for this table begins (covFrom): the records between the range's start and the buffer's
// first were seen by the task and skipped, or routed to other tables. A range may only start
// where the task has seen everything since, so a cursor below the coverage (the table moved
// on through another task's records, or the task's last publication was dropped) is an
// overlap error like a cursor inside the buffer. done when the table has all of the buffer
// already.
func (ts *tableState) ranges(cursor map[string]int64, covFrom func(connect.TopicPartition) int64) (ranges map[string][2]int64, done bool, err error) {
	ranges = map[string][2]int64{}
	covered := 0
	for tp, start := range ts.start {
		k := tpKey(tp)
		end := ts.end[tp]
		from := covFrom(tp)
		c, ok := cursor[k]
		switch {
		case ok && c >= end:
			covered++
		case ok && c > start:
			return nil, false, fmt.Errorf("%w: %s is at %d in the table, the buffer holds %d to %d", errOverlap, tp, c, start, end-1)
		case ok && c < from:
			return nil, false, fmt.Errorf("%w: %s is at %d in the table, the task has read it from %d on", errOverlap, tp, c, from)
		case ok:
			ranges[k] = [2]int64{c, end}
		default:
			ranges[k] = [2]int64{min(from, start), end}
		}
	}
	if covered > 0 && len(ranges) > 0 {
		return nil, false, fmt.Errorf("%w: the table has some of the buffered partitions", errOverlap)
	}
	return ranges, covered > 0, nil
}

// covFrom is where the task's coverage of a partition for the table begins.
func (t *Task) covFrom(ts *tableState) func(connect.TopicPartition) int64 {
	return func(tp connect.TopicPartition) int64 {
		if c, ok := ts.cov[tp]; ok {
			return c
		}
		if r, ok := t.readFrom[tp]; ok {
			return r
		}
		return 0
	}
}

// confirm forgets the publications the table's snapshot now covers.
func (ts *tableState) confirm() {
	for tp, end := range ts.pubEnd {
		if s, ok := ts.stored[tpKey(tp)]; ok && s >= end {
			delete(ts.pubStart, tp)
			delete(ts.pubEnd, tp)
		}
	}
}

// writeFiles writes the buffered batches as Parquet data files of the table, uncommitted.
func (t *Task) writeFiles(ctx context.Context, ts *tableState) ([]iceberg.DataFile, error) {
	sc, err := table.SchemaToArrowSchema(ts.tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, err
	}
	var recs []arrow.RecordBatch
	for _, b := range ts.batches {
		r, err := project(t.mem, b, sc)
		if err != nil {
			for _, r := range recs {
				r.Release()
			}
			return nil, err
		}
		recs = append(recs, r)
	}
	var files []iceberg.DataFile
	// WriteRecords releases the batches it consumes.
	seq := func(yield func(arrow.RecordBatch, error) bool) {
		for i, r := range recs {
			if !yield(r, nil) {
				for _, r := range recs[i+1:] {
					r.Release()
				}
				return
			}
		}
	}
	for df, err := range table.WriteRecords(ctx, ts.tbl, sc, seq) {
		if err != nil {
			return nil, err
		}
		files = append(files, df)
	}
	return files, nil
}

// publish hands the buffer's data files to the coordinator in a table property, asserting the
// branch head its offsets were read from.
func (t *Task) publish(ctx context.Context, ts *tableState, ranges map[string][2]int64) error {
	p := publication{Task: t.tc.TaskID(), Ranges: ranges}
	for _, df := range ts.files {
		f, err := encodeFile(df)
		if err != nil {
			return err
		}
		p.Files = append(p.Files, f)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tx := ts.tbl.NewTransaction()
	if err := tx.AssertRefSnapshotID(""); err != nil {
		return err
	}
	if err := tx.SetProperties(iceberg.Properties{newPublicationKey(t.prefix): string(b)}); err != nil {
		return err
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	ts.tbl = tbl
	for tp, start := range ts.start {
		if s, ok := ts.pubStart[tp]; !ok || start < s {
			ts.pubStart[tp] = start
		}
		ts.pubEnd[tp] = ts.end[tp]
		ts.cov[tp] = ts.end[tp]
	}
	for k, r := range ranges {
		ts.cursor[k] = r[1]
	}
	t.log.Debug("published data files to the coordinator", "table", ts.name, "files", len(p.Files), "rows", ts.bufferedRows())
	t.clear(ts)
	return nil
}

// commitSnapshot is the coordinator's commit: its own data files and those of the
// publications next in the chain, in one snapshot with the merged offsets, and the removal of
// the publications taken or stale.
func (t *Task) commitSnapshot(ctx context.Context, ts *tableState, pubs map[string]*publication, next, stale []string,
	cursor map[string]int64, ranges map[string][2]int64, began time.Time) error {
	var files []iceberg.DataFile
	rows := int64(0)
	for _, k := range next {
		for _, f := range pubs[k].Files {
			df, err := decodeFile(ts.tbl.Metadata(), f)
			if err != nil {
				return fmt.Errorf("publication %s: %w", k, err)
			}
			files = append(files, df)
			rows += df.Count()
		}
	}
	merged := make(map[string]int64, len(cursor)+len(ranges))
	for k, v := range cursor {
		merged[k] = v
	}
	if ranges != nil {
		files = append(files, ts.files...)
		rows += ts.bufferedRows()
		for k, r := range ranges {
			merged[k] = r[1]
		}
	}
	tx := ts.tbl.NewTransaction()
	if err := tx.AssertRefSnapshotID(""); err != nil {
		return err
	}
	if remove := append(append([]string{}, next...), stale...); len(remove) > 0 {
		if err := tx.RemoveProperties(remove); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		prop, _ := json.Marshal(merged)
		if err := tx.AddDataFiles(ctx, files, iceberg.Properties{t.key: string(prop)}); err != nil {
			return err
		}
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	ts.tbl = tbl
	if len(stale) > 0 {
		t.log.Info("dropped stale publications", "table", ts.name, "count", len(stale))
	}
	if len(files) > 0 {
		ts.stored = merged
		t.log.Info("committed", "table", ts.name, "rows", rows, "files", len(files), "publications", len(next),
			"took", time.Since(began).Round(time.Millisecond))
	}
	ts.cursor = merged
	ts.confirm()
	if ranges != nil {
		for tp := range ts.start {
			ts.cov[tp] = ts.end[tp]
		}
		t.clear(ts)
	}
	return nil
}

// finish turns the column buffers into a record batch and starts new ones.
func (t *Task) finish(ts *tableState) arrow.RecordBatch {
	fields := make([]arrow.Field, len(ts.order))
	arrs := make([]arrow.Array, len(ts.order))
	for i, n := range ts.order {
		a := ts.cols[n].b.NewArray()
		fields[i] = arrow.Field{Name: n, Type: a.DataType(), Nullable: true}
		arrs[i] = a
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(ts.rows))
	for _, a := range arrs {
		a.Release()
	}
	ts.rows = 0
	return rec
}

// clear forgets the buffer after a commit.
func (t *Task) clear(ts *tableState) {
	var n int64
	for _, b := range ts.batches {
		n += b.NumRows()
		b.Release()
	}
	t.buffered.Add(-n)
	ts.batches = nil
	ts.files = nil
	ts.held = 0
	clear(ts.start)
	clear(ts.end)
}

// discard drops the buffer of a table and seeks its partitions to where the table's records of
// them end (committed, or published and continuing the chain), else to the buffer's start, so
// the records are delivered again (and skipped where the table has them).
func (t *Task) discard(ts *tableState) {
	if ts.rows > 0 {
		ts.batches = append(ts.batches, t.finish(ts))
	}
	seeks := map[connect.TopicPartition]int64{}
	for tp, start := range ts.start {
		seeks[tp] = start
	}
	t.clear(ts)
	for tp, off := range seeks {
		if c, ok := ts.cursor[tpKey(tp)]; ok {
			off = c // where the table's records of the partition end, below the buffer or in it
		}
		t.seek(tp, off)
		delete(ts.cov, tp)
		if s, ok := t.seen[tp]; ok && s > off {
			t.seen[tp] = off
		}
	}
}

// Stop stops the commit ticker and closes the catalog. Records still buffered were not
// committed to Kafka either, so they are delivered again.
func (t *Task) Stop() error {
	if t.stop == nil {
		return nil
	}
	close(t.stop)
	t.ticker.Wait()
	t.stop = nil
	for _, ts := range t.tables {
		t.clear(ts)
		for _, c := range ts.cols {
			c.b.Release()
		}
	}
	return closeCatalog(t.cat)
}

var (
	_ connect.SinkTask       = (*Task)(nil)
	_ connect.PartitionAware = (*Task)(nil)
)

func (ts *tableState) bufferedRows() int64 {
	var n int64
	for _, b := range ts.batches {
		n += b.NumRows()
	}
	return n
}
