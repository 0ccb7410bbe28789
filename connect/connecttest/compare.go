package connecttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Keys a row that a sink acceptance check's Read returns may hold besides the fields of the
// record value, for what the outside system keeps of the record itself. The check compares
// each one a row has with the record; a row need not have any.
const (
	MetaKey       = "@key"       // the record key
	MetaTime      = "@time"      // the record time: a time.Time, milliseconds since the epoch, or RFC 3339 text
	MetaTopic     = "@topic"     // the topic
	MetaPartition = "@partition" // the Kafka partition
	MetaOffset    = "@offset"    // the Kafka offset
)

// want is one record as the outside system should hold it.
type want struct {
	desc   string         // how messages name it
	fields map[string]any // the value's fields
	meta   map[string]any // what each Meta key should hold
}

// sinkWant is what the outside system should hold of a sink record.
func sinkWant(n int, r connect.Record) want {
	return want{
		desc:   fmt.Sprintf("record %d (%s)", n, r.Position()),
		fields: r.Value.(map[string]any),
		meta: map[string]any{MetaKey: r.Key, MetaTime: r.Time, MetaTopic: r.Topic,
			MetaPartition: r.KafkaPartition, MetaOffset: r.KafkaOffset},
	}
}

// idOf is the text of an identifying value, so that 7, int64(7) and 7.0 are one id.
func idOf(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	if n, ok := toNumber(v); ok {
		return n.String(), true
	}
	return fmt.Sprint(v), true
}

// diffRows compares the rows read back with the records wanted, by the records' ids (the
// value of idField). With once every record must be there exactly once, else at least once.
// It returns a line per problem, sorted by record.
func diffRows(idField string, wants map[string]want, rows []map[string]any, once bool) []string {
	byID := map[string][]map[string]any{}
	var problems, unexpected []string
	for i, row := range rows {
		id, ok := idOf(row[idField])
		if !ok {
			unexpected = append(unexpected, fmt.Sprintf("row %d read back has no %q field: %v", i, idField, row))
			continue
		}
		if _, ok := wants[id]; !ok {
			unexpected = append(unexpected, fmt.Sprintf("row %d read back is no record written: %s %q: %v", i, idField, id, row))
			continue
		}
		byID[id] = append(byID[id], row)
	}
	for _, id := range slices.Sorted(maps.Keys(wants)) {
		w := wants[id]
		got := byID[id]
		switch {
		case len(got) == 0:
			problems = append(problems, fmt.Sprintf("%s, %s %q: missing", w.desc, idField, id))
			continue
		case once && len(got) > 1:
			problems = append(problems, fmt.Sprintf("%s, %s %q: stored %d times, want once", w.desc, idField, id, len(got)))
		}
		for _, row := range got {
			for _, d := range diffRow(w, row) {
				problems = append(problems, fmt.Sprintf("%s, %s %q: %s", w.desc, idField, id, d))
			}
		}
	}
	return append(problems, unexpected...)
}

// diffRow compares a row with the record it stands for: every field of the record value must
// be there with its value, and each Meta key the row has must hold what the record has.
func diffRow(w want, row map[string]any) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(w.fields)) {
		got, ok := row[k]
		if !ok {
			out = append(out, fmt.Sprintf("field %q missing (want %s)", k, show(w.fields[k])))
			continue
		}
		if !sameValue(w.fields[k], got) {
			out = append(out, fmt.Sprintf("field %q = %s, want %s", k, show(got), show(w.fields[k])))
		}
	}
	for _, k := range []string{MetaKey, MetaTime, MetaTopic, MetaPartition, MetaOffset} {
		got, ok := row[k]
		if !ok {
			continue
		}
		if wv, known := w.meta[k]; known && !sameValue(wv, got) {
			out = append(out, fmt.Sprintf("%s = %s, want %s", k, show(got), show(wv)))
		}
	}
	return out
}

// show renders a value with its type, so that 21.5 the string and 21.5 the number differ.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case []byte:
		return fmt.Sprintf("[]byte(%q)", v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// number is a numeric value: integral ones keep every digit.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func (n number) String() string {
	if n.isInt {
		return strconv.FormatInt(n.i, 10)
	}
	return strconv.FormatFloat(n.f, 'g', -1, 64)
}

// exactFloat reports whether a float64 holds i exactly.
func exactFloat(i int64) bool {
	f := float64(i)
	return f < math.MaxInt64 && int64(f) == i
}

// toNumber reads any Go number, and json.Number. A float holding a whole number counts as
// that integer, so that 3, int64(3) and 3.0 are the same number.
func toNumber(v any) (number, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return number{isInt: true, i: rv.Int()}, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return number{f: float64(u)}, true
		}
		return number{isInt: true, i: int64(u)}, true
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return number{isInt: true, i: int64(f)}, true
		}
		return number{f: f}, true
	}
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return number{isInt: true, i: i}, true
		}
		if f, err := n.Float64(); err == nil {
			return toNumber(f)
		}
	}
	return number{}, false
}

// sameValue reports whether got, read back, is the value want that was written: exactly, up
// to the representation (an int64 and a float64 of the same value; text and bytes; a time
// as a time.Time, epoch milliseconds or RFC 3339 text). A float read back as a float32 is
// not the same unless no precision was lost.
func sameValue(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case string:
		switch g := got.(type) {
		case string:
			return g == w
		case []byte:
			return string(g) == w
		}
		return false
	case []byte:
		return sameValue(string(w), got)
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case time.Time:
		return sameTime(w, got)
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !sameValue(wv, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	if wn, ok := toNumber(want); ok {
		gn, ok := toNumber(got)
		if !ok {
			return false
		}
		switch {
		case wn.isInt && gn.isInt:
			return wn.i == gn.i
		case wn.isInt:
			return exactFloat(wn.i) && float64(wn.i) == gn.f
		case gn.isInt:
			return exactFloat(gn.i) && float64(gn.i) == wn.f
		}
		return wn.f == gn.f
	}
	return reflect.DeepEqual(want, got)
}

// sameTime compares a time with a time read back.
func sameTime(w time.Time, got any) bool {
	switch g := got.(type) {
	case time.Time:
		return g.Equal(w)
	case string:
		t, err := time.Parse(time.RFC3339Nano, g)
		return err == nil && t.Equal(w)
	}
	if n, ok := toNumber(got); ok {
		return n.isInt && n.i == w.UnixMilli() && w.Equal(time.UnixMilli(n.i))
	}
	return false
}

// recordRow is a source record's value as a row: a map, or JSON text of an object.
func recordRow(r connect.Record) (map[string]any, error) {
	var text []byte
	switch v := r.Value.(type) {
	case map[string]any:
		return v, nil
	case string:
		text = []byte(v)
	case []byte:
		text = v
	default:
		return nil, fmt.Errorf("the value is a %T, neither a map nor JSON text of an object", r.Value)
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		return nil, fmt.Errorf("the value %q is not JSON text of an object: %w", text, err)
	}
	return row, nil
}

// firstLines keeps a failure message readable: the first n problems, and how many more.
func firstLines(problems []string, n int) []string {
	if len(problems) <= n {
		return problems
	}
	return append(slices.Clone(problems[:n]), fmt.Sprintf("... and %d more", len(problems)-n))
}
