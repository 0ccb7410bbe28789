package timescalesink

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// column is a column of a target table.
type column struct {
	name string
	typ  string // as format_type writes it
	kind kind
	bits int
}

// table is what the task knows of a target table.
type table struct {
	id    pgx.Identifier
	name  string // sanitized, for SQL and messages
	cols  []column
	index map[string]int
	stage string // name of the temporary staging table for upserts, by column set
}

func (t *table) column(name string) (column, bool) {
	i, ok := t.index[name]
	if !ok {
		return column{}, false
	}
	return t.cols[i], true
}

// identifier builds the identifier of a table setting (schema.table or table).
func identifier(s string) (pgx.Identifier, error) {
	schema, name, err := splitTable(s)
	if err != nil {
		return nil, err
	}
	if schema == "" {
		return pgx.Identifier{name}, nil
	}
	return pgx.Identifier{schema, name}, nil
}

// colDef is a column auto-create or auto-evolve adds.
type colDef struct {
	name string
	typ  string
}

// ddl builds the SQL that creates and evolves tables; its methods are pure, so that the
// statements are unit-tested without a TimescaleDB.
type ddl struct {
	cfg *Config
}

// createTable creates the table with the time column first, then cols, then the catch-all
// column, with a primary key on key.columns for upserts.
func (d ddl) createTable(id pgx.Identifier, cols []colDef) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n  %s timestamptz NOT NULL", id.Sanitize(), quote(d.cfg.TimeColumn))
	for _, c := range cols {
		fmt.Fprintf(&b, ",\n  %s %s", quote(c.name), c.typ)
		if d.cfg.Mode == ModeUpsert && slices.Contains(d.cfg.KeyColumns, c.name) {
			b.WriteString(" NOT NULL")
		}
	}
	if d.cfg.CatchAll != "" {
		fmt.Fprintf(&b, ",\n  %s jsonb", quote(d.cfg.CatchAll))
	}
	if d.cfg.Mode == ModeUpsert && len(d.cfg.KeyColumns) > 0 {
		fmt.Fprintf(&b, ",\n  PRIMARY KEY (%s)", quoteList(d.cfg.KeyColumns))
	}
	b.WriteString("\n)")
	return b.String()
}

// addColumn adds a column for a new field; existing ones are never touched.
func (d ddl) addColumn(id pgx.Identifier, c colDef) string {
	return fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", id.Sanitize(), quote(c.name), c.typ)
}

// hypertable returns the statements that make a new table a hypertable, with the compression
// and retention policies asked for. TimescaleDB requires unique keys to contain the time
// column, so an upsert key without it is an error.
func (d ddl) hypertable(id pgx.Identifier) ([]string, error) {
	if d.cfg.Mode == ModeUpsert && !slices.Contains(d.cfg.KeyColumns, d.cfg.TimeColumn) {
		return nil, fmt.Errorf("key.columns %q must include the time column %q to make %s a hypertable: TimescaleDB requires unique keys to contain the time column (or set timescale.hypertable=false)",
			strings.Join(d.cfg.KeyColumns, ","), d.cfg.TimeColumn, id.Sanitize())
	}
	rel := literal(id.Sanitize())
	stmts := []string{fmt.Sprintf("SELECT create_hypertable(%s, %s, chunk_time_interval => %s, if_not_exists => TRUE)",
		rel, literal(d.cfg.TimeColumn), interval(d.cfg.ChunkInterval))}
	if d.cfg.SpaceColumn != "" {
		stmts = append(stmts, fmt.Sprintf("SELECT add_dimension(%s, by_hash(%s, %d), if_not_exists => TRUE)",
			rel, literal(d.cfg.SpaceColumn), d.cfg.SpacePartitions))
	}
	if d.cfg.CompressAfter > 0 {
		segmentBy := d.cfg.CompressSegmentBy
		if len(segmentBy) == 0 {
			for _, k := range d.cfg.KeyColumns {
				if k != d.cfg.TimeColumn {
					segmentBy = append(segmentBy, k)
				}
			}
		}
		set := "timescaledb.compress"
		if len(segmentBy) > 0 {
			set += ", timescaledb.compress_segmentby = " + literal(quoteList(segmentBy))
		}
		set += ", timescaledb.compress_orderby = " + literal(quote(d.cfg.TimeColumn)+" DESC")
		stmts = append(stmts,
			fmt.Sprintf("ALTER TABLE %s SET (%s)", id.Sanitize(), set),
			fmt.Sprintf("SELECT add_compression_policy(%s, %s, if_not_exists => TRUE)", rel, interval(d.cfg.CompressAfter)))
	}
	if d.cfg.RetainFor > 0 {
		stmts = append(stmts, fmt.Sprintf("SELECT add_retention_policy(%s, %s, if_not_exists => TRUE)", rel, interval(d.cfg.RetainFor)))
	}
	return stmts, nil
}

