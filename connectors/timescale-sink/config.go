package timescalesink

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/connect"
)

// The write modes.
const (
	ModeAppend = "append"
	ModeUpsert = "upsert"
)

// The time units of a numeric time field.
const (
	UnitSeconds = connect.UnitSeconds
	UnitMillis  = connect.UnitMillis
	UnitMicros  = connect.UnitMicros
	UnitNanos   = connect.UnitNanos
)

// How auto-create types JSON numbers of schemaless records.
const (
	NumbersInfer  = "infer"
	NumbersDouble = "double"
)

// TopicToken in the table setting is replaced by the record's topic.
const TopicToken = "${topic}"

// Config is the timescale-sink connector's configuration.
type Config struct {
	URL            string        `config:"connection.url" required:"true" secret:"true" group:"Connection" display:"Connection URL"`
	ConnectTimeout time.Duration `config:"connection.timeout" default:"10s" min:"100ms" group:"Connection" importance:"low" doc:"How long opening a connection may take before the attempt counts as failed (and is retried)."`
	WriteTimeout   time.Duration `config:"write.timeout" default:"60s" min:"100ms" group:"Connection" importance:"low" doc:"How long writing one batch (one transaction) may take before it is abandoned, rolled back and retried."`

	Table      string `config:"table" default:"${topic}" group:"Table" importance:"high"`
	TimeColumn string `config:"time.column" default:"time" group:"Table" importance:"high" doc:"Column of type timestamptz that holds each row's time, and the hypertable's time dimension."`
	TimeField  string `config:"time.field" group:"Table" importance:"high"`
	TimeUnit   string `config:"time.field.unit" default:"ms" enum:"s,ms,us,ns" group:"Table" importance:"low" doc:"Unit of a numeric time field: seconds, milliseconds, microseconds or nanoseconds since the epoch."`

	Mode         string   `config:"insert.mode" default:"append" enum:"append,upsert" group:"Writes" importance:"high"`
	KeyColumns   []string `config:"key.columns" group:"Writes"`
	ExactlyOnce  bool     `config:"exactly.once" default:"false" group:"Writes"`
	OffsetsTable string   `config:"offsets.table" default:"sluice_offsets" group:"Writes" importance:"low" doc:"Table, optionally schema-qualified, that holds the Kafka offsets with exactly.once; created when missing, one row per connector, topic and partition."`

	Flatten   bool     `config:"fields.flatten" default:"true" group:"Mapping"`
	Separator string   `config:"fields.flatten.separator" default:"_" group:"Mapping" importance:"low" doc:"Joins the names of nested fields into a column name."`
	Mapping   []string `config:"fields.mapping" group:"Mapping"`
	CatchAll  string   `config:"fields.catchall.column" group:"Mapping"`

	AutoCreate bool   `config:"auto.create" default:"false" group:"Schema Evolution"`
	AutoEvolve bool   `config:"auto.evolve" default:"false" group:"Schema Evolution"`
	Numbers    string `config:"auto.create.json.numbers" default:"double" enum:"double,infer" group:"Schema Evolution" importance:"low"`

	Hypertable        bool          `config:"timescale.hypertable" default:"true" group:"TimescaleDB"`
	ChunkInterval     time.Duration `config:"timescale.chunk.interval" default:"168h" min:"1s" group:"TimescaleDB" importance:"low" doc:"Time range each chunk of a new hypertable covers (chunk_time_interval)."`
	CompressAfter     time.Duration `config:"timescale.compression.after" default:"0" min:"0" group:"TimescaleDB" importance:"low" doc:"Turn on compression for new hypertables and compress chunks older than this (add_compression_policy); 0 leaves compression off."`
	CompressSegmentBy []string      `config:"timescale.compression.segmentby" group:"TimescaleDB" importance:"low" doc:"Columns compressed data is grouped by (timescaledb.compress_segmentby), such as device_id; empty uses key.columns other than the time column."`
	SpaceColumn       string        `config:"timescale.space.column" group:"TimescaleDB" importance:"low"`
	SpacePartitions   int           `config:"timescale.space.partitions" default:"4" min:"1" max:"32767" group:"TimescaleDB" importance:"low" doc:"Number of hash partitions of timescale.space.column."`
	DecompressLimit   int           `config:"timescale.decompression.limit" default:"0" min:"0" group:"TimescaleDB" importance:"low"`
	RetainFor         time.Duration `config:"timescale.retention" default:"0" min:"0" group:"TimescaleDB" importance:"low" doc:"Drop chunks of new hypertables older than this (add_retention_policy); 0 keeps everything."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"connection.url": "PostgreSQL connection URL, as pgx takes it: " +
			"postgres://user:password@host:5432/db?sslmode=require. Write the password as " +
			"${env:NAME} or ${file:path:key} to keep it out of the configuration.",
		"table": "Target table, optionally schema-qualified (schema.table). ${topic} is replaced by " +
			"the record's topic with every character other than a letter, digit or underscore " +
			"turned into an underscore, so iot.agg.sensor goes to iot_agg_sensor. Names are " +
			"quoted, so case is kept.",
		"time.field": "Field of the record value that holds the event time (a nested field by its flattened " +
			"name, such as reading_ts); the field is not written to a column of its own. A string " +
			"must be RFC 3339 (2024-05-01T12:00:00.123Z); a number counts time.field.unit since " +
			"the epoch; a Kafka Connect Timestamp is used as is. Empty takes the Kafka record " +
			"timestamp.",
		"insert.mode": "append writes every record as a new row with COPY. upsert COPYs the batch into a " +
			"temporary table and merges it with INSERT ... ON CONFLICT (key.columns) DO UPDATE in " +
			"the same transaction (a batch of up to 100 rows is one INSERT ... ON CONFLICT, in one " +
			"round trip), so the last record of a key wins.",
		"key.columns": "Columns that identify a row, for upsert (required there). Each comes from the record " +
			"value or, when the value lacks it, from the record key: a field of a struct or JSON " +
			"object key by name, or a plain key (string or number) as a whole when one column is " +
			"left. For a hypertable they must include time.column, as TimescaleDB requires of " +
			"unique keys.",
		"exactly.once": "Store each Kafka partition's next offset in offsets.table in the same transaction as " +
			"its rows, and resume from it when partitions are assigned, so a crash or restart " +
			"never duplicates nor loses a row, also in append mode. Without it delivery is at " +
			"least once: rows written after the last offset commit are written again after a " +
			"crash (harmless with upsert).",
		"fields.flatten": "Flatten nested objects (and structs) into one column per leaf field, named by the " +
			"path joined with fields.flatten.separator: {\"reading\": {\"temp\": 21.5}} becomes " +
			"the column reading_temp. With false a nested object goes to one jsonb column. Arrays " +
			"always go to jsonb columns.",
		"fields.mapping": "Which fields become which columns, as field:column pairs by flattened field name " +
			"(temperature:temp_c, reading_hum:humidity). When set, only the fields listed become " +
			"columns and the others are unmapped; when empty, every field goes to the column of " +
			"its name.",
		"fields.catchall.column": "jsonb column that receives the unmapped fields of each record as one object " +
			"(flattened name to value): the fields fields.mapping leaves out, and, without " +
			"auto.evolve, fields the table has no column for. Empty drops them.",
		"auto.create": "Create a missing table from the records: the time column, a column per field with " +
			"its type taken from the schema when records carry one, else from the JSON value " +
			"(bigint, double precision, boolean, text, bytea, timestamptz, jsonb for objects and " +
			"arrays), the catch-all column, and for upsert a primary key on key.columns.",
		"auto.evolve": "Add a column (ALTER TABLE ... ADD COLUMN) when a field arrives that the table has no " +
			"column for. Existing columns are never dropped or changed; a value the column's type " +
			"cannot hold is a bad record.",
		"auto.create.json.numbers": "Column type auto-create and auto-evolve give JSON numbers of schemaless records: " +
			"double makes every number double precision, as sensor readings want (many JSON " +
			"encoders write 21.0 as 21); infer makes whole numbers bigint and others double " +
			"precision, so a field that is 21 in the first batch and 21.5 in a later one fails on " +
			"the second.",
		"timescale.hypertable": "Make tables that auto-create creates hypertables on time.column when the timescaledb " +
			"extension is installed in the database. Without the extension the tables are plain, " +
			"and the log says so once.",
		"timescale.space.column": "Column to partition new hypertables by as well as by time (add_dimension with " +
			"by_hash), such as device_id; empty partitions by time only, which TimescaleDB " +
			"recommends on a single node. With upsert it must be one of key.columns, as " +
			"TimescaleDB requires of unique keys.",
		"timescale.decompression.limit": "Most rows of compressed chunks one write transaction may decompress " +
			"(timescaledb.max_tuples_decompressed_per_dml_transaction, set on the sink's " +
			"connections). Upserts of late records into compressed chunks decompress the segments " +
			"they touch, and TimescaleDB refuses a transaction over its limit (100000 by " +
			"default), which a retry of the same batch would meet again: 0, the default, lifts " +
			"the limit for the sink; a number keeps one, and a batch over it fails the task with " +
			"TimescaleDB's message.",
	}
}

// Example is a configuration that upserts per-sensor aggregates into hypertables named after
// their topics.
func (Config) Example() connect.Config {
	return connect.Config{
		"topics":                   "iot.agg.sensor",
		"connection.url":           "postgres://sluice:${env:TIMESCALE_PASSWORD}@timescaledb:5432/iot",
		"time.field":               "window_start",
		"insert.mode":              "upsert",
		"key.columns":              "device_id,time",
		"auto.create":              "true",
		"auto.evolve":              "true",
		"timescale.retention":      "720h",
		"fields.catchall.column":   "extra",
		"timescale.chunk.interval": "24h",
	}
}

// Validate checks the rules that tie settings together.
func (c Config) Validate() error {
	var errs connect.FieldProblems
	if c.URL != "" && !connect.HasPlaceholder(c.URL) {
		if _, err := parseURL(c.URL); err != nil {
			errs.Addf("connection.url", "Invalid connection URL: %v", err)
		}
	}
	if _, _, err := splitTable(c.Table); err != nil {
		errs.Addf("table", "%v", err)
	}
	if _, _, err := splitTable(c.OffsetsTable); err != nil || strings.Contains(c.OffsetsTable, TopicToken) {
		errs.Addf("offsets.table", "Invalid value %q: must be a table name, optionally schema-qualified, without %s", c.OffsetsTable, TopicToken)
	}
	if strings.TrimSpace(c.TimeColumn) == "" {
		errs.Addf("time.column", "Invalid value %q: must name a column", c.TimeColumn)
	}
	if c.Mode == ModeUpsert && len(c.KeyColumns) == 0 {
		errs.Addf("key.columns", "Missing key columns: insert.mode upsert needs key.columns to say which rows a record replaces")
	}
	if dup := firstDuplicate(c.KeyColumns); dup != "" {
		errs.Addf("key.columns", "Invalid value %q: column %q is listed twice", strings.Join(c.KeyColumns, ","), dup)
	}
	if c.Separator == "" && c.Flatten {
		errs.Addf("fields.flatten.separator", "Invalid value \"\": flattening needs a separator")
	}
	if _, err := parseMapping(c.Mapping); err != nil {
		errs.Addf("fields.mapping", "%v", err)
	}
	if c.SpaceColumn != "" && c.SpaceColumn == c.TimeColumn {
		errs.Addf("timescale.space.column", "Invalid value %q: it is the time column, which is already a dimension", c.SpaceColumn)
	}
	if c.SpaceColumn != "" && c.Mode == ModeUpsert && !slices.Contains(c.KeyColumns, c.SpaceColumn) {
		errs.Addf("timescale.space.column", "Invalid value %q: with insert.mode upsert it must be one of key.columns (%s), as TimescaleDB requires unique keys to contain every partitioning column", c.SpaceColumn, strings.Join(c.KeyColumns, ","))
	}
	if c.CatchAll != "" && c.CatchAll == c.TimeColumn {
		errs.Addf("fields.catchall.column", "Invalid value %q: it is the time column", c.CatchAll)
	}
	if c.CatchAll != "" && slices.Contains(c.KeyColumns, c.CatchAll) {
		errs.Addf("fields.catchall.column", "Invalid value %q: it is one of key.columns", c.CatchAll)
	}
	return errs.Err()
}

// parseMapping reads fields.mapping: field:column pairs.
func parseMapping(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	columns := map[string]bool{}
	for _, p := range pairs {
		field, column, ok := strings.Cut(p, ":")
		field, column = strings.TrimSpace(field), strings.TrimSpace(column)
		if !ok || field == "" || column == "" {
			return nil, fmt.Errorf("Invalid value %q: each entry must be field:column", p)
		}
		if _, dup := out[field]; dup {
			return nil, fmt.Errorf("Invalid value %q: field %q is mapped twice", p, field)
		}
		if columns[column] {
			return nil, fmt.Errorf("Invalid value %q: column %q is the target of two fields", p, column)
		}
		out[field], columns[column] = column, true
	}
	return out, nil
}

// splitTable splits a table setting into schema (possibly empty) and table name.
func splitTable(s string) (schema, table string, err error) {
	s = strings.TrimSpace(s)
	schema, table, ok := strings.Cut(s, ".")
	if !ok {
		schema, table = "", s
	}
	if table == "" || (ok && schema == "") || strings.Contains(table, ".") {
		return "", "", fmt.Errorf("Invalid value %q: must be table or schema.table", s)
	}
	return schema, table, nil
}

func firstDuplicate(list []string) string {
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

func parseURL(u string) (*pgx.ConnConfig, error) {
	return pgx.ParseConfig(u)
}
