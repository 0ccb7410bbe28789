package icebergsink

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/connect"
)

// column is a top-level field a record brings, with the Iceberg type it gets in a new column.
type column struct {
	name string
	typ  iceberg.Type
}

// timestampName is Kafka Connect's logical type for milliseconds since the epoch.
const timestampName = "org.apache.kafka.connect.data.Timestamp"

// recordColumns derives the columns of a record's value: from its schema envelope when there is
// one, else from the JSON value (fields with a null value bring no column yet).
// With numbersAsDouble every JSON number is a double column.
func recordColumns(value map[string]any, sch *connect.Schema, timeFields map[string]bool, numbersAsDouble bool) []column {
	if sch != nil && sch.Type == connect.Struct {
		cols := make([]column, 0, len(sch.Fields))
		for _, f := range sch.Fields {
			cols = append(cols, column{f.Name, schemaType(f.Schema, timeFields[f.Name])})
		}
		return cols
	}
	names := make([]string, 0, len(value))
	for k, v := range value {
		if v != nil {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	cols := make([]column, 0, len(names))
	for _, k := range names {
		typ := jsonType(value[k], timeFields[k])
		if numbersAsDouble && typ == iceberg.PrimitiveTypes.Int64 {
			typ = iceberg.PrimitiveTypes.Float64
		}
		cols = append(cols, column{k, typ})
	}
	return cols
}

// schemaType maps a Kafka Connect schema to an Iceberg type. Structs, arrays and maps are kept
// as JSON text.
func schemaType(s *connect.Schema, isTime bool) iceberg.Type {
	if s == nil {
		return iceberg.PrimitiveTypes.String
	}
	if isTime || s.Name == timestampName {
		return iceberg.PrimitiveTypes.TimestampTz
	}
	switch s.Type {
	case connect.Int8, connect.Int16, connect.Int32:
		return iceberg.PrimitiveTypes.Int32
	case connect.Int64:
		return iceberg.PrimitiveTypes.Int64
	case connect.Float32:
		return iceberg.PrimitiveTypes.Float32
	case connect.Float64:
		return iceberg.PrimitiveTypes.Float64
	case connect.Boolean:
		return iceberg.PrimitiveTypes.Bool
	case connect.Bytes:
		return iceberg.PrimitiveTypes.Binary
	default:
		return iceberg.PrimitiveTypes.String
	}
}

// jsonType infers an Iceberg type from a JSON value: integers are longs, other numbers
// doubles, objects and arrays JSON text.
func jsonType(v any, isTime bool) iceberg.Type {
	if isTime {
		return iceberg.PrimitiveTypes.TimestampTz
	}
	switch v.(type) {
	case bool:
		return iceberg.PrimitiveTypes.Bool
	case int64, int32, int:
		return iceberg.PrimitiveTypes.Int64
	case float64, float32:
		return iceberg.PrimitiveTypes.Float64
	case []byte:
		return iceberg.PrimitiveTypes.Binary
	case time.Time:
		return iceberg.PrimitiveTypes.TimestampTz
	default:
		return iceberg.PrimitiveTypes.String
	}
}

// newSchema builds the schema of a new table from the columns of its first record.
func newSchema(cols []column) *iceberg.Schema {
	fields := make([]iceberg.NestedField, len(cols))
	for i, c := range cols {
		fields[i] = iceberg.NestedField{ID: i + 1, Name: c.name, Type: c.typ}
	}
	return iceberg.NewSchema(0, fields...)
}

// toValue turns a record field's value into what a column of type typ holds: bool, int32,
// int64, float32, float64, string, []byte, arrow.Timestamp (microseconds) or arrow.Date32.
func toValue(name string, typ iceberg.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func(reason string) error { return connect.BadField(name, v, "%s", reason) }
	switch typ.(type) {
	case iceberg.BooleanType:
		if _, ok := v.(bool); ok {
			return v, nil
		}
		return nil, bad("column " + name + " is boolean")
	case iceberg.Int32Type:
		n, ok := integer(v)
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, bad("column " + name + " is int (32-bit)")
		}
		return int32(n), nil
	case iceberg.Int64Type:
		if _, ok := v.(int64); ok {
			return v, nil // as it is: boxing it again would allocate
		}
		n, ok := integer(v)
		if !ok {
			return nil, bad("column " + name + " is long")
		}
		return n, nil
	case iceberg.Float32Type:
		f, ok := float(v)
		if !ok {
			return nil, bad("column " + name + " is float")
		}
		return float32(f), nil
	case iceberg.Float64Type:
		if _, ok := v.(float64); ok {
			return v, nil
		}
		f, ok := float(v)
		if !ok {
			return nil, bad("column " + name + " is double")
		}
		return f, nil
	case iceberg.StringType:
		switch s := v.(type) {
		case string:
			return v, nil
		case []byte:
			return string(s), nil
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, bad("cannot be written as JSON text: " + err.Error())
			}
			return string(b), nil
		}
	case iceberg.BinaryType:
		switch b := v.(type) {
		case []byte:
			return b, nil
		case string:
			if d, err := base64.StdEncoding.DecodeString(b); err == nil {
				return d, nil
			}
			return []byte(b), nil
		}
		return nil, bad("column " + name + " is binary")
	case iceberg.TimestampTzType, iceberg.TimestampType:
		t, ok := timestamp(v)
		if !ok {
			return nil, bad("column " + name + " is a timestamp: give an RFC 3339 string or milliseconds since the epoch")
		}
		return arrow.Timestamp(t.UnixMicro()), nil
	case iceberg.DateType:
		if s, ok := v.(string); ok {
			if d, err := time.Parse(time.DateOnly, s); err == nil {
				return arrow.Date32FromTime(d), nil
			}
		}
		if n, ok := integer(v); ok {
			return arrow.Date32(n), nil
		}
		return nil, bad("column " + name + " is a date: give YYYY-MM-DD or days since the epoch")
	}
	return nil, bad(fmt.Sprintf("column %s has type %s, which this sink does not write", name, typ))
}

