package icebergsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
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
	cfg   Config
	log   *slog.Logger
	tc    connect.SinkTaskContext
	cat   catalog.Catalog
	key   string // the snapshot summary property of this connector's offsets
	ns    table.Identifier
	times map[string]bool
	mem   memory.Allocator

	tables     map[string]*tableState
	seen       map[connect.TopicPartition]int64 // offset after the last record given to Put
	lastCommit time.Time
	buffered   atomic.Int64 // records buffered in all tables

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
	// stored are the table's offsets for this connector as of the last load or commit.
	stored map[string]int64

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
	t.ns = catalog.ToIdentifier(strings.Split(c.Namespace, ".")...)
	t.times = map[string]bool{}
	for _, f := range c.TimeFields {
		t.times[f] = true
	}
	t.mem = memory.DefaultAllocator
	t.tables = map[string]*tableState{}
	t.seen = map[connect.TopicPartition]int64{}
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
			if t.buffered.Load() > 0 {
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
		if off, ok := ts.stored[tpKey(tp)]; ok {
			t.log.Info("resuming from the offset in the table's snapshot", "partition", tp.String(), "table", name, "offset", off)
			t.tc.Seek(tp, off)
		}
	}
	return nil
}

// Close commits what is buffered before the partitions go to another task.
func (t *Task) Close(ctx context.Context, tps []connect.TopicPartition) error {
	err := t.commitAll(ctx)
	if err != nil {
		t.discardAll()
	}
	for _, tp := range tps {
		delete(t.seen, tp)
	}
	return err
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_]`)

func tableName(s string) string { return nonName.ReplaceAllString(s, "_") }

func (t *Task) due() bool {
	return t.buffered.Load() >= int64(t.cfg.MaxBuffered) ||
		(t.buffered.Load() > 0 && time.Since(t.lastCommit) >= t.cfg.CommitInterval)
}

// Put buffers the batch. A due commit happens first, so a failed one leaves the batch
// undelivered and the runtime hands it again.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	if t.due() {
		if err := t.commitAll(ctx); err != nil {
			return connect.Retriable(err)
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
	switch t.cfg.Route {
	case RouteTopic:
		name = tableName(r.Topic)
	case RouteField:
		s, ok := value[t.cfg.RouteField].(string)
		if !ok || tableName(s) == "" {
			return connect.BadField(t.cfg.RouteField, value[t.cfg.RouteField], "names no table")
		}
		name = tableName(s)
	}
	cols := recordColumns(value, r.ValueSchema, t.times)
	ts, err := t.table(ctx, name, cols)
	if err != nil {
		return err
	}
	if ts == nil {
		return connect.BadField("", name, "table %s does not exist and table.auto.create is false", name)
	}
	if r.KafkaOffset < ts.floor(tp) {
		return nil // committed already, or buffered before a redelivery
	}
	if err := t.addColumns(ctx, ts, cols); err != nil {
		return err
	}
	vals := make([]any, len(ts.order))
	for i, n := range ts.order {
		c := ts.cols[n]
		v, err := toValue(n, c.field.Type, value[n])
		if err != nil {
			return err
		}
		if v == nil && c.field.Required {
			return connect.BadField(n, nil, "column %s is required", n)
		}
		vals[i] = v
	}
	for i, n := range ts.order {
		appendValue(ts.cols[n].b, vals[i])
	}
	ts.rows++
	if _, ok := ts.start[tp]; !ok {
		ts.start[tp] = r.KafkaOffset
	}
	ts.end[tp] = r.KafkaOffset + 1
	t.buffered.Add(1)
	return nil
}

// floor is the offset below which the table has a partition's records, committed or buffered.
func (ts *tableState) floor(tp connect.TopicPartition) int64 {
	if e, ok := ts.end[tp]; ok {
		return e
	}
	if s, ok := ts.stored[tpKey(tp)]; ok {
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
	if ts == nil {
		ts = &tableState{name: name, ident: ident, cols: map[string]*colBuffer{},
			start: map[connect.TopicPartition]int64{}, end: map[connect.TopicPartition]int64{}}
		t.tables[name] = ts
	}
	ts.tbl, ts.stored, ts.stale = tbl, stored, false
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
		}
		safe[tp] = min(s, off)
	}
	return safe, err
}

// commitAll commits every table with buffered records.
func (t *Task) commitAll(ctx context.Context) error {
	var errs []error
	for _, ts := range t.tables {
		if ts.rows == 0 && len(ts.batches) == 0 {
			continue
		}
		if err := t.commit(ctx, ts); err != nil {
			errs = append(errs, fmt.Errorf("table %s: %w", ts.name, err))
		}
	}
	if len(errs) == 0 {
		t.lastCommit = time.Now()
	}
	return errors.Join(errs...)
}

var errOverlap = errors.New("another writer committed records of the same partitions")

// commit appends the table's buffered records in one snapshot whose summary holds the
// connector's offsets, merged with those already in the table. The commit asserts the branch
// head it read the offsets from; when another writer got there first it refreshes and tries
// again.
func (t *Task) commit(ctx context.Context, ts *tableState) error {
	if ts.rows > 0 {
		ts.batches = append(ts.batches, t.finish(ts))
	}
	for attempt := 0; ; attempt++ {
		if err := ts.tbl.Refresh(ctx); err != nil {
			return err
		}
		stored, err := storedOffsets(ts.tbl, t.key)
		if err != nil {
			return err
		}
		done, err := ts.check(stored)
		if err != nil {
			t.log.Warn("dropping buffered records and reading them again", "table", ts.name, "err", err)
			ts.stored = stored
			t.discard(ts)
			return err
		}
		if done { // an earlier commit whose result was unknown went through
			ts.stored = stored
			t.clear(ts)
			return nil
		}
		merged := make(map[string]int64, len(stored)+len(ts.end))
		for k, v := range stored {
			merged[k] = v
		}
		for tp, v := range ts.end {
			merged[tpKey(tp)] = v
		}
		prop, _ := json.Marshal(merged)
		err = t.append(ctx, ts, iceberg.Properties{t.key: string(prop)})
		if err == nil {
			ts.stored = merged
			t.clear(ts)
			return nil
		}
		if !errors.Is(err, table.ErrCommitFailed) || attempt >= t.cfg.CommitRetries {
			return err
		}
		t.log.Info("commit conflict; refreshing and retrying", "table", ts.name, "err", err)
	}
}

// check compares the table's offsets with the buffer: done when they already cover it all, an
// error when they cover part of it.
func (ts *tableState) check(stored map[string]int64) (done bool, err error) {
	covered, clean := 0, 0
	for tp, start := range ts.start {
		s, ok := stored[tpKey(tp)]
		switch {
		case !ok || s <= start:
			clean++
		case s >= ts.end[tp]:
			covered++
		default:
			return false, fmt.Errorf("%w: %s is at %d in the table, the buffer holds %d to %d", errOverlap, tp, s, start, ts.end[tp]-1)
		}
	}
	if covered > 0 && clean > 0 {
		return false, fmt.Errorf("%w: the table has some of the buffered partitions", errOverlap)
	}
	return covered > 0, nil
}

// append writes the buffered batches as data files and commits them with props.
func (t *Task) append(ctx context.Context, ts *tableState, props iceberg.Properties) error {
	sc, err := table.SchemaToArrowSchema(ts.tbl.Schema(), nil, true, false)
	if err != nil {
		return err
	}
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, b := range ts.batches {
		r, err := project(t.mem, b, sc)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	rdr, err := array.NewRecordReader(sc, recs)
	if err != nil {
		return err
	}
	defer rdr.Release()
	tx := ts.tbl.NewTransaction()
	if err := tx.AssertRefSnapshotID(""); err != nil {
		return err
	}
	if err := tx.Append(ctx, rdr, props); err != nil {
		return err
	}
	if dir := os.Getenv(holdCommitEnv); dir != "" {
		holdCommit(ctx, dir)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return err
	}
	ts.tbl = tbl
	return nil
}

// holdCommitEnv names a directory for crash tests: with it set, a task that has written its
// data files announces it there (a file named "holding") and waits for ctx before it commits,
// so a test can kill the worker at exactly that moment.
const holdCommitEnv = "SLUICE_ICEBERG_TEST_HOLD_COMMIT"

func holdCommit(ctx context.Context, dir string) {
	_ = os.WriteFile(filepath.Join(dir, "holding"), nil, 0o644)
	<-ctx.Done()
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
	clear(ts.start)
	clear(ts.end)
}

// discard drops the buffer of a table and seeks its partitions back to what is committed, so
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
		if s, ok := ts.stored[tpKey(tp)]; ok && s > off {
			off = s
		}
		t.tc.Seek(tp, off)
	}
}

func (t *Task) discardAll() {
	for _, ts := range t.tables {
		t.discard(ts)
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
