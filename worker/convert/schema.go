package convert

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/num"
)

// Kafka Connect's logical types: schema names that give a primitive type a meaning.
const (
	// TimestampName marks an int64 of milliseconds since the epoch; its value is a time.Time.
	TimestampName = "org.apache.kafka.connect.data.Timestamp"
	// DateName marks an int32 of days since the epoch; its value is a time.Time at midnight UTC.
	DateName = "org.apache.kafka.connect.data.Date"
	// TimeName marks an int32 of milliseconds since midnight; its value is a time.Time on
	// 1970-01-01 UTC.
	TimeName = "org.apache.kafka.connect.data.Time"
	// DecimalName marks bytes holding a big-endian two's-complement unscaled integer, with the
	// scale in the parameter DecimalScale; its value is a decimal string such as "-12.30".
	DecimalName  = "org.apache.kafka.connect.data.Decimal"
	DecimalScale = "scale"
)

func badValue(path string, value any, reason string, args ...any) error {
	return connect.BadField(path, value, reason, args...)
}

// logical returns the logical type name of s when its type is the one that logical type
// is built on, and "" otherwise.
func logical(s *connect.Schema) string {
	switch {
	case s.Name == "":
		return ""
	case s.Name == TimestampName && s.Type == connect.Int64,
		s.Name == DateName && s.Type == connect.Int32,
		s.Name == TimeName && s.Type == connect.Int32,
		s.Name == DecimalName && s.Type == connect.Bytes:
		return s.Name
	}
	return ""
}

// --- schema JSON ---

// appendSchema writes s as Kafka Connect's JsonConverter does: type, then items, keys and
// values, or fields (each a schema with a "field" member), then optional, name, version, doc,
// parameters and default.
func appendSchema(b []byte, s *connect.Schema, path string, numeric bool) ([]byte, error) {
	b = append(b, '{')
	b, err := appendSchemaMembers(b, s, path, numeric)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

func appendSchemaMembers(b []byte, s *connect.Schema, path string, numeric bool) ([]byte, error) {
	if s == nil {
		return b, fmt.Errorf("schema of %s is missing", orValue(path))
	}
	b = append(b, `"type":`...)
	b = appendString(b, string(s.Type))
	var err error
	switch s.Type {
	case connect.Int8, connect.Int16, connect.Int32, connect.Int64, connect.Float32, connect.Float64,
		connect.Boolean, connect.String, connect.Bytes:
	case connect.Array:
		b = append(b, `,"items":`...)
		if b, err = appendSchema(b, s.Items, path+"[]", numeric); err != nil {
			return b, err
		}
	case connect.Map:
		b = append(b, `,"keys":`...)
		if b, err = appendSchema(b, s.Keys, path+"{key}", numeric); err != nil {
			return b, err
		}
		b = append(b, `,"values":`...)
		if b, err = appendSchema(b, s.Values, path+"{value}", numeric); err != nil {
			return b, err
		}
	case connect.Struct:
		b = append(b, `,"fields":[`...)
		for i, f := range s.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if b, err = appendSchemaMembers(b, f.Schema, join(path, f.Name), numeric); err != nil {
				return b, err
			}
			b = append(b, `,"field":`...)
			b = appendString(b, f.Name)
			b = append(b, '}')
		}
		b = append(b, ']')
	default:
		return b, fmt.Errorf("schema of %s has unknown type %q", orValue(path), s.Type)
	}
	b = append(b, `,"optional":`...)
	b = strconv.AppendBool(b, s.Optional)
	if s.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, s.Name)
	}
	if s.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(s.Version), 10)
	}
	if s.Doc != "" {
		b = append(b, `,"doc":`...)
		b = appendString(b, s.Doc)
	}
	if s.Parameters != nil {
		b = append(b, `,"parameters":`...)
		b, _ = appendValue(b, s.Parameters, path)
	}
	if s.Default != nil {
		b = append(b, `,"default":`...)
		if b, err = appendWithSchema(b, s, s.Default, path, numeric); err != nil {
			return b, fmt.Errorf("default of %s: %w", orValue(path), err)
		}
	}
	return b, nil
}

func orValue(path string) string {
	if path == "" {
		return "the value"
	}
	return "field " + strconv.Quote(path)
}

