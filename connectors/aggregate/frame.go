package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluicehq/sluice/connect"
)

// parser turns raw JSON values into frames. It reads only the fields it needs, with
// fastjson (no map of the whole frame: encoding/json's map decoding was most of a frame's
// cost, BenchmarkParseAndAdd). Not safe for concurrent use: a task's one goroutine parses.
type parser struct {
	groupBy   []string
	fields    []string
	timeField string // empty: the Kafka timestamp
	idField   string
	maxFuture int64 // most milliseconds an event time may be ahead of the wall clock; 0: no limit

	json fastjson.Parser // reused frame to frame
}

// lookup finds a dotted path in a JSON object: the whole name as a key first, then path
// elements. A JSON null is found (v.Type() is TypeNull).
func lookup(o *fastjson.Object, path string) (*fastjson.Value, bool) {
	if v := o.Get(path); v != nil {
		return v, true
	}
	if !strings.Contains(path, ".") {
		return nil, false
	}
	cur := o
	els := strings.Split(path, ".")
	for i, el := range els {
		v := cur.Get(el)
		if v == nil {
			return nil, false
		}
		if i == len(els)-1 {
			return v, true
		}
		if cur, _ = v.Object(); cur == nil {
			return nil, false
		}
	}
	return nil, false
}

// goValue is a JSON value as encoding/json decodes it into an interface: string, float64,
// bool, nil, or (for objects and arrays, which no caller looks into) an empty map or slice.
// A number beyond a 64-bit float is an error, as encoding/json has it.
func goValue(name string, v *fastjson.Value) (any, error) {
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes()), nil
	case fastjson.TypeNumber:
		n, err := v.Float64()
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
			return nil, connect.BadField(name, v.String(), "number %s is beyond the range of a 64-bit float", v.String())
		}
		return n, nil
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	case fastjson.TypeObject:
		return map[string]any{}, nil
	case fastjson.TypeArray:
		return []any{}, nil
	}
	return nil, nil
}

// field looks a path up and returns its value as goValue does; found is false when the path
// is missing.
func field(o *fastjson.Object, path string) (v any, found bool, err error) {
	jv, ok := lookup(o, path)
	if !ok {
		return nil, false, nil
	}
	v, err = goValue(path, jv)
	return v, true, err
}

// parse reads one raw frame; kafkaTime is the record's timestamp and now the wall clock, in
// milliseconds. The error is a *connect.DataError naming the bad field.
func (p *parser) parse(value []byte, kafkaTime, now int64) (*frame, error) {
	root, err := p.json.ParseBytes(value)
	if err != nil {
		return nil, connect.BadField("", value, "the frame is not a JSON object: %v", err)
	}
	m, err := root.Object()
	if err != nil {
		return nil, connect.BadField("", value, "the frame is not a JSON object")
	}
	if m.Len() == 2 {
		if pv, sv := m.Get("payload"), m.Get("schema"); pv != nil && sv != nil && pv.Type() == fastjson.TypeObject {
			m, _ = pv.Object()
		}
	}
	f := &frame{group: make([]any, len(p.groupBy)), values: make(map[string]float64, len(p.fields))}
	for i, g := range p.groupBy {
		v, ok, err := field(m, g)
		if err != nil {
			return nil, err
		}
		if !ok || v == nil {
			return nil, connect.BadField(g, nil, "the group field is missing")
		}
		switch v.(type) {
		case map[string]any, []any:
			return nil, connect.BadField(g, v, "a group field must hold a string, number or boolean")
		}
		f.group[i] = v
	}
	if f.groupKey, err = groupKeyOf(f.group); err != nil {
		return nil, connect.BadField(strings.Join(p.groupBy, ","), f.group, "%v", err)
	}
	if len(f.groupKey) > maxGroupKeyBytes {
		return nil, connect.BadField(strings.Join(p.groupBy, ","), f.groupKey, "the group key takes more than %d bytes", maxGroupKeyBytes)
	}
	if p.timeField == "" {
		f.time = kafkaTime
		if err := p.checkFuture(f.time, now); err != nil {
			return nil, connect.BadField("", formatTime(f.time), "the Kafka timestamp: %v", err)
		}
	} else {
		v, ok, err := field(m, p.timeField)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, connect.BadField(p.timeField, nil, "the event time is missing")
		}
		t, err := eventTime(v)
		if err == nil {
			err = p.checkFuture(t, now)
		}
		if err != nil {
			return nil, connect.BadField(p.timeField, v, "%v", err)
		}
		f.time = t
	}
	if p.idField != "" {
		if jv, ok := lookup(m, p.idField); ok && jv.Type() != fastjson.TypeNull {
			f.hasID = true
			switch jv.Type() {
			case fastjson.TypeString:
				f.id = string(jv.GetStringBytes())
			case fastjson.TypeNumber:
				v, err := goValue(p.idField, jv)
				if err != nil {
					return nil, err
				}
				f.id = fmt.Sprint(v)
			default: // true, false, or an object or array as its JSON text
				f.id = jv.String()
			}
		}
	}
	for _, name := range p.fields {
		v, ok, err := field(m, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		switch x := v.(type) {
		case float64: // finite: goValue refused the rest
			f.values[name] = x
		case string:
			n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			switch {
			case err == nil && !math.IsNaN(n) && !math.IsInf(n, 0):
				f.values[name] = n
			case err == nil:
				return nil, connect.BadField(name, x, "a reading must be a finite number")
			case errors.Is(err, strconv.ErrRange):
				return nil, connect.BadField(name, x, "the reading is beyond the range of a 64-bit float")
			}
		}
	}
	return f, nil
}

// checkFuture fails for an event time too far ahead of the wall clock: the greatest event
// time makes the watermark, which the changelog keeps, and a watermark in the future would
// make every later frame too late.
func (p *parser) checkFuture(t, now int64) error {
	if p.maxFuture > 0 && t > now+p.maxFuture {
		return fmt.Errorf("the event time %s is more than %s ahead of the wall clock (%s; event.time.max.future)",
			formatTime(t), time.Duration(p.maxFuture)*time.Millisecond, formatTime(now))
	}
	return nil
}

// eventTime reads an event time: an RFC 3339 / ISO 8601 string, or epoch milliseconds as a
// number or numeric string.
func eventTime(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		if x < float64(minEventTime) || x > float64(maxEventTime) {
			return 0, errEventTimeRange
		}
		return int64(x), nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			if n < minEventTime || n > maxEventTime {
				return 0, errEventTimeRange
			}
			return n, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				if ms := t.UnixMilli(); ms >= minEventTime && ms <= maxEventTime {
					return ms, nil
				}
				return 0, errEventTimeRange
			}
		}
		return 0, fmt.Errorf("not an ISO 8601 time or epoch milliseconds")
	}
	return 0, fmt.Errorf("the event time must be a string or a number of milliseconds")
}

// Event times are held to the years 1 to 9999, which RFC 3339 can write and whose window
// arithmetic cannot overflow.
var (
	minEventTime      = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxEventTime      = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC).UnixMilli()
	errEventTimeRange = errors.New("the event time is outside the years 1 to 9999")
)

// groupKeyOf is the canonical text of a group key: its values as a JSON array.
func groupKeyOf(group []any) (string, error) {
	b, err := json.Marshal(group)
	if err != nil {
		return "", fmt.Errorf("the group key cannot be written as JSON: %w", err)
	}
	return string(b), nil
}

// formatTime writes epoch milliseconds as RFC 3339 in UTC with milliseconds.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
