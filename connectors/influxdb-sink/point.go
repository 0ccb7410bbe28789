package influxdbsink

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	lp "github.com/influxdata/line-protocol"

	"github.com/sluicehq/sluice/connect"
)

// encoder turns records into lines of InfluxDB line protocol, one point per record, with
// line-protocol's encoder (the one influxdb-client-go uses). It reuses its buffers: not safe
// for concurrent use.
type encoder struct {
	cfg       *Config
	tags      map[string]bool
	fields    map[string]bool // nil: every field that is not a tag
	precision time.Duration
	enc       *lp.Encoder
	out       appender // the encoder's writer: appends to the caller's lines
	p         point
}

func newEncoder(cfg *Config) *encoder {
	e := &encoder{cfg: cfg, tags: map[string]bool{}, precision: precisionOf(cfg.Precision)}
	for _, t := range cfg.Tags {
		e.tags[t] = true
	}
	if len(cfg.Fields) > 0 {
		e.fields = map[string]bool{}
		for _, f := range cfg.Fields {
			e.fields[f] = true
		}
	}
	e.enc = lp.NewEncoder(&e.out)
	e.enc.FailOnFieldErr(true)
	e.enc.SetFieldSortOrder(lp.SortFields)
	e.enc.SetPrecision(e.precision)
	if cfg.unsigned() {
		e.enc.SetFieldTypeSupport(lp.UintSupport)
	}
	return e
}

func precisionOf(unit string) time.Duration {
	switch unit {
	case UnitSeconds:
		return time.Second
	case UnitMillis:
		return time.Millisecond
	case UnitMicros:
		return time.Microsecond
	}
	return time.Nanosecond
}

// point is one record as lp.Metric, its tag and field lists reused from record to record.
type point struct {
	name   string
	t      time.Time
	tags   []*lp.Tag
	fields []*lp.Field
	nt, nf int // used entries
}

func (p *point) Name() string           { return p.name }
func (p *point) Time() time.Time        { return p.t }
func (p *point) TagList() []*lp.Tag     { return p.tags[:p.nt] }
func (p *point) FieldList() []*lp.Field { return p.fields[:p.nf] }
func (p *point) reset()                 { p.name, p.t, p.nt, p.nf = "", time.Time{}, 0, 0 }
func (p *point) addTag(k, v string) {
	p.tags = grow(p.tags, p.nt)
	*p.tags[p.nt] = lp.Tag{Key: k, Value: v}
	p.nt++
}
func (p *point) addField(k string, v any) {
	p.fields = grow(p.fields, p.nf)
	*p.fields[p.nf] = lp.Field{Key: k, Value: v}
	p.nf++
}

func grow[T any](s []*T, n int) []*T {
	if n < len(s) {
		return s
	}
	return append(s, new(T))
}

// encode appends rec's line (with its newline) to dst. A record that cannot be a point gives
// an error naming the field and the value, for the error policy.
func (e *encoder) encode(dst []byte, rec *connect.Record) ([]byte, error) {
	p := &e.p
	p.reset()
	value, ok := rec.Value.(map[string]any)
	if !ok {
		return dst, fmt.Errorf("the record value must be a JSON object or a struct to become a point, not %T", rec.Value)
	}
	var timeVal any
	timeSet := false
	if err := e.walk(rec, value, rec.ValueSchema, "", &timeVal, &timeSet); err != nil {
		return dst, err
	}
	if p.name == "" {
		if e.cfg.MeasurementField != "" {
			return dst, connect.BadField(e.cfg.MeasurementField, nil, "missing: the measurement of the point (measurement.field)")
		}
		p.name = strings.ReplaceAll(e.cfg.Measurement, TopicToken, rec.Topic)
	}
	switch {
	case e.cfg.TimeField == "":
		if rec.Time.IsZero() {
			return dst, errors.New("the record has no timestamp, and no time.field is set")
		}
		p.t = rec.Time
	case !timeSet:
		return dst, connect.BadField(e.cfg.TimeField, nil, "missing: the time of the point (time.field)")
	default:
		t, err := e.timeOf(timeVal)
		if err != nil {
			return dst, err
		}
		p.t = t
	}
	if p.nf == 0 {
		return dst, fmt.Errorf("the record has no field to write (a point needs one): tags %v", tagKeys(p))
	}
	slices.SortFunc(p.tags[:p.nt], func(a, b *lp.Tag) int { return strings.Compare(a.Key, b.Key) })
	e.out = appender(dst)
	if _, err := e.enc.Encode(p); err != nil {
		return dst, fmt.Errorf("measurement %q: %v", p.name, err)
	}
	return e.out, nil
}