// parseSchema reads a schema in Kafka Connect's JSON form, already decoded.
func (c *jsonConverter) parseSchema(v any, path string) (*connect.Schema, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema of %s is not a JSON object", orValue(path))
	}
	t, ok := m["type"].(string)
	if !ok {
		return nil, fmt.Errorf("schema of %s must contain a 'type' field", orValue(path))
	}
	s := &connect.Schema{Type: connect.SchemaType(t)}
	var err error
	switch s.Type {
	case connect.Int8, connect.Int16, connect.Int32, connect.Int64, connect.Float32, connect.Float64,
		connect.Boolean, connect.String, connect.Bytes:
	case connect.Array:
		items, ok := m["items"]
		if !ok || items == nil {
			return nil, fmt.Errorf("array schema of %s did not specify the items type", orValue(path))
		}
		if s.Items, err = c.parseSchema(items, path+"[]"); err != nil {
			return nil, err
		}
	case connect.Map:
		keys, ok := m["keys"]
		if !ok || keys == nil {
			return nil, fmt.Errorf("map schema of %s did not specify the key type", orValue(path))
		}
		values, ok := m["values"]
		if !ok || values == nil {
			return nil, fmt.Errorf("map schema of %s did not specify the value type", orValue(path))
		}
		if s.Keys, err = c.parseSchema(keys, path+"{key}"); err != nil {
			return nil, err
		}
		if s.Values, err = c.parseSchema(values, path+"{value}"); err != nil {
			return nil, err
		}
	case connect.Struct:
		fields, ok := m["fields"].([]any)
		if !ok {
			return nil, fmt.Errorf("struct schema of %s: \"fields\" is not an array", orValue(path))
		}
		s.Fields = make([]connect.Field, 0, len(fields))
		for _, f := range fields {
			fm, _ := f.(map[string]any)
			name, ok := fm["field"].(string)
			if !ok {
				return nil, fmt.Errorf("struct schema of %s: a field's name is not specified properly", orValue(path))
			}
			if s.Field(name) != nil {
				return nil, fmt.Errorf("struct schema of %s: field %q appears twice", orValue(path), name)
			}
			fs, err := c.parseSchema(fm, join(path, name))
			if err != nil {
				return nil, err
			}
			s.Fields = append(s.Fields, connect.Field{Name: name, Schema: fs})
		}
	default:
		return nil, fmt.Errorf("schema of %s has unknown type %q", orValue(path), t)
	}
	s.Optional, _ = m["optional"].(bool)
	s.Name, _ = m["name"].(string)
	s.Doc, _ = m["doc"].(string)
	if v, ok := m["version"].(int64); ok && v >= math.MinInt32 && v <= math.MaxInt32 {
		s.Version = int(v)
	}
	if p, ok := m["parameters"]; ok && p != nil {
		pm, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema of %s: parameters must be a JSON object", orValue(path))
		}
		s.Parameters = make(map[string]string, len(pm))
		for k, v := range pm {
			sv, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("schema of %s: parameters must have string values", orValue(path))
			}
			s.Parameters[k] = sv
		}
	}
	if logical(s) == DecimalName {
		if _, err := decimalScale(s, path); err != nil {
			return nil, err
		}
	}
	if d, ok := m["default"]; ok && d != nil {
		if s.Default, err = c.fromJSON(s, d, path); err != nil {
			return nil, fmt.Errorf("default of %s: %w", orValue(path), err)
		}
	}
	return s, nil
}

// --- payload from JSON ---

