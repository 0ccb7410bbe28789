package aggregate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// parser turns raw JSON values into frames.
type parser struct {
	groupBy   []string
	fields    []string
	timeField string // empty: the Kafka timestamp
	idField   string
}

// lookup finds a dotted path in a JSON object: the whole name as a key first, then path
// elements.
func lookup(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	cur := any(m)
	for _, el := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[el]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// parse reads one raw frame; kafkaTime is the record's timestamp in milliseconds. The error
// is a *connect.DataError naming the bad field.
func (p *parser) parse(value []byte, kafkaTime int64) (*frame, error) {
	var m map[string]any
	if err := json.Unmarshal(value, &m); err != nil || m == nil {
		return nil, connect.BadField("", value, "the frame is not a JSON object")
	}
	if len(m) == 2 {
		if payload, ok := m["payload"].(map[string]any); ok {
			if _, ok := m["schema"]; ok {
				m = payload
			}
		}
	}
	f := &frame{group: make([]any, len(p.groupBy)), values: make(map[string]float64, len(p.fields))}
	for i, g := range p.groupBy {
		v, ok := lookup(m, g)
		if !ok || v == nil {
			return nil, connect.BadField(g, nil, "the group field is missing")
		}
		switch v.(type) {
		case map[string]any, []any:
			return nil, connect.BadField(g, v, "a group field must hold a string, number or boolean")
		}
		f.group[i] = v
	}
	f.groupKey = groupKeyOf(f.group)
	if p.timeField == "" {
		f.time = kafkaTime
	} else {
		v, ok := lookup(m, p.timeField)
		if !ok {
			return nil, connect.BadField(p.timeField, nil, "the event time is missing")
		}
		t, err := eventTime(v)
		if err != nil {
			return nil, connect.BadField(p.timeField, v, "%v", err)
		}
		f.time = t
	}
	if p.idField != "" {
		if v, ok := lookup(m, p.idField); ok && v != nil {
			f.hasID = true
			if s, ok := v.(string); ok {
				f.id = s
			} else {
				f.id = fmt.Sprint(v)
			}
		}
	}
	for _, name := range p.fields {
		v, ok := lookup(m, name)
		if !ok {
			continue
		}
		switch x := v.(type) {
		case float64:
			f.values[name] = x
		case string:
			if n, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				f.values[name] = n
			}
		}
	}
	return f, nil
}

// eventTime reads an event time: an RFC 3339 / ISO 8601 string, or epoch milliseconds as a
// number or numeric string.
func eventTime(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		return int64(x), nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UnixMilli(), nil
			}
		}
		return 0, fmt.Errorf("not an ISO 8601 time or epoch milliseconds")
	}
	return 0, fmt.Errorf("the event time must be a string or a number of milliseconds")
}

// groupKeyOf is the canonical text of a group key: its values as a JSON array.
func groupKeyOf(group []any) string {
	b, _ := json.Marshal(group)
	return string(b)
}

// formatTime writes epoch milliseconds as RFC 3339 in UTC with milliseconds.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
