package timescalesink

import (
	"errors"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

func columns(r *row) map[string]any {
	out := map[string]any{}
	for _, f := range r.fields {
		out[f.column] = f.value
	}
	return out
}

func TestMapRecordFlattensAndMaps(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.UTC)
	rec := &connect.Record{Topic: "iot.raw", Key: "dev-1", Time: ts, Value: map[string]any{
		"device_id": "dev-1", "reading": map[string]any{"temp": 21.5, "hum": int64(40)}, "tags": []any{"a"},
	}}
	r, err := newMapper(decode(t)).mapRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"device_id": "dev-1", "reading_temp": 21.5, "reading_hum": int64(40), "tags": []any{"a"}}
	if got := columns(r); !reflect.DeepEqual(got, want) || !r.time.Equal(ts) {
		t.Errorf("flattened: %v at %v, want %v at %v", got, r.time, want, ts)
	}

	r, _ = newMapper(decode(t, "fields.flatten", "false")).mapRecord(rec)
	if got := columns(r)["reading"]; !reflect.DeepEqual(got, map[string]any{"temp": 21.5, "hum": int64(40)}) {
		t.Errorf("unflattened reading = %v", got)
	}

	r, _ = newMapper(decode(t, "fields.mapping", "reading_temp:temp_c, device_id:device", "fields.flatten.separator", "_")).mapRecord(rec)
	if got := columns(r); !reflect.DeepEqual(got, map[string]any{"temp_c": 21.5, "device": "dev-1"}) {
		t.Errorf("mapped: %v", got)
	}
	if !reflect.DeepEqual(r.extra, map[string]any{"reading_hum": int64(40), "tags": []any{"a"}}) {
		t.Errorf("unmapped fields: %v", r.extra)
	}
}

func TestMapRecordTime(t *testing.T) {
	want := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		unit string
		v    any
	}{
		{"ms", want.UnixMilli()}, {"s", want.Unix()}, {"s", float64(want.Unix())}, {"us", want.UnixMicro()},
		{"ns", want.UnixNano()}, {"ms", "2024-05-01T14:00:00+02:00"}, {"ms", want},
	} {
		m := newMapper(decode(t, "time.field", "at_ts", "time.field.unit", c.unit))
		r, err := m.mapRecord(&connect.Record{Value: map[string]any{"at": map[string]any{"ts": c.v}, "x": int64(1)}})
		if err != nil || !r.time.Equal(want) {
			t.Errorf("time %v (%s): %v, %v; want %v", c.v, c.unit, r, err, want)
			continue
		}
		if _, ok := columns(r)["at_ts"]; ok {
			t.Errorf("the time field is also a column")
		}
	}
	m := newMapper(decode(t, "time.field", "ts"))
	for _, v := range []map[string]any{{"x": int64(1)}, {"ts": nil}, {"ts": "yesterday"}, {"ts": true}, {"ts": math.NaN()}} {
		_, err := m.mapRecord(&connect.Record{Value: v})
		var de *connect.DataError
		if !errors.As(err, &de) || de.Field != "ts" {
			t.Errorf("value %v: %v, want a DataError on ts", v, err)
		}
	}
	if _, err := newMapper(decode(t)).mapRecord(&connect.Record{Value: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "no Kafka timestamp") {
		t.Errorf("no record time: %v", err)
	}
	_, err := newMapper(decode(t)).mapRecord(&connect.Record{Value: "text", Time: want})
	var de *connect.DataError
	if !errors.As(err, &de) || de.Field != "value" || !strings.Contains(err.Error(), `"text"`) {
		t.Errorf("a string value: %v, want a DataError naming the value", err)
	}
}

func TestMapRecordKeyColumns(t *testing.T) {
	now := time.Now()
	m := newMapper(decode(t, "insert.mode", "upsert", "key.columns", "device_id,time"))
	r, err := m.mapRecord(&connect.Record{Key: "dev-7", Time: now, Value: map[string]any{"temp": 1.5}})
	if err != nil || columns(r)["device_id"] != "dev-7" {
		t.Errorf("plain key: %v, %v", r, err)
	}
	r, err = m.mapRecord(&connect.Record{Key: map[string]any{"device_id": "dev-8"}, Time: now, Value: map[string]any{"temp": 1.5}})
	if err != nil || columns(r)["device_id"] != "dev-8" {
		t.Errorf("struct key: %v, %v", r, err)
	}
	r, err = m.mapRecord(&connect.Record{Key: "ignored", Time: now, Value: map[string]any{"device_id": "dev-9"}})
	if err != nil || columns(r)["device_id"] != "dev-9" {
		t.Errorf("key in the value: %v, %v", r, err)
	}
	_, err = m.mapRecord(&connect.Record{Time: now, Value: map[string]any{"temp": 1.5}})
	var de *connect.DataError
	if !errors.As(err, &de) || de.Field != "device_id" {
		t.Errorf("no key: %v, want a DataError on device_id", err)
	}
}