// fromJSON converts a decoded JSON payload to the value its schema describes. It reuses the
// maps and slices of v, which the caller owns.
func (c *jsonConverter) fromJSON(s *connect.Schema, v any, path string) (any, error) {
	if v == nil {
		if s.Default != nil && c.replaceNull {
			return copyDefault(s.Default), nil
		}
		if s.Optional {
			return nil, nil
		}
		return nil, badValue(path, nil, "null for a required %s", s.Type)
	}
	switch s.Type {
	case connect.Boolean:
		if _, ok := v.(bool); !ok {
			return nil, badValue(path, v, "not a boolean")
		}
		return v, nil
	case connect.Int8, connect.Int16, connect.Int32, connect.Int64:
		n, err := intFromJSON(s.Type, v, path)
		if err != nil {
			return nil, err
		}
		switch logical(s) {
		case TimestampName:
			return time.UnixMilli(n).UTC(), nil
		case DateName:
			return time.Unix(n*86400, 0).UTC(), nil
		case TimeName:
			return time.UnixMilli(n).UTC(), nil
		}
		return n, nil
	case connect.Float32, connect.Float64:
		var f float64
		switch n := v.(type) {
		case float64:
			f = n
		case int64:
			f = float64(n)
		default:
			return nil, badValue(path, v, "not a number")
		}
		if s.Type == connect.Float32 {
			f32 := float32(f)
			if math.IsInf(float64(f32), 0) {
				return nil, badValue(path, v, "out of range for float")
			}
			f = float64(f32)
		}
		return f, nil
	case connect.String:
		if _, ok := v.(string); !ok {
			return nil, badValue(path, v, "not a string")
		}
		return v, nil
	case connect.Bytes:
		if logical(s) == DecimalName {
			return decimalFromJSON(s, v, path)
		}
		str, ok := v.(string)
		if !ok {
			return nil, badValue(path, v, "bytes must be a base64 string")
		}
		return decodeBase64(str, path)
	case connect.Array:
		a, ok := v.([]any)
		if !ok {
			return nil, badValue(path, v, "not an array")
		}
		if s.Items == nil {
			return nil, fmt.Errorf("array schema of %s has no items schema", orValue(path))
		}
		for i, e := range a {
			var err error
			if a[i], err = c.fromJSON(s.Items, e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return nil, err
			}
		}
		return a, nil
	case connect.Map:
		if s.Keys == nil || s.Values == nil {
			return nil, fmt.Errorf("map schema of %s lacks keys or values", orValue(path))
		}
		if s.Keys.Type == connect.String && logical(s.Keys) == "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, badValue(path, v, "a map with string keys must be a JSON object")
			}
			for k, e := range m {
				var err error
				if m[k], err = c.fromJSON(s.Values, e, join(path, k)); err != nil {
					return nil, err
				}
			}
			return m, nil
		}
		a, ok := v.([]any)
		if !ok {
			return nil, badValue(path, v, "a map with non-string keys must be a JSON array of [key, value] pairs")
		}
		out := make(map[any]any, len(a))
		for _, e := range a {
			pair, ok := e.([]any)
			if !ok || len(pair) != 2 {
				return nil, badValue(path, e, "not a [key, value] pair")
			}
			k, err := c.fromJSON(s.Keys, pair[0], path+"{key}")
			if err != nil {
				return nil, err
			}
			if k == nil || !reflect.TypeOf(k).Comparable() {
				return nil, badValue(path, pair[0], "cannot be a map key")
			}
			if out[k], err = c.fromJSON(s.Values, pair[1], path+"{value}"); err != nil {
				return nil, err
			}
		}
		return out, nil
	case connect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, badValue(path, v, "a struct must be a JSON object")
		}
		present := 0
		for _, f := range s.Fields {
			if _, ok := m[f.Name]; ok {
				present++
			}
		}
		if present < len(m) { // members the schema does not declare are dropped, as in Connect
			for k := range m {
				if s.Field(k) == nil {
					delete(m, k)
				}
			}
		}
		for _, f := range s.Fields {
			if f.Schema == nil {
				return nil, fmt.Errorf("schema of %s is missing", orValue(join(path, f.Name)))
			}
			fv, err := c.fromJSON(f.Schema, m[f.Name], join(path, f.Name))
			if err != nil {
				return nil, err
			}
			m[f.Name] = fv
		}
		return m, nil
	}
	return nil, fmt.Errorf("schema of %s has unknown type %q", orValue(path), s.Type)
}

var intRanges = map[connect.SchemaType][2]int64{
	connect.Int8:  {math.MinInt8, math.MaxInt8},
	connect.Int16: {math.MinInt16, math.MaxInt16},
	connect.Int32: {math.MinInt32, math.MaxInt32},
	connect.Int64: {math.MinInt64, math.MaxInt64},
}

func intFromJSON(t connect.SchemaType, v any, path string) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || x < -(1<<63) || x >= 1<<63 {
			return 0, badValue(path, v, "not an integer")
		}
		n = int64(x)
	default:
		return 0, badValue(path, v, "not an integer")
	}
	r := intRanges[t]
	if n < r[0] || n > r[1] {
		return 0, badValue(path, v, "out of range for %s", t)
	}
	return n, nil
}

func decodeBase64(s, path string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, badValue(path, s, "not base64: %v", err)
	}
	return b, nil
}

func copyDefault(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = copyDefault(e)
		}
		return m
	case map[any]any:
		m := make(map[any]any, len(v))
		for k, e := range v {
			m[k] = copyDefault(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = copyDefault(e)
		}
		return a
	case []byte:
		return slices.Clone(v)
	}
	return v
}

// --- decimals ---