// appender is an io.Writer that appends to itself.
type appender []byte

func (a *appender) Write(b []byte) (int, error) {
	*a = append(*a, b...)
	return len(b), nil
}

func tagKeys(p *point) []string {
	out := make([]string, p.nt)
	for i, t := range p.tags[:p.nt] {
		out[i] = t.Key
	}
	return out
}

// walk adds the fields of a value object (nested ones flattened) to the point.
func (e *encoder) walk(rec *connect.Record, obj map[string]any, schema *connect.Schema, prefix string, timeVal *any, timeSet *bool) error {
	for k, v := range obj {
		name := k
		if prefix != "" {
			name = prefix + e.cfg.Separator + k
		}
		var fs *connect.Schema
		if schema != nil {
			if f := schema.Field(k); f != nil {
				fs = f.Schema
			}
		}
		if nested, ok := v.(map[string]any); ok && name != e.cfg.TimeField {
			if err := e.walk(rec, nested, fs, name, timeVal, timeSet); err != nil {
				return err
			}
			continue
		}
		switch {
		case name == e.cfg.TimeField:
			*timeVal, *timeSet = v, true
		case name == e.cfg.MeasurementField:
			s, ok := v.(string)
			if !ok || s == "" {
				return connect.BadField(name, v, "the measurement (measurement.field) must be a non-empty string")
			}
			e.p.name = s
		case v == nil:
			// a null is no field and no tag
		case e.tags[name]:
			s, ok := v.(string)
			if !ok {
				return connect.BadField(name, v, "a tag value must be a string, not %T", v)
			}
			e.p.addTag(name, s)
		case e.cfg.TagStrings && isString(v) && (e.fields == nil || !e.fields[name]):
			e.p.addTag(name, v.(string))
		case e.fields == nil || e.fields[name]:
			fv, err := e.fieldValue(name, v, fs, rec.ValueSchema != nil)
			if err != nil {
				return err
			}
			e.p.addField(name, fv)
		}
	}
	return nil
}

func isString(v any) bool { _, ok := v.(string); return ok }

// fieldValue is the typed field value of v: float, integer, unsigned, boolean or string.
func (e *encoder) fieldValue(name string, v any, _ *connect.Schema, schemaful bool) (any, error) {
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case float64:
		return checkFloat(name, x)
	case float32:
		return checkFloat(name, float64(x))
	case int64:
		if !schemaful && e.cfg.Numbers == NumbersDouble {
			return float64(x), nil // a JSON number: 21.0 arrives as 21
		}
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint64:
		return e.unsignedValue(name, x)
	case uint:
		return e.unsignedValue(name, uint64(x))
	case uint32:
		return e.unsignedValue(name, uint64(x))
	case uint16:
		return e.unsignedValue(name, uint64(x))
	case uint8:
		return e.unsignedValue(name, uint64(x))
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil && e.cfg.Numbers == NumbersInfer {
			return i, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, connect.BadField(name, x, "not a number")
		}
		return checkFloat(name, f)
	default: // arrays and anything else: as JSON text
		b, err := json.Marshal(v)
		if err != nil {
			return nil, connect.BadField(name, v, "cannot be written as a field: %v", err)
		}
		return string(b), nil
	}
}

func checkFloat(name string, f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, connect.BadField(name, f, "InfluxDB takes no NaN or infinite floats")
	}
	return f, nil
}

func (e *encoder) unsignedValue(name string, u uint64) (any, error) {
	if e.cfg.unsigned() {
		return u, nil
	}
	if u > math.MaxInt64 {
		return nil, connect.BadField(name, u, "too large for an integer field of InfluxDB 1.x, which has no unsigned type")
	}
	return int64(u), nil
}

// timeOf reads the time field: RFC 3339 text, a number of time.field.unit since the epoch
// (also as text, as some devices send it), or a timestamp.
func (e *encoder) timeOf(v any) (time.Time, error) {
	if x, ok := v.(string); ok {
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			v = n
		}
	}
	t, err := connect.EventTime(v, e.cfg.TimeUnit)
	if err != nil {
		return time.Time{}, connect.BadField(e.cfg.TimeField, v, "%v", err)
	}
	return t, nil
}
