package timescalesink

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/connect"
)

// Kafka Connect's logical type names, as the runtime's converters mark them.
const (
	logicalTimestamp = "org.apache.kafka.connect.data.Timestamp"
	logicalDate      = "org.apache.kafka.connect.data.Date"
	logicalTime      = "org.apache.kafka.connect.data.Time"
	logicalDecimal   = "org.apache.kafka.connect.data.Decimal"
)

// field is one column's worth of a record: its column name, value, and the value's schema
// when the record carries one.
type field struct {
	column string
	value  any
	schema *connect.Schema
	col    int // index of the column in the table, or -1; set by assemble
}

// row is a record mapped to columns, before it meets a table.
type row struct {
	rec    *connect.Record
	time   time.Time
	fields []field
	extra  map[string]any // unmapped fields by flattened name, for the catch-all column

	timeValue any // the time field's value, while mapping
	haveTime  bool
}

// mapper turns records into rows according to the configuration.
type mapper struct {
	cfg     *Config
	mapping map[string]string
	// keyColumns lists key columns other than the time column, for filling from record keys.
	keyColumns []string
	// names caches flattened names by prefix and key.
	names map[[2]string]string
	// The settings add compares with every field.
	timeField, timeColumn, catchAll string
}

func newMapper(cfg *Config) *mapper {
	m, _ := parseMapping(cfg.Mapping) // validated by Decode
	var keys []string
	for _, k := range cfg.KeyColumns {
		if k != cfg.TimeColumn {
			keys = append(keys, k)
		}
	}
	return &mapper{cfg: cfg, mapping: m, keyColumns: keys, timeField: cfg.TimeField, timeColumn: cfg.TimeColumn, catchAll: cfg.CatchAll}
}

// mapRecord maps a record to a row. A record that cannot be one (not an object, no time) is a
// *connect.DataError naming the field and value.
func (m *mapper) mapRecord(rec *connect.Record) (*row, error) {
	r := &row{}
	return r, m.mapInto(rec, r)
}

// mapInto is mapRecord into a given row, appending its fields to r.fields.
func (m *mapper) mapInto(rec *connect.Record, r *row) error {
	obj, ok := rec.Value.(map[string]any)
	if !ok {
		return connect.BadField("value", rec.Value, "must be a JSON object or a struct to be written as a row, not %s", typeName(rec.Value))
	}
	r.rec = rec
	if r.fields == nil {
		r.fields = make([]field, 0, len(obj)+1)
	}
	schema := rec.ValueSchema
	if schema != nil && schema.Type != connect.Struct {
		schema = nil
	}
	m.walk(r, "", obj, schema)
	timeValue, haveTime := r.timeValue, r.haveTime
	if m.cfg.TimeField == "" {
		if rec.Time.IsZero() {
			return connect.BadField("timestamp", nil, "the record has no Kafka timestamp for the time column %q (set time.field to take the time from the value)", m.cfg.TimeColumn)
		}
		r.time = rec.Time
	} else {
		if !haveTime || timeValue == nil {
			return connect.BadField(m.cfg.TimeField, nil, "the time field (time.field) is missing or null")
		}
		t, err := connect.EventTime(timeValue, m.cfg.TimeUnit)
		if err != nil {
			return connect.BadField(m.cfg.TimeField, timeValue, "%v", err)
		}
		r.time = t
	}
	return m.fillKeys(r)
}

func (r *row) addExtra(name string, v any) {
	if r.extra == nil {
		r.extra = map[string]any{}
	}
	r.extra[name] = v
}

func (r *row) has(column string) bool {
	return slices.ContainsFunc(r.fields, func(f field) bool { return f.column == column })
}

