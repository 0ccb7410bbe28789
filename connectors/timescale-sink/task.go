package timescalesink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/connect"
)

// querier is what loading a table needs of a pool, connection or transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Task writes the records of its partitions to the database.
type Task struct {
	cfg     Config
	log     *slog.Logger
	tc      connect.SinkTaskContext
	pool    *pgxpool.Pool
	mappers [2]*mapper // one per goroutine that maps records
	ddl     ddl
	offsets pgx.Identifier

	// Touched only from the runtime's task goroutine (Put, Open, Close, PreCommit).
	tables map[string]*table // by sanitized name
	names  map[string]string // table names by topic
	// Buffers reused by every Put: the rows of a batch, their fields, and their values.
	rowBuf       []row
	errBuf       []error
	fieldBuf     []field
	valBuf       []any
	timescale    *bool               // whether the extension is installed, once asked
	offsetsReady bool                // the offsets table exists
	stages       map[uint32][]string // staging tables created per backend process id
	dropped      map[string]bool     // table/field pairs already warned about
}

var (
	_ connect.SinkTask       = (*Task)(nil)
	_ connect.PartitionAware = (*Task)(nil)
)

// Start reads the configuration and sets up the connection pool; it connects on first use, so
// a database that is down at start only delays the first write.
// setDecompressLimit sets timescale.decompression.limit for the session, where TimescaleDB
// has the setting.
const setDecompressLimit = `SELECT set_config(name, $1, false) FROM pg_settings
WHERE name = 'timescaledb.max_tuples_decompressed_per_dml_transaction'`

func (t *Task) Start(ctx context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("timescale-sink: invalid configuration: %w", err)
	}
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return fmt.Errorf("timescale-sink: connection.url: %w", err)
	}
	pc.MaxConns = 2 // one writes; the other serves Open's offset reads and DDL
	pc.ConnConfig.ConnectTimeout = c.ConnectTimeout
	// Set on each new connection where the server has the setting: not in the startup packet,
	// which a TimescaleDB older than 2.14 (it reserves the timescaledb. prefix, and has no such
	// setting) would refuse, failing every connection.
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, setDecompressLimit, strconv.Itoa(c.DecompressLimit))
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("timescale-sink: connection pool: %w", err)
	}
	t.cfg, t.tc, t.pool = c, tc, pool
	t.log = tc.Logger()
	t.mappers = [2]*mapper{newMapper(&t.cfg), newMapper(&t.cfg)}
	t.ddl = ddl{&t.cfg}
	t.offsets, _ = identifier(c.OffsetsTable)
	t.tables, t.stages, t.dropped, t.names = map[string]*table{}, map[uint32][]string{}, map[string]bool{}, map[string]string{}
	t.log.Info("writing records to PostgreSQL", "host", pc.ConnConfig.Host, "database", pc.ConnConfig.Database,
		"table", c.Table, "mode", c.Mode, "exactly_once", c.ExactlyOnce)
	return nil
}

// Open resumes newly assigned partitions from the offsets stored with the rows, with
// exactly.once. When the database cannot be read now, consumption starts at Kafka's committed
// offsets, which are never ahead of the stored ones, and Put skips what is already written.
func (t *Task) Open(ctx context.Context, partitions []connect.TopicPartition) error {
	if !t.cfg.ExactlyOnce || len(partitions) == 0 {
		return nil
	}
	// Open runs inside the consumer's rebalance: wait for the database no longer than a
	// connection attempt may take.
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	stored, err := t.storedOffsets(ctx)
	if err != nil {
		t.log.Warn("could not read the stored offsets; resuming from Kafka's committed offsets, rows already written will be skipped",
			"table", t.offsets.Sanitize(), "err", err)
		return nil
	}
	for _, tp := range partitions {
		if off, ok := stored[tp]; ok {
			t.tc.Seek(tp, off)
			t.log.Debug("resuming from the stored offset", "partition", tp.String(), "offset", off)
		}
	}
	return nil
}

// Close does nothing: nothing is kept per partition between Puts.
func (t *Task) Close(context.Context, []connect.TopicPartition) error { return nil }

