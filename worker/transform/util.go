package transform

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/num"
)

// Kafka Connect's logical types, as the convert package reads and writes them.
const (
	timestampName = "org.apache.kafka.connect.data.Timestamp"
	dateName      = "org.apache.kafka.connect.data.Date"
	timeName      = "org.apache.kafka.connect.data.Time"
	decimalName   = "org.apache.kafka.connect.data.Decimal"
)

// side is the part of a record a $Key or $Value transform works on.
type side bool

const (
	onValue side = false
	onKey   side = true
)

func (k side) value(r *connect.Record) any {
	if k == onKey {
		return r.Key
	}
	return r.Value
}

func (k side) schema(r *connect.Record) *connect.Schema {
	if k == onKey {
		return r.KeySchema
	}
	return r.ValueSchema
}

// with returns a copy of r with the key or value and its schema replaced.
func (k side) with(r *connect.Record, v any, s *connect.Schema) *connect.Record {
	out := *r
	if k == onKey {
		out.Key, out.KeySchema = v, s
	} else {
		out.Value, out.ValueSchema = v, s
	}
	return &out
}

func (k side) String() string {
	if k == onKey {
		return "key"
	}
	return "value"
}

// structOf returns the record part as a map with its struct schema (nil when schemaless). A
// nil value returns ok false and no error: the transform passes tombstones through.
func structOf(k side, r *connect.Record, purpose string) (m map[string]any, s *connect.Schema, ok bool, err error) {
	v, s := k.value(r), k.schema(r)
	if v == nil {
		return nil, s, false, nil
	}
	if s != nil && s.Type != connect.Struct {
		return nil, nil, false, connect.BadField("", v, "%s needs a struct %s, but its schema is %s", purpose, k, s.Type)
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, nil, false, connect.BadField("", v, "%s needs a map (struct) %s, not %T", purpose, k, v)
	}
	return m, s, true, nil
}

func copyMap(m map[string]any, extra int) map[string]any {
	out := make(map[string]any, len(m)+extra)
	maps.Copy(out, m)
	return out
}

// copyStruct returns a copy of a schema's basics (type, optional, name, version, doc,
// parameters, default) without its fields.
func copyStruct(s *connect.Schema) *connect.Schema {
	c := *s
	c.Fields = nil
	return &c
}

// schemaCache remembers the schema a transform made from an input schema, so a topic's records
// share one. Schemas are not modified once made, so the input's address identifies it.
type schemaCache struct {
	mu sync.RWMutex
	m  map[*connect.Schema]*connect.Schema
}

const maxCachedSchemas = 1000

func (c *schemaCache) get(in *connect.Schema, build func() (*connect.Schema, error)) (*connect.Schema, error) {
	c.mu.RLock()
	out, ok := c.m[in]
	c.mu.RUnlock()
	if ok {
		return out, nil
	}
	out, err := build()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedSchemas {
		c.m = make(map[*connect.Schema]*connect.Schema)
	}
	c.m[in] = out
	c.mu.Unlock()
	return out, nil
}

// headerBytes is how a value becomes a header: strings and bytes as they are, numbers and
// booleans as text, time as RFC 3339, anything else as JSON.
func headerBytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	case time.Time:
		return []byte(x.UTC().Format(time.RFC3339Nano)), nil
	}
	if s, ok := scalarString(v); ok {
		return []byte(s), nil
	}
	return json.Marshal(v)
}

// scalarString writes booleans and numbers as Java's String.valueOf would, except that
// floats use the shortest form that reads back the same.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return formatFloat(x, 64), true
	case float32:
		return formatFloat(float64(x), 32), true
	}
	if n, ok := num.Int(v); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

func formatFloat(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, bits)
	}
	s := strconv.FormatFloat(f, 'f', -1, bits)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s
		}
	}
	return s + ".0"
}

// asInt accepts the Go integer types (not floats).

// toText is a value as a string for Cast: JSON for maps and slices, base64 for bytes.
func toText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z"), nil
	}
	if s, ok := scalarString(v); ok {
		return s, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("cannot be written as text: %v", err)
	}
	return string(b), nil
}

// fieldPath splits a field.syntax.version=V2 path: dots separate fields, and a field name
// with dots in it is quoted in backticks (a backtick inside one is escaped with a backslash).
func fieldPath(path string) ([]string, error) {
	var out []string
	var cur []byte
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '.':
			out = append(out, string(cur))
			cur = cur[:0]
		case c == '`' && len(cur) == 0 && (i == 0 || path[i-1] == '.'):
			// a quoted name runs to the backtick followed by a dot or the end
			j := i + 1
			var name []byte
			for ; j < len(path); j++ {
				if path[j] == '\\' && j+1 < len(path) && path[j+1] == '`' {
					name = append(name, '`')
					j++
					continue
				}
				if path[j] == '`' && (j+1 == len(path) || path[j+1] == '.') {
					break
				}
				name = append(name, path[j])
			}
			if j >= len(path) {
				return nil, fmt.Errorf("unterminated backtick in %q", path)
			}
			cur = append(cur, name...)
			i = j
		default:
			cur = append(cur, c)
		}
	}
	out = append(out, string(cur))
	for _, f := range out {
		if f == "" {
			return nil, fmt.Errorf("empty field name in %q", path)
		}
	}
	return out, nil
}
