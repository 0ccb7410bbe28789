package timescalesink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ensureTable returns what the task knows of a group's table, creating the table
// (auto.create) or adding columns for new fields (auto.evolve) first.
func (t *Task) ensureTable(ctx context.Context, g *group) (*table, error) {
	tbl := t.tables[g.name]
	if tbl == nil {
		var err error
		if tbl, err = loadTable(ctx, t.pool, g.id); err != nil {
			return nil, err
		}
	}
	if tbl == nil {
		if !t.cfg.AutoCreate {
			return nil, setupErrorf("table %s does not exist: create it, or set auto.create=true", g.name)
		}
		if err := t.createTable(ctx, g); err != nil {
			return nil, err
		}
		var err error
		if tbl, err = loadTable(ctx, t.pool, g.id); err != nil {
			return nil, err
		}
		if tbl == nil {
			return nil, setupErrorf("table %s is still missing after CREATE TABLE", g.name)
		}
	}
	var resolvedFor *table // the table the rows' fields know their columns in
	if t.cfg.AutoEvolve {
		missingField := resolve(tbl, g.rows)
		resolvedFor = tbl
		_, haveCatchAll := tbl.index[t.cfg.CatchAll]
		var missing []colDef
		if missingField || (t.cfg.CatchAll != "" && !haveCatchAll) {
			missing = t.newColumns(tbl, g.rows)
		}
		if len(missing) > 0 {
			stmts := make([]string, len(missing))
			names := make([]string, len(missing))
			for i, c := range missing {
				stmts[i], names[i] = t.ddl.addColumn(tbl.id, c), c.name
			}
			if err := t.runDDL(ctx, tbl.name, stmts...); err != nil {
				return nil, t.ddlError(err, "adding columns "+quoteList(names)+" to "+tbl.name)
			}
			t.log.Info("added columns for new fields", "table", tbl.name, "columns", names)
			var err error
			if tbl, err = loadTable(ctx, t.pool, g.id); err != nil {
				return nil, err
			}
			if tbl == nil {
				return nil, setupErrorf("table %s disappeared while adding columns", g.name)
			}
		}
	}
	if c, ok := tbl.column(t.cfg.TimeColumn); !ok {
		return nil, setupErrorf("table %s has no time column %q (time.column)", tbl.name, t.cfg.TimeColumn)
	} else if c.kind != kindTime {
		return nil, setupErrorf("the time column %q of table %s is of type %s; want timestamptz", t.cfg.TimeColumn, tbl.name, c.typ)
	}
	if t.cfg.CatchAll != "" {
		if c, ok := tbl.column(t.cfg.CatchAll); !ok {
			return nil, setupErrorf("table %s has no column %q for unmapped fields (fields.catchall.column): add it as jsonb, or set auto.evolve=true", tbl.name, t.cfg.CatchAll)
		} else if c.kind != kindJSON && c.kind != kindText {
			return nil, setupErrorf("the catch-all column %q of table %s is of type %s; want jsonb", t.cfg.CatchAll, tbl.name, c.typ)
		}
	}
	if resolvedFor != tbl {
		resolve(tbl, g.rows)
	}
	t.tables[g.name] = tbl
	return tbl, nil
}

// newColumns lists the fields of rows that tbl (nil: a table to create) has no column for,
// with the types auto-create gives them, sorted by name; fields only ever null are left out.
// The catch-all column is included when missing.
func (t *Task) newColumns(tbl *table, rows []*row) []colDef {
	types := map[string]string{}
	var order []string
	for _, r := range rows {
		for _, f := range r.fields {
			if tbl != nil && f.col >= 0 {
				continue
			}
			have, seen := types[f.column]
			typ := inferType(f.value, f.schema, t.cfg.Numbers)
			if !seen {
				order = append(order, f.column)
			}
			types[f.column] = widen(have, typ)
		}
	}
	var out []colDef
	for _, name := range order {
		if types[name] != "" {
			out = append(out, colDef{name: name, typ: types[name]})
		}
	}
	if tbl != nil && t.cfg.CatchAll != "" {
		if _, ok := tbl.index[t.cfg.CatchAll]; !ok {
			out = append(out, colDef{name: t.cfg.CatchAll, typ: "jsonb"})
		}
	}
	slices.SortFunc(out, func(a, b colDef) int { return strings.Compare(a.name, b.name) })
	return out
}