// Put writes the batch in one transaction (or one COPY). A lost connection is retriable; rows
// the database refuses go to the error policy.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	if len(batch) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, t.cfg.WriteTimeout)
	defer cancel()
	err := t.put(wctx, batch)
	if err == nil {
		return nil
	}
	var pe policyError
	if errors.As(err, &pe) {
		return pe.err
	}
	var se setupError
	if errors.As(err, &se) {
		return fmt.Errorf("timescale-sink: %w", err)
	}
	if ctx.Err() != nil {
		return connect.Retriable(ctx.Err())
	}
	switch classify(err) {
	case classRetry:
		return connect.Retriable(fmt.Errorf("timescale-sink: writing %d records: %w", len(batch), err))
	case classSchema:
		t.tables, t.stages = map[string]*table{}, map[uint32][]string{}
		return connect.Retriable(fmt.Errorf("timescale-sink: a table changed while writing; reading it again: %w", err))
	}
	return fmt.Errorf("timescale-sink: writing %d records: %w", len(batch), err)
}

// PreCommit lets every offset be committed: Put writes synchronously.
func (t *Task) PreCommit(_ context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	return offsets, nil
}

// Stop closes the connection pool.
func (t *Task) Stop() error {
	if t.pool != nil {
		t.pool.Close()
		t.pool = nil
	}
	return nil
}

// badRecord is a record that goes to the error policy, with why.
type badRecord struct {
	rec    *connect.Record
	reason error
}

// group is the part of a batch that goes to one table.
type group struct {
	id   pgx.Identifier
	name string
	rows []*row
	tbl  *table
}

// plan is a batch mapped to tables.
type plan struct {
	groups []*group
	bad    []badRecord
	next   connect.Offsets // per partition, the offset after the batch's last record
}

// put maps the batch to rows per table, makes sure the tables have the columns, and writes
// it; a batch that fails on its data is written again row by row.
func (t *Task) put(ctx context.Context, batch []connect.Record) error {
	p := &plan{next: connect.Offsets{}}
	byName := map[string]*group{}
	// Rows live in buffers the task keeps from batch to batch.
	if cap(t.rowBuf) < len(batch) {
		t.rowBuf, t.errBuf = make([]row, len(batch)), make([]error, len(batch))
	}
	rows, errs := t.rowBuf[:len(batch)], t.errBuf[:len(batch)]
	clear(rows)
	clear(errs)
	t.mapRows(batch, rows, errs)
	var (
		last     connect.TopicPartition // the partition of the record before
		lastNext int64
		lastG    *group // and its group
	)
	for i := range batch {
		rec := &batch[i]
		if i == 0 || rec.KafkaPartition != last.Partition || rec.Topic != last.Topic {
			if i > 0 {
				p.next[last] = max(p.next[last], lastNext)
			}
			last, lastNext, lastG = connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}, 0, nil
		}
		lastNext = max(lastNext, rec.KafkaOffset+1)
		if rec.Value == nil {
			continue // a tombstone
		}
		r, err := &rows[i], errs[i]
		if err != nil {
			p.bad = append(p.bad, badRecord{rec, err})
			continue
		}
		if lastG == nil {
			name, ok := t.names[rec.Topic]
			if !ok {
				name = tableFor(t.cfg.Table, rec.Topic)
				t.names[rec.Topic] = name
			}
			lastG = byName[name]
			if lastG == nil {
				id, err := identifier(name)
				if err != nil {
					return setupErrorf("table %q for topic %s: %v", t.cfg.Table, rec.Topic, err)
				}
				lastG = &group{id: id, name: id.Sanitize(), rows: make([]*row, 0, len(batch))}
				byName[name] = lastG
				p.groups = append(p.groups, lastG)
			}
		}
		lastG.rows = append(lastG.rows, r)
	}
	if len(batch) > 0 {
		p.next[last] = max(p.next[last], lastNext)
	}
	for _, g := range p.groups {
		tbl, err := t.ensureTable(ctx, g)
		if err != nil {
			return err
		}
		g.tbl = tbl
	}
	if t.cfg.ExactlyOnce && !t.offsetsReady {
		if err := t.ensureOffsetsTable(ctx); err != nil {
			return err
		}
	}
	err := t.writeTx(ctx, p, false)
	if err != nil && classify(err) == classData && !isWrapped(err) {
		t.log.Info("the batch failed on its data; writing it row by row", "records", len(batch), "err", dbMessage(err))
		err = t.writeTx(ctx, p, true)
	}
	return err
}