func decimalScale(s *connect.Schema, path string) (int, error) {
	p, ok := s.Parameters[DecimalScale]
	if !ok {
		return 0, fmt.Errorf("decimal schema of %s has no %q parameter", orValue(path), DecimalScale)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < -1000 || n > 1000 {
		return 0, fmt.Errorf("decimal schema of %s has a bad scale %q", orValue(path), p)
	}
	return n, nil
}

// decimalFromJSON reads a decimal written as base64 of its unscaled value, or as a JSON number
// (Connect's decimal.format=NUMERIC; numbers beyond float64's precision lose digits), and
// returns it as a decimal string with exactly scale digits after the point.
func decimalFromJSON(s *connect.Schema, v any, path string) (any, error) {
	scale, err := decimalScale(s, path)
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case string:
		raw, err := decodeBase64(x, path)
		if err != nil {
			return nil, err
		}
		if len(raw) == 0 {
			return nil, badValue(path, v, "empty decimal")
		}
		return formatDecimal(unscaledFromBytes(raw), scale), nil
	case int64, float64:
		u, err := parseDecimal(x, scale, path)
		if err != nil {
			return nil, err
		}
		return formatDecimal(u, scale), nil
	}
	return nil, badValue(path, v, "a decimal must be a base64 string or a number")
}

// unscaledFromBytes reads a big-endian two's-complement integer, as Java's BigInteger writes.
func unscaledFromBytes(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return n
}

// unscaledToBytes writes n as Java's BigInteger.toByteArray does: the shortest big-endian
// two's complement.
func unscaledToBytes(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n-1 in bytes, inverted
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xff}, b...)
	}
	return b
}

func formatDecimal(u *big.Int, scale int) string {
	if scale <= 0 {
		if u.Sign() != 0 && scale < 0 {
			u = new(big.Int).Mul(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-scale)), nil))
		}
		return u.String()
	}
	digits := new(big.Int).Abs(u).String()
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	s := digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	if u.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// parseDecimal turns a decimal value (a string like "-12.30" or "1.5e3", an integer, a float or
// a json.Number) into its unscaled integer at the given scale. Digits beyond the scale must be
// zeros.
func parseDecimal(v any, scale int, path string) (*big.Int, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		s = string(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, badValue(path, v, "not a decimal")
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, badValue(path, v, "not a decimal")
		}
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case *big.Int:
		s = x.String()
	default:
		n, ok := num.Integral(v)
		if !ok {
			return nil, badValue(path, v, "not a decimal")
		}
		s = strconv.FormatInt(n, 10)
	}
	if !plainDecimal(s) {
		return nil, badValue(path, v, "not a decimal")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, badValue(path, v, "not a decimal")
	}
	pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(scale))), nil)
	if scale >= 0 {
		r.Mul(r, new(big.Rat).SetInt(pow))
	} else {
		r.Quo(r, new(big.Rat).SetInt(pow))
	}
	if !r.IsInt() {
		return nil, badValue(path, v, "has more than %d digits after the decimal point", scale)
	}
	return new(big.Int).Set(r.Num()), nil
}