func TestInferTypes(t *testing.T) {
	for _, c := range []struct {
		v    any
		s    *connect.Schema
		want string
	}{
		{int64(1), nil, "bigint"}, {1.5, nil, "double precision"}, {"x", nil, "text"}, {true, nil, "boolean"},
		{map[string]any{}, nil, "jsonb"}, {[]any{}, nil, "jsonb"}, {[]byte("x"), nil, "bytea"}, {nil, nil, ""},
		{time.Now(), nil, "timestamptz"},
		{int64(1), &connect.Schema{Type: connect.Int16}, "smallint"},
		{int64(1), &connect.Schema{Type: connect.Int32}, "integer"},
		{float64(1), &connect.Schema{Type: connect.Float32}, "real"},
		{nil, &connect.Schema{Type: connect.String, Optional: true}, "text"},
		{time.Now(), &connect.Schema{Type: connect.Int64, Name: logicalTimestamp}, "timestamptz"},
		{time.Now(), &connect.Schema{Type: connect.Int32, Name: logicalDate}, "date"},
		{"1.20", &connect.Schema{Type: connect.Bytes, Name: logicalDecimal}, "numeric"},
		{map[string]any{}, &connect.Schema{Type: connect.Map}, "jsonb"},
	} {
		if got := inferType(c.v, c.s, NumbersInfer); got != c.want {
			t.Errorf("inferType(%v, %+v) = %q, want %q", c.v, c.s, got, c.want)
		}
	}
	if got := inferType(int64(1), nil, NumbersDouble); got != "double precision" {
		t.Errorf("with double numbers: %s", got)
	}
	if got := widen(widen("", "bigint"), "double precision"); got != "double precision" {
		t.Errorf("whole then fractional: %s", got)
	}
}

func TestCoerce(t *testing.T) {
	ok := func(k kind, bits int, v, want any) {
		t.Helper()
		got, fine := coerce(k, bits, v)
		if !fine || !reflect.DeepEqual(got, want) {
			t.Errorf("coerce(%d, %v) = %v, %v; want %v", k, v, got, fine, want)
		}
	}
	bad := func(k kind, bits int, v any) {
		t.Helper()
		if got, fine := coerce(k, bits, v); fine {
			t.Errorf("coerce(%d, %v) = %v, want it left to the database", k, v, got)
		}
	}
	ok(kindInt, 64, 21.0, int64(21))
	ok(kindInt, 32, " 7", int64(7))
	bad(kindInt, 64, 21.5)
	bad(kindInt, 16, int64(70000))
	bad(kindInt, 64, "warm")
	ok(kindFloat, 0, int64(3), 3.0)
	ok(kindFloat, 0, "2.5", 2.5)
	bad(kindFloat, 0, "warm")
	bad(kindFloat, 0, map[string]any{})
	ok(kindJSON, 0, "hello", `"hello"`)
	ok(kindJSON, 0, map[string]any{"a": int64(1)}, `{"a":1}`)
	bad(kindJSON, 0, math.NaN())
	ok(kindText, 0, int64(5), "5")
	ok(kindText, 0, []any{"a"}, `["a"]`)
	ok(kindBool, 0, "true", true)
	ok(kindTime, 0, "2024-05-01T12:00:00Z", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	bad(kindTime, 0, "2024-05-01 12:00")
	ok(kindBytes, 0, "ab", []byte("ab"))
	ok(kindOther, 0, "2f0c...", "2f0c...")
	bad(kindOther, 0, map[string]any{})
	ok(kindFloat, 0, nil, nil)
	if got, _ := coerce(kindNumeric, 0, "12.30"); got == nil {
		t.Errorf("numeric from a decimal string failed")
	}

	var texts []string
	for _, v := range []any{[]byte{1, 2}, true, int64(-3), 2.5, math.Inf(1), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), map[string]any{"a": "b"}} {
		texts = append(texts, textOf(v).(string))
	}
	sort.Strings(texts)
	want := []string{"-3", "2.5", "2024-05-01T00:00:00Z", "Infinity", `\x0102`, "true", `{"a":"b"}`}
	sort.Strings(want)
	if !reflect.DeepEqual(texts, want) {
		t.Errorf("textOf: %q, want %q", texts, want)
	}
}
