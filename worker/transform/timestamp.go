package transform

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/num"
)

// timestampConverter converts a timestamp field (or the whole key or value) between a
// formatted string, a Unix number, and Connect's Date, Time and Timestamp types (time.Time
// values). Strings are formatted and parsed in UTC.
type timestampConverter struct {
	side      side
	field     string
	target    string
	layout    string // Go layout of format; "" when no format is set
	format    string
	precision string
	cache     schemaCache
}

const (
	targetString    = "string"
	targetUnix      = "unix"
	targetDate      = "Date"
	targetTime      = "Time"
	targetTimestamp = "Timestamp"
)

func newTimestampConverter(s *settings, key bool) Transform {
	t := &timestampConverter{side: side(key), field: s.str("field", ""), format: s.raw("format", "")}
	if !s.has("target.type") {
		s.missing("target.type")
	} else {
		t.target = s.oneOf("target.type", targetTimestamp, targetString, targetUnix, targetDate, targetTime, targetTimestamp)
	}
	t.precision = s.oneOf("unix.precision", "milliseconds", "seconds", "milliseconds", "microseconds", "nanoseconds")
	if t.format != "" {
		var err error
		if t.layout, err = goLayout(t.format); err != nil {
			s.fail("format", "%v", err)
		}
	} else if t.target == targetString {
		s.fail("format", "TimestampConverter requires format option to be specified when using string timestamps")
	}
	return t
}