// plainDecimal reports whether s looks like a decimal number of sane size: digits, one point,
// a sign and an exponent of at most three digits.
func plainDecimal(s string) bool {
	if len(s) == 0 || len(s) > 1000 {
		return false
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		exp = strings.TrimLeft(exp, "+-")
		if len(exp) == 0 || len(exp) > 3 || strings.Trim(exp, "0123456789") != "" {
			return false
		}
	}
	mant = strings.TrimLeft(mant, "+-")
	digits := strings.Replace(mant, ".", "", 1)
	return len(digits) > 0 && strings.Trim(digits, "0123456789") == ""
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// --- payload to JSON ---

// appendWithSchema writes v as the payload for schema s (schemaless when s is nil).
func appendWithSchema(b []byte, s *connect.Schema, v any, path string, numeric bool) ([]byte, error) {
	if s == nil {
		return appendValue(b, v, path)
	}
	if v == nil {
		switch {
		case s.Default != nil:
			v = s.Default
		case s.Optional:
			return append(b, "null"...), nil
		default:
			return b, badValue(path, nil, "null for a required %s without a default", s.Type)
		}
	}
	switch s.Type {
	case connect.Boolean:
		x, ok := v.(bool)
		if !ok {
			return b, badValue(path, v, "%T is not a boolean", v)
		}
		return strconv.AppendBool(b, x), nil
	case connect.Int8, connect.Int16, connect.Int32, connect.Int64:
		var n int64
		if t, ok := v.(time.Time); ok {
			switch logical(s) {
			case TimestampName:
				n = t.UnixMilli()
			case DateName:
				n = floorDiv(t.Unix(), 86400)
			case TimeName:
				n = t.UTC().Sub(t.UTC().Truncate(24 * time.Hour)).Milliseconds()
			default:
				return b, badValue(path, v, "time.Time needs a Timestamp, Date or Time schema, not %s", s.Type)
			}
		} else {
			var ok bool
			if n, ok = num.Integral(v); !ok {
				return b, badValue(path, v, "%T is not an integer", v)
			}
		}
		r := intRanges[s.Type]
		if n < r[0] || n > r[1] {
			return b, badValue(path, v, "out of range for %s", s.Type)
		}
		return strconv.AppendInt(b, n, 10), nil
	case connect.Float32, connect.Float64:
		f, ok := asFloat64(v)
		if !ok {
			return b, badValue(path, v, "%T is not a number", v)
		}
		if s.Type == connect.Float32 {
			if f32 := float32(f); math.IsInf(float64(f32), 0) && !math.IsInf(f, 0) {
				return b, badValue(path, v, "out of range for float")
			}
			return appendFloat(b, float64(float32(f)), 32, path)
		}
		return appendFloat(b, f, 64, path)
	case connect.String:
		x, ok := v.(string)
		if !ok {
			return b, badValue(path, v, "%T is not a string", v)
		}
		return appendString(b, x), nil
	case connect.Bytes:
		if logical(s) == DecimalName {
			if raw, ok := v.([]byte); ok && !numeric {
				return appendBase64(b, raw), nil
			}
			scale, err := decimalScale(s, path)
			if err != nil {
				return b, err
			}
			u, err := parseDecimal(v, scale, path)
			if err != nil {
				return b, err
			}
			if numeric {
				return append(b, formatDecimal(u, scale)...), nil
			}
			return appendBase64(b, unscaledToBytes(u)), nil
		}
		switch x := v.(type) {
		case []byte:
			return appendBase64(b, x), nil
		case string:
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, []byte(x))
			return append(b, '"'), nil
		}
		return b, badValue(path, v, "%T is not bytes", v)
	case connect.Array:
		if s.Items == nil {
			return b, fmt.Errorf("array schema of %s has no items schema", orValue(path))
		}
		a, ok := v.([]any)
		if !ok {
			g, _ := generic(v)
			if a, ok = g.([]any); !ok {
				return b, badValue(path, v, "%T is not an array", v)
			}
		}
		b = append(b, '[')
		for i, e := range a {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendWithSchema(b, s.Items, e, path+"["+strconv.Itoa(i)+"]", numeric); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case connect.Map:
		if s.Keys == nil || s.Values == nil {
			return b, fmt.Errorf("map schema of %s lacks keys or values", orValue(path))
		}
		var m map[any]any
		switch x := v.(type) {
		case map[string]any:
			if s.Keys.Type == connect.String && logical(s.Keys) == "" {
				return appendStringMap(b, s.Values, x, path, numeric)
			}
			m = make(map[any]any, len(x))
			for k, e := range x {
				m[k] = e
			}
		case map[any]any:
			m = x
		default:
			g, _ := generic(v)
			switch y := g.(type) {
			case map[string]any:
				return appendWithSchema(b, s, y, path, numeric)
			case map[any]any:
				m = y
			default:
				return b, badValue(path, v, "%T is not a map", v)
			}
		}
		return appendAnyMap(b, m, path, s, numeric)
	case connect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return b, badValue(path, v, "a struct must be a map[string]any, not %T", v)
		}
		b = append(b, '{')
		for i, f := range s.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.Name)
			b = append(b, ':')
			var err error
			if f.Schema == nil {
				return b, fmt.Errorf("schema of %s is missing", orValue(join(path, f.Name)))
			}
			if b, err = appendWithSchema(b, f.Schema, m[f.Name], join(path, f.Name), numeric); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	return b, fmt.Errorf("schema of %s has unknown type %q", orValue(path), s.Type)
}

func appendStringMap(b []byte, vs *connect.Schema, m map[string]any, path string, numeric bool) ([]byte, error) {
	return appendSortedObject(b, m, path, schemaMembers{vs, numeric})
}

// schemaMembers writes values by a map's value schema.
type schemaMembers struct {
	vs      *connect.Schema
	numeric bool
}

func (s schemaMembers) write(b []byte, v any, path string) ([]byte, error) {
	return appendWithSchema(b, s.vs, v, path, s.numeric)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// asInt64 accepts every Go integer type and floats with an integral value.

func asFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	if n, ok := num.Integral(v); ok {
		return float64(n), true
	}
	if x, ok := v.(uint64); ok {
		return float64(x), true
	}
	return 0, false
}