// mapRows maps the records of a batch to rows, into rows and errs by index. A large batch is
// mapped on two goroutines when there are cores for them: mapping is most of the task's own
// work, and the database waits for it.
func (t *Task) mapRows(batch []connect.Record, rows []row, errs []error) {
	per := fieldsOf(batch) + 2
	if len(t.fieldBuf) < len(batch)*per {
		t.fieldBuf = make([]field, len(batch)*per)
	}
	if len(batch) < 256 || goruntime.GOMAXPROCS(0) < 2 {
		t.mappers[0].mapRange(batch, rows, errs, 0, len(batch), t.fieldBuf[:0])
		return
	}
	half := len(batch) / 2
	var wg sync.WaitGroup
	wg.Go(func() {
		t.mappers[1].mapRange(batch, rows, errs, half, len(batch), t.fieldBuf[half*per:half*per])
	})
	t.mappers[0].mapRange(batch, rows, errs, 0, half, t.fieldBuf[:0:half*per])
	wg.Wait()
}

// mapRange maps batch[from:to], keeping the rows' fields in arena while it has room.
//
// Each row's fields start as an empty slice at the arena's end, capped at the arena's room,
// and mapInto appends to it. When the fields fit, append wrote them into the arena itself, and
// the arena grows over them; when they did not, append moved them to an array of their own,
// and the arena stays as it was. Comparing the address of the row's first field with the
// arena's next slot tells which happened, without mapInto knowing about arenas. A batch's
// fields so cost one allocation instead of one per record: that was most of the mapping's
// garbage in the throughput harness (TestThroughputVsRawCopy, SLUICE_BENCH=1), and
// TestMapRecord* check that rows come out the same either way.
func (m *mapper) mapRange(batch []connect.Record, rows []row, errs []error, from, to int, arena []field) {
	for i := from; i < to; i++ {
		rec := &batch[i]
		if rec.Value == nil {
			continue
		}
		r := &rows[i]
		r.fields = arena[len(arena):len(arena):cap(arena)]
		errs[i] = m.mapInto(rec, r)
		if n := len(r.fields); n > 0 && n <= cap(arena)-len(arena) && &arena[:len(arena)+1][len(arena)] == &r.fields[0] {
			arena = arena[:len(arena)+n] // the fields stayed in the arena
		}
		r.fields = r.fields[:len(r.fields):len(r.fields)]
	}
}

// fieldsOf guesses how many fields a record of the batch has.
func fieldsOf(batch []connect.Record) int {
	for i := range batch {
		if m, ok := batch[i].Value.(map[string]any); ok {
			n := len(m)
			for _, v := range m {
				if nested, ok := v.(map[string]any); ok {
					n += len(nested)
				}
			}
			return n
		}
	}
	return 0
}

func isWrapped(err error) bool {
	var pe policyError
	var se setupError
	return errors.As(err, &pe) || errors.As(err, &se)
}