// createTable creates a group's table from its rows, as a hypertable when the extension is
// there.
func (t *Task) createTable(ctx context.Context, g *group) error {
	cols := t.newColumns(nil, g.rows)
	for _, k := range append(slices.Clone(t.cfg.KeyColumns), t.cfg.SpaceColumn) {
		if k != "" && k != t.cfg.TimeColumn && !slices.ContainsFunc(cols, func(c colDef) bool { return c.name == k }) {
			cols = append(cols, colDef{name: k, typ: "text"}) // only nulls seen so far
		}
	}
	stmts := []string{t.ddl.createTable(g.id, cols)}
	hyper := false
	if t.cfg.Hypertable {
		ok, err := t.timescaleInstalled(ctx)
		if err != nil {
			return err
		}
		if ok {
			more, err := t.ddl.hypertable(g.id)
			if err != nil {
				return setupError{err}
			}
			stmts, hyper = append(stmts, more...), true
		}
	}
	if err := t.runDDL(ctx, g.name, stmts...); err != nil {
		return t.ddlError(err, "creating table "+g.name)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name + " " + c.typ
	}
	t.log.Info("created table", "table", g.name, "hypertable", hyper, "columns", names)
	return nil
}

// timescaleInstalled asks once whether the timescaledb extension is installed, and logs once
// when it is not.
func (t *Task) timescaleInstalled(ctx context.Context) (bool, error) {
	if t.timescale != nil {
		return *t.timescale, nil
	}
	var version string
	err := t.pool.QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").Scan(&version)
	installed := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	t.timescale = &installed
	if installed {
		t.log.Info("the timescaledb extension is installed; new tables become hypertables", "version", version)
	} else {
		t.log.Warn("the timescaledb extension is not installed in the database; new tables are plain PostgreSQL tables, and the timescale.* settings are ignored")
	}
	return installed, nil
}

// runDDL runs statements in one transaction under an advisory lock on the table's name, so
// that tasks creating or evolving the same table take turns.
func (t *Task) runDDL(ctx context.Context, lockName string, stmts ...string) error {
	tx, err := t.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "sluice:"+lockName); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// ddlError makes a DDL failure that retrying does not fix a setup error naming what was done.
func (t *Task) ddlError(err error, what string) error {
	if c := classify(err); c == classRetry || c == classSchema {
		return err
	}
	return setupErrorf("%s: %s", what, dbMessage(err))
}

// assembled is a group's rows as column values: fast ones for COPY, slow ones (values the
// columns' types do not take as they are) as text for INSERTs one by one.
type assembled struct {
	cols       []string
	keyPos     []int
	fast       [][]any
	slow       []*row
	slowValues [][]any
}

// assemble lays rows out on the table's columns: the time column, the columns the rows have
// values for, and the catch-all column for fields without one. With allSlow every row is
// prepared for the row-by-row path. The rows' fields know their columns in tbl (ensureTable).
func (t *Task) assemble(tbl *table, rows []*row, allSlow bool) *assembled {
	used := make([]bool, len(tbl.cols))
	used[tbl.index[t.cfg.TimeColumn]] = true // ensureTable checked it is there
	catchIdx := -1
	if t.cfg.CatchAll != "" {
		catchIdx = tbl.index[t.cfg.CatchAll]
	}
	for _, r := range rows {
		for i := range r.fields {
			f := &r.fields[i]
			switch {
			case f.col >= 0:
				used[f.col] = true
			case catchIdx >= 0:
				used[catchIdx] = true
			default:
				t.warnDropped(tbl, f.column)
			}
		}
		if len(r.extra) > 0 && catchIdx >= 0 {
			used[catchIdx] = true
		}
	}
	a := &assembled{}
	pos := make([]int, len(tbl.cols)) // table column index to batch position, or -1
	var kinds []column
	for i, c := range tbl.cols {
		pos[i] = -1
		if used[i] {
			pos[i] = len(a.cols)
			a.cols = append(a.cols, c.name)
			kinds = append(kinds, c)
		}
	}
	for _, k := range t.cfg.KeyColumns {
		if i, ok := tbl.index[k]; ok && pos[i] >= 0 {
			a.keyPos = append(a.keyPos, pos[i])
		}
	}
	l := layout{timePos: pos[tbl.index[t.cfg.TimeColumn]], catchPos: -1, pos: pos}
	if catchIdx >= 0 {
		l.catchPos = pos[catchIdx]
	}
	// The values live in a buffer the task reuses: each assembled batch is written before the
	// next is assembled.
	if n := len(rows) * len(a.cols); cap(t.valBuf) < n {
		t.valBuf = make([]any, n)
	}
	arena := t.valBuf[:len(rows)*len(a.cols)]
	clear(arena)
	for i, r := range rows {
		vals := arena[i*len(a.cols) : (i+1)*len(a.cols) : (i+1)*len(a.cols)]
		l.fill(r, vals)
		ok := !allSlow
		if ok {
			for i, v := range vals {
				if vals[i], ok = coerce(kinds[i].kind, kinds[i].bits, v); !ok {
					break
				}
			}
			if ok {
				a.fast = append(a.fast, vals)
				continue
			}
			clear(vals)
			l.fill(r, vals) // again from the record's values, some of them were coerced
		}
		for i, v := range vals {
			vals[i] = textOf(v)
		}
		a.slow = append(a.slow, r)
		a.slowValues = append(a.slowValues, vals)
	}
	return a
}