// walk adds the fields of obj to the row: each leaf when flattening, else each top-level
// field.
func (m *mapper) walk(r *row, prefix string, obj map[string]any, s *connect.Schema) {
	for k, v := range obj {
		var fs *connect.Schema
		if s != nil {
			if f := s.Field(k); f != nil {
				fs = f.Schema
			}
		}
		name := k
		if prefix != "" {
			name = m.join(prefix, k)
		}
		if nested, ok := v.(map[string]any); ok && m.cfg.Flatten && (fs == nil || fs.Type == connect.Struct) {
			m.walk(r, m.join(name, m.cfg.Separator), nested, fs)
			continue
		}
		m.add(r, name, v, fs)
	}
}

// join concatenates the parts of a flattened name, remembering what it made, so that the same
// nested fields of every record do not cost new strings.
func (m *mapper) join(a, b string) string {
	key := [2]string{a, b}
	if s, ok := m.names[key]; ok {
		return s
	}
	s := a + b
	if len(m.names) < maxCachedNames {
		if m.names == nil {
			m.names = map[[2]string]string{}
		}
		m.names[key] = s
	}
	return s
}

const maxCachedNames = 10000

// add places one field: the time field, a column, or the unmapped fields.
func (m *mapper) add(r *row, name string, v any, s *connect.Schema) {
	if name == m.timeField && m.timeField != "" {
		r.timeValue, r.haveTime = v, true
		return
	}
	column := name
	if m.mapping != nil {
		c, ok := m.mapping[name]
		if !ok {
			r.addExtra(name, v)
			return
		}
		column = c
	}
	if column == m.timeColumn || (column == m.catchAll && m.catchAll != "") {
		r.addExtra(name, v)
		return
	}
	r.fields = append(r.fields, field{column: column, value: v, schema: s})
}