// writeTx writes a planned batch in one transaction: with exactly.once, lock and read the
// stored offsets and skip what they cover; COPY each table's rows (or, rowByRow, insert each
// in a savepoint); hand refused records to the error policy; store the new offsets; commit.
func (t *Task) writeTx(ctx context.Context, p *plan, rowByRow bool) error {
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	pid := conn.Conn().PgConn().PID()
	if !t.cfg.ExactlyOnce && !rowByRow && len(p.bad) == 0 && len(p.groups) == 1 {
		// The common case needs no transaction around the COPY or the INSERT, each atomic by
		// itself.
		write := t.copyWithoutTx
		if t.cfg.Mode == ModeUpsert {
			write = t.upsertWithoutTx
		}
		done, err := write(ctx, conn, p)
		if done || err != nil {
			return err
		}
	}

	// The transaction is begun by hand, so that with exactly.once BEGIN travels with the
	// statement that locks, reads and advances the stored offsets: one round trip.
	var stored connect.Offsets
	if t.cfg.ExactlyOnce {
		stored, err = t.beginWithOffsets(ctx, conn, p.next)
	} else {
		_, err = conn.Exec(ctx, "BEGIN")
	}
	committed := false
	defer func() {
		if !committed {
			rollback(conn)
		}
	}()
	if err != nil {
		return err
	}
	keep := func(rec *connect.Record) bool {
		off, ok := stored[connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}]
		return !ok || rec.KafkaOffset >= off
	}
	var refused []badRecord
	for _, b := range p.bad {
		if keep(b.rec) {
			refused = append(refused, b)
		}
	}
	var newStages []string
	for _, g := range p.groups {
		rows := make([]*row, 0, len(g.rows))
		for _, r := range g.rows {
			if keep(r.rec) {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		a := t.assemble(g.tbl, rows, rowByRow)
		if t.cfg.Mode == ModeUpsert && len(a.slow) > 0 && len(a.fast) > 0 {
			// Rows of one key must be merged in record order: write all of them one by one.
			a = t.assemble(g.tbl, rows, true)
		}
		if len(a.fast) > 0 {
			created, err := t.copyRows(ctx, conn, g.tbl, a, slices.Contains(t.stages[pid], g.tbl.stage))
			if err != nil {
				return err
			}
			if created {
				newStages = append(newStages, g.tbl.stage)
			}
		}
		for i, r := range a.slow {
			bad, err := t.insertRow(ctx, conn, g.tbl, a.cols, a.slowValues[i])
			if err != nil {
				return err
			}
			if bad != nil {
				refused = append(refused, badRecord{r.rec, bad})
			}
		}
	}
	for _, b := range refused {
		if err := t.tc.Report(ctx, *b.rec, b.reason); err != nil {
			return policyError{err}
		}
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	committed = true
	if tag.String() != "COMMIT" { // the transaction had failed; PostgreSQL rolled it back
		return errRolledBack
	}
	if len(newStages) > 0 {
		t.stages[pid] = append(t.stages[pid], newStages...)
	}
	return nil
}

// copyWithoutTx COPYs an append batch of one table when every row is ready for COPY;
// done is false, with nothing written, when some row needs the row-by-row path.
func (t *Task) copyWithoutTx(ctx context.Context, conn *pgxpool.Conn, p *plan) (done bool, err error) {
	g := p.groups[0]
	a := t.assemble(g.tbl, g.rows, false)
	if len(a.slow) > 0 {
		return false, nil
	}
	_, err = conn.CopyFrom(ctx, g.tbl.id, a.cols, pgx.CopyFromRows(a.fast))
	return err == nil, err
}

// smallUpsert is the most rows an upsert batch may have for upsertWithoutTx.
const smallUpsert = 100

// upsertWithoutTx writes an upsert batch of one table of at most smallUpsert rows, each ready
// for COPY, as one INSERT ... VALUES ... ON CONFLICT: a single round trip, where the staging
// path makes five (BEGIN, COPY's two, the merge, COMMIT), each waiting for PostgreSQL to be
// scheduled on a busy machine. done is false, with nothing written, when the batch is not
// such a batch. A large batch goes through COPY, which is faster per row.
func (t *Task) upsertWithoutTx(ctx context.Context, conn *pgxpool.Conn, p *plan) (done bool, err error) {
	g := p.groups[0]
	if len(g.rows) > smallUpsert {
		return false, nil
	}
	a := t.assemble(g.tbl, g.rows, false)
	if len(a.slow) > 0 {
		return false, nil
	}
	rows := dedupe(a) // one statement may not update a row twice
	args := make([]any, 0, len(rows)*len(a.cols))
	for _, r := range rows {
		args = append(args, r...)
	}
	if _, err := conn.Exec(ctx, t.ddl.insertRows(g.tbl, a.cols, len(rows)), args...); err != nil {
		return false, withoutUniqueKey(g.tbl, t.cfg.KeyColumns, err)
	}
	return true, nil
}

// withoutUniqueKey explains the error of an upsert into a table without a unique constraint on
// the key columns, which the user must add; other errors it returns as they are.
func withoutUniqueKey(tbl *table, keyColumns []string, err error) error {
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P10" {
		return setupErrorf("table %s has no primary key or unique constraint on key.columns (%s), which upsert needs: %s",
			tbl.name, quoteList(keyColumns), pgErr.Message)
	}
	return err
}

// copyRows COPYs assembled rows into the table, or for upserts into the connection's staging
// table and from there with INSERT ... ON CONFLICT. created says whether it created the
// staging table in this transaction.
func (t *Task) copyRows(ctx context.Context, tx *pgxpool.Conn, tbl *table, a *assembled, haveStage bool) (created bool, err error) {
	if t.cfg.Mode != ModeUpsert {
		_, err := tx.CopyFrom(ctx, tbl.id, a.cols, pgx.CopyFromRows(a.fast))
		return false, err
	}
	if !haveStage {
		if _, err := tx.Exec(ctx, t.ddl.stageTable(tbl)); err != nil {
			return false, err
		}
		created = true
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", tbl.stage}, a.cols, pgx.CopyFromRows(dedupe(a))); err != nil {
		return created, err
	}
	if _, err := tx.Exec(ctx, t.ddl.merge(tbl, a.cols)); err != nil {
		return created, withoutUniqueKey(tbl, t.cfg.KeyColumns, err)
	}
	return created, nil
}

// insertRow writes one row with its values as text in a savepoint; bad is the database's
// refusal of the row, err a failure of the whole transaction.
func (t *Task) insertRow(ctx context.Context, tx *pgxpool.Conn, tbl *table, cols []string, values []any) (bad, err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT sluice_row"); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, t.ddl.insertRow(tbl, cols), values...); err != nil {
		if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_row"); rerr != nil {
			return nil, rerr
		}
		switch classify(err) {
		case classData:
			return rowError(tbl, err), nil
		case classFatal:
			return nil, withoutUniqueKey(tbl, t.cfg.KeyColumns, err)
		}
		return nil, err
	}
	_, err = tx.Exec(ctx, "RELEASE SAVEPOINT sluice_row")
	return nil, err
}