// layout places a row's values on the batch's columns.
type layout struct {
	timePos, catchPos int
	pos               []int // by table column index
}

func (l *layout) fill(r *row, vals []any) {
	vals[l.timePos] = r.time
	var extra map[string]any
	for _, f := range r.fields {
		if f.col >= 0 {
			vals[l.pos[f.col]] = f.value
		} else if l.catchPos >= 0 {
			if extra == nil {
				extra = make(map[string]any, len(r.extra)+1)
			}
			extra[f.column] = f.value
		}
	}
	if l.catchPos >= 0 && (extra != nil || len(r.extra) > 0) {
		if extra == nil {
			extra = make(map[string]any, len(r.extra))
		}
		for k, v := range r.extra {
			extra[k] = v
		}
		vals[l.catchPos] = extra
	}
}

// resolve finds the column of each field of rows in tbl (-1: none), and reports whether some
// field has none.
func resolve(tbl *table, rows []*row) (missing bool) {
	for _, r := range rows {
		for i := range r.fields {
			f := &r.fields[i]
			idx, ok := tbl.index[f.column]
			if !ok {
				idx, missing = -1, true
			}
			f.col = idx
		}
	}
	return missing
}

// warnDropped says once per table and field that a field without a column is dropped.
func (t *Task) warnDropped(tbl *table, column string) {
	key := tbl.name + "\x00" + column
	if t.dropped[key] {
		return
	}
	t.dropped[key] = true
	t.log.Warn("dropping a field the table has no column for (set auto.evolve=true to add columns, or fields.catchall.column to keep such fields)",
		"table", tbl.name, "field", column)
}

// dedupe keeps the last row of each key, for a merge that touches each key once.
func dedupe(a *assembled) [][]any {
	if len(a.keyPos) == 0 || len(a.fast) < 2 {
		return a.fast
	}
	keys := make([]string, len(a.fast))
	last := make(map[string]int, len(a.fast))
	var buf []byte
	for i, vals := range a.fast {
		buf = buf[:0]
		for _, p := range a.keyPos {
			buf = appendKey(buf, vals[p])
		}
		keys[i] = string(buf)
		last[keys[i]] = i
	}
	if len(last) == len(a.fast) {
		return a.fast
	}
	out := make([][]any, 0, len(last))
	for i, vals := range a.fast {
		if last[keys[i]] == i {
			out = append(out, vals)
		}
	}
	return out
}

// appendKey appends a key value, with its type, in a form that tells values apart.
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		b = append(b, 's')
		b = strconv.AppendInt(b, int64(len(x)), 10)
		b = append(b, ':')
		b = append(b, x...)
	case int64:
		b = strconv.AppendInt(append(b, 'i'), x, 10)
	case float64:
		b = strconv.AppendFloat(append(b, 'f'), x, 'g', -1, 64)
	case time.Time:
		b = strconv.AppendInt(append(b, 't'), x.UnixNano(), 10)
	case nil:
		b = append(b, 'n')
	default:
		s := fmt.Sprintf("%T:%v", v, v)
		if m, ok := v.(map[string]any); ok {
			j, _ := json.Marshal(m)
			s = string(j)
		}
		b = strconv.AppendInt(append(b, 'o'), int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	return append(b, 0)
}