// fillKeys takes key columns the value lacks from the record key.
func (m *mapper) fillKeys(r *row) error {
	var missing []string
	for _, k := range m.keyColumns {
		if !r.has(k) {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	switch key := r.rec.Key.(type) {
	case map[string]any:
		for _, k := range missing {
			v, ok := key[k]
			if !ok {
				return connect.BadField(k, nil, "key column %q is in neither the record value nor the record key", k)
			}
			var s *connect.Schema
			if f := r.rec.KeySchema.Field(k); f != nil {
				s = f.Schema
			}
			r.fields = append(r.fields, field{column: k, value: v, schema: s})
		}
		return nil
	case nil:
	default:
		if len(missing) == 1 {
			r.fields = append(r.fields, field{column: missing[0], value: key, schema: r.rec.KeySchema})
			return nil
		}
	}
	return connect.BadField(missing[0], nil, "key column %q is missing from the record value, and the record key (%s) cannot supply it", missing[0], typeName(r.rec.Key))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64, int, int32:
		return "integer"
	case float64, float32:
		return "number"
	case []byte:
		return "byte array"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case time.Time:
		return "time"
	}
	return fmt.Sprintf("%T", v)
}

// inferType is the column type auto-create gives a field: from its schema when there is one,
// else from the value; "" when a null value says nothing.
func inferType(v any, s *connect.Schema, numbers string) string {
	if s != nil {
		switch s.Type {
		case connect.Int8, connect.Int16:
			return "smallint"
		case connect.Int32:
			switch s.Name {
			case logicalDate:
				return "date"
			case logicalTime:
				return "time"
			}
			return "integer"
		case connect.Int64:
			if s.Name == logicalTimestamp {
				return "timestamptz"
			}
			return "bigint"
		case connect.Float32:
			return "real"
		case connect.Float64:
			return "double precision"
		case connect.Boolean:
			return "boolean"
		case connect.String:
			return "text"
		case connect.Bytes:
			if s.Name == logicalDecimal {
				return "numeric"
			}
			return "bytea"
		case connect.Array, connect.Map, connect.Struct:
			return "jsonb"
		}
	}
	switch v.(type) {
	case nil:
		return ""
	case bool:
		return "boolean"
	case int64, int, int32:
		if numbers == NumbersDouble {
			return "double precision"
		}
		return "bigint"
	case float64, float32:
		return "double precision"
	case string:
		return "text"
	case []byte:
		return "bytea"
	case time.Time:
		return "timestamptz"
	}
	return "jsonb"
}

// widen merges the types two records suggest for one new column: whole and fractional
// numbers make double precision; otherwise the first wins.
func widen(have, next string) string {
	switch {
	case have == "":
		return next
	case have == "bigint" && next == "double precision":
		return next
	}
	return have
}

// kind is how values are prepared for a column, by its PostgreSQL type.
type kind int

const (
	kindOther kind = iota
	kindText
	kindJSON
	kindInt
	kindFloat
	kindNumeric
	kindBool
	kindBytes
	kindTime
)

// kindOf classifies a column by its type's name in pg_type.
func kindOf(typname string) (kind, int) {
	switch typname {
	case "int2":
		return kindInt, 16
	case "int4":
		return kindInt, 32
	case "int8":
		return kindInt, 64
	case "float4", "float8":
		return kindFloat, 0
	case "numeric":
		return kindNumeric, 0
	case "bool":
		return kindBool, 0
	case "text", "varchar", "bpchar", "name", "citext":
		return kindText, 0
	case "json", "jsonb":
		return kindJSON, 0
	case "bytea":
		return kindBytes, 0
	case "timestamptz", "timestamp", "date":
		return kindTime, 0
	}
	return kindOther, 0
}

// coerce prepares a value for COPY into a column of kind k. ok is false when the value does
// not fit the column as it is; such a row is written on its own with its values as text, so
// that PostgreSQL parses them and, when it cannot either, says why.
func coerce(k kind, bits int, v any) (any, bool) {
	if v == nil {
		return nil, true
	}
	switch k {
	case kindJSON:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		return string(b), true
	case kindText:
		switch x := v.(type) {
		case string:
			return v, true
		case []byte:
			return string(x), utf8.Valid(x)
		case map[string]any, []any:
			b, err := json.Marshal(x)
			return string(b), err == nil
		}
		return textOf(v), true
	case kindInt:
		var n int64
		switch x := v.(type) {
		case int64:
			if bits == 64 {
				return v, true
			}
			n = x
		case int:
			n = int64(x)
		case int32:
			n = int64(x)
		case float64:
			if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
				return nil, false
			}
			n = int64(x)
		case string:
			p, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, false
			}
			n = p
		default:
			return nil, false
		}
		if bits < 64 && (n < -(1<<(bits-1)) || n >= 1<<(bits-1)) {
			return nil, false
		}
		return n, true
	case kindFloat:
		switch x := v.(type) {
		case float64:
			return v, true
		case float32:
			return float64(x), true
		case int64:
			return float64(x), true
		case int:
			return float64(x), true
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			return f, err == nil
		}
		return nil, false
	case kindNumeric:
		var n pgtype.Numeric
		switch x := v.(type) {
		case int64, float64:
			return x, true
		case string:
			if err := n.Scan(strings.TrimSpace(x)); err != nil {
				return nil, false
			}
			return n, true
		}
		return nil, false
	case kindBool:
		switch x := v.(type) {
		case bool:
			return v, true
		case string:
			b, err := strconv.ParseBool(x)
			return b, err == nil
		}
		return nil, false
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			return v, true
		case string:
			return []byte(x), true
		}
		return nil, false
	case kindTime:
		switch x := v.(type) {
		case time.Time:
			return v, true
		case string:
			t, err := time.Parse(time.RFC3339Nano, x)
			return t, err == nil
		}
		return nil, false
	}
	switch v.(type) {
	case map[string]any, []any:
		return nil, false
	}
	return v, true
}

// textOf renders a value as PostgreSQL's text input of it, for writing a row on its own.
func textOf(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case []byte:
		return `\x` + hex.EncodeToString(x)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		switch {
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]`)

// tableFor is the table name the template gives a topic.
func tableFor(template, topic string) string {
	if !strings.Contains(template, TopicToken) {
		return template
	}
	return strings.ReplaceAll(template, TopicToken, nonIdent.ReplaceAllString(topic, "_"))
}