// rollback ends a failed transaction; a connection that cannot is closed, so that the pool
// drops it.
func rollback(conn *pgxpool.Conn) {
	pc := conn.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// rowError is the reason a refused row goes to the error policy: the database's message,
// naming the column when the database does.
func rowError(tbl *table, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ColumnName != "" {
		return fmt.Errorf("table %s, column %q: %s", tbl.name, pgErr.ColumnName, dbMessage(err))
	}
	return fmt.Errorf("table %s: %s", tbl.name, dbMessage(err))
}

// beginWithOffsets begins the transaction together with the statement that locks the stored
// offsets of the batch's partitions, returns them, and advances them past the batch.
func (t *Task) beginWithOffsets(ctx context.Context, conn *pgxpool.Conn, next connect.Offsets) (connect.Offsets, error) {
	tps := sortedPartitions(next) // the same order in every task, against deadlocks
	topics, parts, offs := make([]string, len(tps)), make([]int32, len(tps)), make([]int64, len(tps))
	for i, tp := range tps {
		topics[i], parts[i], offs[i] = tp.Topic, tp.Partition, next[tp]
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(t.ddl.advanceOffsets(t.offsets), t.tc.Connector(), topics, parts, offs)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	stored, err := scanOffsets(rows)
	if err != nil {
		return nil, err
	}
	for tp, off := range stored {
		if off < 0 {
			delete(stored, tp)
		}
	}
	return stored, br.Close()
}

// storedOffsets reads the connector's stored offsets.
func (t *Task) storedOffsets(ctx context.Context) (connect.Offsets, error) {
	if err := t.ensureOffsetsTable(ctx); err != nil {
		return nil, err
	}
	rows, err := t.pool.Query(ctx, t.ddl.readOffsets(t.offsets), t.tc.Connector())
	if err != nil {
		return nil, err
	}
	return scanOffsets(rows)
}

// scanOffsets reads rows of (topic, partition, offset) and closes them.
func scanOffsets(rows pgx.Rows) (connect.Offsets, error) {
	defer rows.Close()
	out := connect.Offsets{}
	for rows.Next() {
		var tp connect.TopicPartition
		var off int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &off); err != nil {
			return nil, err
		}
		out[tp] = off
	}
	return out, rows.Err()
}

func (t *Task) ensureOffsetsTable(ctx context.Context) error {
	if t.offsetsReady {
		return nil
	}
	if err := t.runDDL(ctx, t.offsets.Sanitize(), t.ddl.offsetsTable(t.offsets)); err != nil {
		if classify(err) == classFatal {
			return setupErrorf("creating the offsets table %s: %s", t.offsets.Sanitize(), dbMessage(err))
		}
		return err
	}
	t.offsetsReady = true
	return nil
}

func sortedPartitions(o connect.Offsets) []connect.TopicPartition {
	tps := make([]connect.TopicPartition, 0, len(o))
	for tp := range o {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	return tps
}