func (t *timestampConverter) Apply(r *connect.Record) (*connect.Record, error) {
	if t.field == "" {
		v, s := t.side.value(r), t.side.schema(r)
		nv, err := t.convert(v, s, "")
		if err != nil {
			return nil, err
		}
		var ns *connect.Schema
		if s != nil {
			ns, err = t.cache.get(s, func() (*connect.Schema, error) { return t.targetSchema(s, "") })
			if err != nil {
				return nil, err
			}
		}
		return t.side.with(r, nv, ns), nil
	}
	m, s, ok, err := structOf(t.side, r, "TimestampConverter")
	if !ok {
		return r, err
	}
	var fs *connect.Schema
	if s != nil {
		f := s.Field(t.field)
		if f == nil {
			return nil, connect.BadField(t.field, m, "TimestampConverter: the %s schema has no such field", t.side)
		}
		fs = f.Schema
	}
	v, present := m[t.field]
	out := m
	if present {
		nv, err := t.convert(v, fs, t.field)
		if err != nil {
			return nil, err
		}
		out = copyMap(m, 0)
		out[t.field] = nv
	}
	if s == nil {
		return t.side.with(r, out, nil), nil
	}
	ns, err := t.cache.get(s, func() (*connect.Schema, error) {
		ns := copyStruct(s)
		for _, f := range s.Fields {
			if f.Name == t.field {
				nfs, err := t.targetSchema(f.Schema, f.Name)
				if err != nil {
					return nil, err
				}
				f = connect.Field{Name: f.Name, Schema: nfs}
			}
			ns.Fields = append(ns.Fields, f)
		}
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	return t.side.with(r, out, ns), nil
}

func (t *timestampConverter) targetSchema(in *connect.Schema, field string) (*connect.Schema, error) {
	if in != nil {
		switch {
		case in.Name == timestampName && in.Type == connect.Int64, in.Name == dateName && in.Type == connect.Int32,
			in.Name == timeName && in.Type == connect.Int32, in.Type == connect.Int64, in.Type == connect.String:
		default:
			return nil, connect.BadField(field, nil, "TimestampConverter cannot convert a %s", describe(in))
		}
	}
	s := &connect.Schema{Optional: in == nil || in.Optional}
	switch t.target {
	case targetString:
		s.Type = connect.String
	case targetUnix:
		s.Type = connect.Int64
	case targetDate:
		s.Type, s.Name, s.Version = connect.Int32, dateName, 1
	case targetTime:
		s.Type, s.Name, s.Version = connect.Int32, timeName, 1
	case targetTimestamp:
		s.Type, s.Name, s.Version = connect.Int64, timestampName, 1
	}
	return s, nil
}

func describe(s *connect.Schema) string {
	if s.Name != "" {
		return fmt.Sprintf("%s (%s)", s.Type, s.Name)
	}
	return string(s.Type)
}

// convert reads a timestamp (time.Time, a Unix number in unix.precision, or a string in
// format) and writes it as the target type.
func (t *timestampConverter) convert(v any, _ *connect.Schema, field string) (any, error) {
	if v == nil {
		return nil, nil
	}
	var ts time.Time
	switch x := v.(type) {
	case time.Time:
		ts = x
	case string:
		if t.layout == "" {
			return nil, connect.BadField(field, v, "TimestampConverter requires format option to be specified when using string timestamps")
		}
		var err error
		if ts, err = time.ParseInLocation(t.layout, x, time.UTC); err != nil {
			return nil, connect.BadField(field, v, "does not match the format %q: %v", t.format, err)
		}
	case float64, float32:
		f := toFloat(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, connect.BadField(field, v, "not a Unix time")
		}
		// float64 has about 16 significant digits: keep microseconds
		sec, frac := math.Modf(f / unitsPerSecond(t.precision))
		if math.Abs(sec) > 1e15 {
			return nil, connect.BadField(field, v, "out of range for a Unix time")
		}
		ts = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3)
	default:
		n, ok := num.Int(v)
		if !ok {
			return nil, connect.BadField(field, v, "TimestampConverter needs a time, a Unix number or a string, not %T", v)
		}
		switch t.precision {
		case "seconds":
			ts = time.Unix(n, 0)
		case "microseconds":
			ts = time.UnixMicro(n)
		case "nanoseconds":
			ts = time.Unix(0, n)
		default:
			ts = time.UnixMilli(n)
		}
	}
	ts = ts.UTC()
	switch t.target {
	case targetString:
		return ts.Format(t.layout), nil
	case targetUnix:
		switch t.precision {
		case "seconds":
			return ts.Unix(), nil
		case "microseconds":
			return ts.UnixMicro(), nil
		case "nanoseconds":
			return ts.UnixNano(), nil
		}
		return ts.UnixMilli(), nil
	case targetDate:
		return ts.Truncate(24 * time.Hour), nil
	case targetTime:
		return time.UnixMilli(ts.Sub(ts.Truncate(24 * time.Hour)).Milliseconds()).UTC(), nil
	}
	return ts, nil
}

func unitsPerSecond(precision string) float64 {
	switch precision {
	case "seconds":
		return 1
	case "microseconds":
		return 1e6
	case "nanoseconds":
		return 1e9
	}
	return 1e3
}

// goLayout translates a java.text.SimpleDateFormat pattern into a Go time layout. It knows
// the letters y, M, d, H, h, m, s, S (after a '.' or ','), a, E, z, Z and X, quoted literals
// ('T', and ” for a quote) and punctuation. Literal text that Go would read as part of a
// layout (digits, "Jan", "Mon", "MST", "PM", "_") is refused.
func goLayout(pattern string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '\'' {
			if i+1 < len(pattern) && pattern[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			end := strings.IndexByte(pattern[i+1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("pattern %q has an unterminated quote", pattern)
			}
			lit := pattern[i+1 : i+1+end]
			if err := checkLiteral(pattern, lit); err != nil {
				return "", err
			}
			b.WriteString(lit)
			i += end + 2
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			if err := checkLiteral(pattern, string(c)); err != nil {
				return "", err
			}
			b.WriteByte(c)
			i++
			continue
		}
		n := 1
		for i+n < len(pattern) && pattern[i+n] == c {
			n++
		}
		var out string
		switch c {
		case 'y':
			out = "2006"
			if n == 2 {
				out = "06"
			}
		case 'M':
			out = [...]string{"1", "01", "Jan", "January"}[min(n, 4)-1]
		case 'd':
			out = "02"
			if n == 1 {
				out = "2"
			}
		case 'H':
			if n > 2 {
				return "", fmt.Errorf("pattern %q: %q is not supported", pattern, strings.Repeat("H", n))
			}
			out = "15"
		case 'h':
			out = "03"
			if n == 1 {
				out = "3"
			}
		case 'm':
			out = "04"
			if n == 1 {
				out = "4"
			}
		case 's':
			out = "05"
			if n == 1 {
				out = "5"
			}
		case 'S':
			s := b.String()
			if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, ",") {
				return "", fmt.Errorf("pattern %q: fractions of a second (S) must follow a '.' or ','", pattern)
			}
			out = strings.Repeat("0", n)
		case 'a':
			out = "PM"
		case 'E':
			out = "Mon"
			if n >= 4 {
				out = "Monday"
			}
		case 'z':
			out = "MST"
		case 'Z':
			out = "-0700"
		case 'X':
			out = [...]string{"Z07", "Z0700", "Z07:00"}[min(n, 3)-1]
		default:
			return "", fmt.Errorf("pattern %q: the letter %q is not supported (supported: y M d H h m s S a E z Z X and 'quoted text')", pattern, c)
		}
		b.WriteString(out)
		i += n
	}
	return b.String(), nil
}

func checkLiteral(pattern, lit string) error {
	for _, bad := range []string{"Jan", "Mon", "MST", "PM", "pm", "_"} {
		if strings.Contains(lit, bad) {
			return fmt.Errorf("pattern %q: the literal %q cannot be expressed as a Go time layout", pattern, lit)
		}
	}
	if strings.ContainsAny(lit, "0123456789") {
		return fmt.Errorf("pattern %q: the literal %q cannot be expressed as a Go time layout (no digits)", pattern, lit)
	}
	return nil
}