// offsetsTable creates the table that holds Kafka offsets for exactly.once.
func (d ddl) offsetsTable(id pgx.Identifier) string {
	return "CREATE TABLE IF NOT EXISTS " + id.Sanitize() + ` (
  connector text NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  next_offset bigint NOT NULL,
  prev_offset bigint NOT NULL DEFAULT -1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (connector, topic, kafka_partition)
)`
}

// advanceOffsets locks the stored offsets of the partitions of a batch, returns them (-1:
// nothing stored) and stores the offsets after the batch, never moving one back. Two tasks
// that both think they own a partition write it one after the other, and the second sees what
// the first stored.
func (d ddl) advanceOffsets(id pgx.Identifier) string {
	return "INSERT INTO " + id.Sanitize() + ` AS o (connector, topic, kafka_partition, next_offset, prev_offset)
SELECT $1, x.t, x.p, x.n, -1 FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS x(t, p, n)
ON CONFLICT (connector, topic, kafka_partition) DO UPDATE
SET prev_offset = o.next_offset, next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset), updated_at = now()
RETURNING topic, kafka_partition, prev_offset`
}

// readOffsets reads a connector's stored offsets.
func (d ddl) readOffsets(id pgx.Identifier) string {
	return "SELECT topic, kafka_partition, next_offset FROM " + id.Sanitize() + " WHERE connector = $1 AND next_offset >= 0"
}

// stageTable creates the session's staging table for upserts into t: same columns, emptied at
// each commit.
func (d ddl) stageTable(t *table) string {
	return fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DELETE ROWS", quote(t.stage), t.name)
}

// merge moves the staged rows into t: cols are the batch's columns.
func (d ddl) merge(t *table, cols []string) string {
	var b strings.Builder
	list := quoteList(cols)
	fmt.Fprintf(&b, "INSERT INTO %s (%s) SELECT %s FROM %s", t.name, list, list, quote(t.stage))
	b.WriteString(d.onConflict(cols))
	return b.String()
}

// insertRow writes one row, for the row-by-row path.
func (d ddl) insertRow(t *table, cols []string) string { return d.insertRows(t, cols, 1) }

// insertRows writes n rows, their values in parameters row after row.
func (d ddl) insertRows(t *table, cols []string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", t.name, quoteList(cols))
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", r*len(cols)+i+1)
		}
		b.WriteByte(')')
	}
	if d.cfg.Mode == ModeUpsert {
		b.WriteString(d.onConflict(cols))
	}
	return b.String()
}

func (d ddl) onConflict(cols []string) string {
	var set []string
	for _, c := range cols {
		if !slices.Contains(d.cfg.KeyColumns, c) {
			set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", quote(c), quote(c)))
		}
	}
	if len(set) == 0 {
		return fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", quoteList(d.cfg.KeyColumns))
	}
	return fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", quoteList(d.cfg.KeyColumns), strings.Join(set, ", "))
}

// stageName names the staging table of a table with a given column set, so that a table that
// gained columns gets a new one.
func stageName(t *table) string {
	h := fnv.New64a()
	h.Write([]byte(t.name))
	for _, c := range t.cols {
		h.Write([]byte{0})
		h.Write([]byte(c.name))
		h.Write([]byte{0})
		h.Write([]byte(c.typ))
	}
	return fmt.Sprintf("sluice_stage_%016x", h.Sum64())
}

const loadColumns = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// loadTable reads a table's columns; nil when the table does not exist.
func loadTable(ctx context.Context, q querier, id pgx.Identifier) (*table, error) {
	rows, err := q.Query(ctx, loadColumns, id.Sanitize())
	if err != nil {
		return nil, err
	}
	t := &table{id: id, name: id.Sanitize(), index: map[string]int{}}
	for rows.Next() {
		var c column
		var typname string
		if err := rows.Scan(&c.name, &c.typ, &typname); err != nil {
			rows.Close()
			return nil, err
		}
		c.kind, c.bits = kindOf(typname)
		t.index[c.name] = len(t.cols)
		t.cols = append(t.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	t.stage = stageName(t)
	return t, nil
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// interval writes a duration as an SQL interval.
func interval(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("INTERVAL '%d seconds'", d/time.Second)
	}
	return fmt.Sprintf("INTERVAL '%d milliseconds'", d/time.Millisecond)
}