func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 { // 20.0 arrives as 20 in JSON, never the other way
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

func float(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func timestamp(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, true
	case string:
		if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
			return p, true
		}
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return time.UnixMilli(n), true
		}
		return time.Time{}, false
	}
	if n, ok := integer(v); ok {
		return time.UnixMilli(n), true
	}
	return time.Time{}, false
}

// appendValue appends a value made by toValue (or nil) to a builder of its column's Arrow type.
func appendValue(b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Int32Builder:
		b.Append(v.(int32))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Float32Builder:
		b.Append(v.(float32))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.LargeStringBuilder:
		b.Append(v.(string))
	case *array.BinaryBuilder:
		b.Append(v.([]byte))
	case *array.TimestampBuilder:
		b.Append(v.(arrow.Timestamp))
	case *array.Date32Builder:
		b.Append(v.(arrow.Date32))
	default:
		b.AppendNull()
	}
}

// arrowType is the Arrow type iceberg-go writes for an Iceberg column type.
func arrowType(t iceberg.Type) (arrow.DataType, error) {
	return table.TypeToArrowType(t, true, false)
}

// project rearranges a batch into the columns of sc by name, with nulls for columns the batch
// lacks (they were added to the table after it was buffered).
func project(mem memory.Allocator, batch arrow.RecordBatch, sc *arrow.Schema) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, sc.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, f := range sc.Fields() {
		idx := batch.Schema().FieldIndices(f.Name)
		if len(idx) == 0 {
			cols[i] = array.MakeArrayOfNull(mem, f.Type, int(batch.NumRows()))
			continue
		}
		c := batch.Column(idx[0])
		if !arrow.TypeEqual(c.DataType(), f.Type) {
			return nil, fmt.Errorf("column %s: buffered as %s, the table now has %s", f.Name, c.DataType(), f.Type)
		}
		c.Retain()
		cols[i] = c
	}
	return array.NewRecordBatch(sc, cols, batch.NumRows()), nil
}
