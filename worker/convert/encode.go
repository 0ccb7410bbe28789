package convert

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/connect"
)

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// encode runs fn on a pooled buffer and returns a copy of exactly the bytes it wrote.
func encode(fn func(b []byte) ([]byte, error)) ([]byte, error) {
	bp := buffers.Get().(*[]byte)
	b, err := fn((*bp)[:0])
	var out []byte
	if err == nil {
		out = bytes.Clone(b)
	}
	if cap(b) <= 1<<20 {
		*bp = b[:0]
		buffers.Put(bp)
	}
	return out, err
}

// appendValue writes v as schemaless JSON. Maps are written with sorted keys, []byte as
// base64 (as Kafka Connect does), time.Time as an RFC 3339 string, whole floats with a ".0"
// so that they read back as floats. Types other than the common ones go through
// encoding/json.
func appendValue(b []byte, v any, path string) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case float64:
		return appendFloat(b, v, 64, path)
	case map[string]any:
		return appendObject(b, v, path)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e, path); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []byte:
		return appendBase64(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(v), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case float32:
		return appendFloat(b, float64(v), 32, path)
	case json.Number:
		if !validNumber(string(v)) {
			return b, badValue(path, v, "not a JSON number")
		}
		return append(b, v...), nil
	case json.RawMessage:
		if !json.Valid(v) {
			return b, badValue(path, string(v), "not valid JSON")
		}
		return append(b, v...), nil
	case time.Time:
		b = append(b, '"')
		b = v.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	case map[string]string:
		keys := sortedKeys(v)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, v[k])
		}
		return append(b, '}'), nil
	case []string:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		return append(b, ']'), nil
	case map[any]any:
		return appendAnyMap(b, v, path, nil, false)
	}
	return appendReflect(b, v, path)
}

func appendObject(b []byte, m map[string]any, path string) ([]byte, error) {
	return appendSortedObject(b, m, path, plainMembers{})
}

// memberWriter writes one value of an object. appendSortedObject takes it as a type parameter
// rather than a func value so that each kind is compiled on its own, with a direct call: a func
// value cost the schemaless encoder 5% (BenchmarkJSONToKafka).
type memberWriter interface {
	write(b []byte, v any, path string) ([]byte, error)
}

// plainMembers writes values without a schema.
type plainMembers struct{}

func (plainMembers) write(b []byte, v any, path string) ([]byte, error) {
	return appendValue(b, v, path)
}

// appendSortedObject writes m as an object with its keys sorted (so equal maps serialize
// alike), each value by w.
func appendSortedObject[W memberWriter](b []byte, m map[string]any, path string, w W) ([]byte, error) {
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = w.write(b, m[k], join(path, k)); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendAnyMap writes a map whose keys are all strings as an object and any other as an array
// of [key, value] pairs, as Kafka Connect's JsonConverter does; pairs are sorted by key.
// With a map schema s, keys and values are written by its key and value schemas.
func appendAnyMap(b []byte, m map[any]any, path string, s *connect.Schema, numeric bool) ([]byte, error) {
	allStrings := true
	for k := range m {
		if _, ok := k.(string); !ok {
			allStrings = false
			break
		}
	}
	if s != nil {
		allStrings = s.Keys.Type == connect.String
	}
	type pair struct {
		key []byte
		v   any
	}
	pairs := make([]pair, 0, len(m))
	for k, v := range m {
		var kb []byte
		var err error
		if s != nil {
			kb, err = appendWithSchema(nil, s.Keys, k, path, numeric)
		} else {
			kb, err = appendValue(nil, k, path)
		}
		if err != nil {
			return b, err
		}
		pairs = append(pairs, pair{kb, v})
	}
	slices.SortFunc(pairs, func(x, y pair) int { return bytes.Compare(x.key, y.key) })
	if allStrings {
		b = append(b, '{')
	} else {
		b = append(b, '[')
	}
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',')
		}
		if !allStrings {
			b = append(b, '[')
		}
		b = append(b, p.key...)
		if allStrings {
			b = append(b, ':')
		} else {
			b = append(b, ',')
		}
		var err error
		if s != nil {
			b, err = appendWithSchema(b, s.Values, p.v, path, numeric)
		} else {
			b, err = appendValue(b, p.v, path)
		}
		if err != nil {
			return b, err
		}
		if !allStrings {
			b = append(b, ']')
		}
	}
	if allStrings {
		return append(b, '}'), nil
	}
	return append(b, ']'), nil
}

// appendReflect handles the types appendValue does not know: other slices and string-keyed
// maps element by element, anything else through encoding/json.
func appendReflect(b []byte, v any, path string) ([]byte, error) {
	if g, ok := generic(v); ok {
		return appendValue(b, g, path)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, badValue(path, fmt.Sprintf("%T", v), "cannot be written as JSON: %v", err)
	}
	return append(b, j...), nil
}

// generic turns a slice or array into []any and a map into map[string]any (string keys) or
// map[any]any, so typed collections such as []float64 or map[string]int64 work.
func generic(v any) (any, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil, true
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out, true
	case reflect.Map:
		if rv.IsNil() {
			return nil, true
		}
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				out[it.Key().String()] = it.Value().Interface()
			}
			return out, true
		}
		out := make(map[any]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out[it.Key().Interface()] = it.Value().Interface()
		}
		return out, true
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, true
		}
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendFloat writes f as encoding/json does, with ".0" after a whole number so that it
// reads back as a float. NaN and infinities have no JSON form.
func appendFloat(b []byte, f float64, bits int, path string) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, badValue(path, f, "NaN and infinity cannot be written as JSON")
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n-start >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b, nil
	}
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, '.', '0')
	}
	return b, nil
}

func appendBase64(b []byte, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Unlike encoding/json it does not escape <, > and &
// (Jackson does not either); invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	d := decoder{data: []byte(s)}
	_, err := d.number()
	return err == nil && d.pos == len(s)
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
