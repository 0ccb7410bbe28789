package mqttsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/connect"
)

// payload is a message's payload, parsed as JSON once when something needs it.
type payload struct {
	raw    []byte
	parsed any
	err    error
	done   bool
}

// json parses the payload as JSON, keeping numbers as json.Number.
func (p *payload) json() (any, error) {
	if !p.done {
		p.done = true
		dec := json.NewDecoder(bytes.NewReader(p.raw))
		dec.UseNumber()
		if p.err = dec.Decode(&p.parsed); p.err == nil && dec.More() {
			p.err = fmt.Errorf("text after the JSON value at byte %d", dec.InputOffset())
		}
		if p.err != nil {
			p.err = connect.BadField("", clip(p.raw), "the payload is not JSON: %v", p.err)
		}
	}
	return p.parsed, p.err
}

// clip shortens a payload for a message.
func clip(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// field finds a dotted path (device.id) in the parsed payload.
func (p *payload) field(path string) (any, error) {
	v, err := p.json()
	if err != nil {
		return nil, err
	}
	cur := v
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, connect.BadField(path, clip(p.raw), "the payload has no field %q: it is not an object at %q", path, part)
		}
		if cur, ok = obj[part]; !ok {
			return nil, connect.BadField(path, clip(p.raw), "the payload has no field %q", path)
		}
	}
	return cur, nil
}

// keyFrom returns the text of the key field: a string as it is, a number or boolean as its
// JSON text.
func (p *payload) keyFrom(path string) (string, error) {
	v, err := p.field(path)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", connect.BadField(path, fmt.Sprint(v), "the key must be a string, number or boolean, not %s", jsonKind(v))
}

// timeFrom reads the event time from the payload field in the given format.
func (p *payload) timeFrom(path, format string) (time.Time, error) {
	v, err := p.field(path)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseTime(v, format)
	if err != nil {
		return time.Time{}, connect.BadField(path, fmt.Sprint(v), "%v", err)
	}
	return t, nil
}

// parseTime reads an ISO 8601 text or an epoch number.
func parseTime(v any, format string) (time.Time, error) {
	switch v := v.(type) {
	case string:
		if format == "auto" {
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				return epoch(v, format)
			}
		}
		if format != "auto" && format != "iso8601" {
			return epoch(v, format)
		}
		return parseISO(v)
	case json.Number:
		if format == "iso8601" {
			return time.Time{}, fmt.Errorf("timestamp.format is iso8601 but the time is the number %s", v)
		}
		return epoch(string(v), format)
	}
	return time.Time{}, fmt.Errorf("the time must be ISO 8601 text or an epoch number, not %s", jsonKind(v))
}

var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseISO reads the ISO 8601 forms devices write; a time without a zone is UTC.
func parseISO(s string) (time.Time, error) {
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time such as 2024-05-01T12:00:00Z")
}

// epoch reads a number of seconds, milliseconds, microseconds or nanoseconds since the Unix
// epoch; auto picks the unit by the number's size (seconds until the year 5138).
func epoch(s, format string) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("timestamp.format is %s but %q is not a number", format, s)
	}
	unit := format
	if unit == "auto" {
		switch a := math.Abs(f); {
		case a < 1e11:
			unit = "epoch.seconds"
		case a < 1e14:
			unit = "epoch.millis"
		case a < 1e17:
			unit = "epoch.micros"
		default:
			unit = "epoch.nanos"
		}
	}
	// Integers are exact; fractions are rounded to the nanosecond.
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch unit {
		case "epoch.seconds":
			if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
				break
			}
			return time.Unix(n, 0).UTC(), nil
		case "epoch.millis":
			return time.UnixMilli(n).UTC(), nil
		case "epoch.micros":
			return time.UnixMicro(n).UTC(), nil
		case "epoch.nanos":
			return time.Unix(0, n).UTC(), nil
		}
	}
	scale := map[string]float64{"epoch.seconds": 1e9, "epoch.millis": 1e6, "epoch.micros": 1e3, "epoch.nanos": 1}[unit]
	ns := f * scale
	if ns > math.MaxInt64 || ns < math.MinInt64 {
		return time.Time{}, fmt.Errorf("%s is out of range as %s", s, unit)
	}
	return time.Unix(0, int64(ns)).UTC(), nil
}

// jsonValue turns a parsed payload into the types records carry: json.Number becomes int64
// when it is a whole number that fits, else float64.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s is out of range", v)
		}
		return f, nil
	case map[string]any:
		for k, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
	case []any:
		for i, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// checkUTF8 is the check of payload.format=string.
func checkUTF8(b []byte) error {
	if !utf8.Valid(b) {
		return connect.BadField("", clip(b), "payload.format is string but the payload is not UTF-8 text")
	}
	return nil
}
