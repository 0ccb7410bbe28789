package transform

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// one builds a chain of a single transform t of the given type with settings.
func one(t *testing.T, typ string, settings ...string) *Chain {
	t.Helper()
	cfg := map[string]string{"transforms": "t", "transforms.t.type": typ}
	for i := 0; i+1 < len(settings); i += 2 {
		cfg["transforms.t."+settings[i]] = settings[i+1]
	}
	c, err := NewChain(cfg)
	if err != nil {
		t.Fatalf("NewChain(%v): %v", cfg, err)
	}
	return c
}

func str(t connect.SchemaType, optional bool) *connect.Schema {
	return &connect.Schema{Type: t, Optional: optional}
}

func structSchema(name string, fields ...any) *connect.Schema {
	s := &connect.Schema{Type: connect.Struct, Name: name}
	for i := 0; i+1 < len(fields); i += 2 {
		fs, _ := fields[i+1].(*connect.Schema)
		s.Fields = append(s.Fields, connect.Field{Name: fields[i].(string), Schema: fs})
	}
	return s
}

var ts0 = time.Date(2024, 6, 10, 16, 0, 0, 123e6, time.UTC)

func rec(value any) *connect.Record {
	return &connect.Record{Topic: "iot.raw", Key: "dev-1", Value: value, Time: ts0, KafkaPartition: 3, KafkaOffset: 99}
}

// deepCopy copies the maps and slices of a value so tests can check that inputs are intact.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

type tcase struct {
	name     string
	typ      string
	settings []string
	in       *connect.Record
	want     *connect.Record // nil: dropped
	err      string          // a DataError containing this
}

func run(t *testing.T, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := one(t, tc.typ, tc.settings...)
			before := *tc.in
			before.Key, before.Value = deepCopy(tc.in.Key), deepCopy(tc.in.Value)
			before.Headers = slices.Clone(tc.in.Headers)
			got, err := c.Apply(tc.in)
			if !reflect.DeepEqual(*tc.in, before) {
				t.Errorf("input modified: %+v, was %+v", *tc.in, before)
			}
			if tc.err != "" {
				var de *connect.DataError
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &de) {
					t.Fatalf("error = %v, want a DataError with %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), `transform "t" (org.apache.kafka.connect.transforms.`) {
					t.Errorf("error %q does not name the transform", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
				if got != nil && tc.want != nil {
					if !reflect.DeepEqual(got.Value, tc.want.Value) {
						t.Errorf("value %#v, want %#v", got.Value, tc.want.Value)
					}
					if !reflect.DeepEqual(got.ValueSchema, tc.want.ValueSchema) {
						t.Errorf("value schema %s, want %s", dump(got.ValueSchema), dump(tc.want.ValueSchema))
					}
					if !reflect.DeepEqual(got.KeySchema, tc.want.KeySchema) {
						t.Errorf("key schema %s, want %s", dump(got.KeySchema), dump(tc.want.KeySchema))
					}
				}
			}
		})
	}
}

func dump(s *connect.Schema) string {
	if s == nil {
		return "nil"
	}
	var b strings.Builder
	b.WriteString(string(s.Type))
	if s.Optional {
		b.WriteString("?")
	}
	if s.Name != "" {
		b.WriteString("(" + s.Name + ")")
	}
	if len(s.Fields) > 0 {
		b.WriteString("{")
		for i, f := range s.Fields {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(f.Name + ":" + dump(f.Schema))
		}
		b.WriteString("}")
	}
	return b.String()
}

// with returns a copy of r changed by fn.
func with(r *connect.Record, fn func(*connect.Record)) *connect.Record {
	c := *r
	fn(&c)
	return &c
}

func withSchema(r *connect.Record, s *connect.Schema) *connect.Record {
	return with(r, func(c *connect.Record) { c.ValueSchema = s })
}

func TestCast(t *testing.T) {
	in := rec(map[string]any{"temp": "21.5", "count": 7.9, "on": "true", "id": int64(42), "big": int64(300), "raw": []byte("hi")})
	schema := structSchema("frame", "temp", str(connect.String, false), "count", str(connect.Float64, true), "id", str(connect.Int64, false))
	sin := withSchema(rec(map[string]any{"temp": "21.5", "count": 7.9, "id": int64(42)}), schema)
	run(t, []tcase{
		{"fields", "Cast$Value", []string{"spec", "temp:float64, count:int32,on:boolean,id:string,raw:string"}, in,
			with(in, func(r *connect.Record) {
				r.Value = map[string]any{"temp": 21.5, "count": int64(7), "on": true, "id": "42", "big": int64(300), "raw": "aGk="}
			}), ""},
		{"whole value", "org.apache.kafka.connect.transforms.Cast$Value", []string{"spec", "int64"}, rec("42"),
			rec(int64(42)), ""},
		{"whole key", "Cast$Key", []string{"spec", "string"}, with(rec(nil), func(r *connect.Record) { r.Key = int64(7) }),
			with(rec(nil), func(r *connect.Record) { r.Key = "7" }), ""},
		{"float32 rounds", "Cast", []string{"spec", "float32"}, rec(0.1), rec(float64(float32(0.1))), ""},
		{"with schema", "Cast", []string{"spec", "temp:float32,id:int32"}, sin,
			with(sin, func(r *connect.Record) {
				r.Value = map[string]any{"temp": float64(float32(21.5)), "count": 7.9, "id": int64(42)}
				r.ValueSchema = structSchema("frame", "temp", str(connect.Float32, false), "count", str(connect.Float64, true), "id", str(connect.Int32, false))
			}), ""},
		{"whole with schema", "Cast", []string{"spec", "boolean"}, withSchema(rec(int64(0)), str(connect.Int8, true)),
			withSchema(rec(false), str(connect.Boolean, true)), ""},
		{"tombstone", "Cast", []string{"spec", "a:int8"}, rec(nil), rec(nil), ""},
		{"not a number", "Cast", []string{"spec", "temp:int32"}, rec(map[string]any{"temp": "abc"}), nil, `field "temp": bad value "abc": cannot cast string to int32: not an integer`},
		{"out of range", "Cast", []string{"spec", "big:int8"}, in, nil, `field "big": bad value 300: cannot cast int64 to int8: out of range`},
		{"not a boolean", "Cast", []string{"spec", "temp:boolean"}, in, nil, `not a boolean`},
		{"not a map", "Cast", []string{"spec", "temp:int8"}, rec("x"), nil, `Cast needs a map (struct) value, not string`},
	})
}

func TestExtractField(t *testing.T) {
	s := structSchema("v", "id", str(connect.Int64, false), "loc", structSchema("loc", "lat", str(connect.Float64, true)))
	v := map[string]any{"id": int64(42), "loc": map[string]any{"lat": 1.5}}
	run(t, []tcase{
		{"schemaless", "ExtractField$Value", []string{"field", "id"}, rec(v), rec(int64(42)), ""},
		{"missing", "ExtractField$Value", []string{"field", "nope"}, rec(v), rec(nil), ""},
		{"key", "ExtractField$Key", []string{"field", "dev"}, with(rec(nil), func(r *connect.Record) { r.Key = map[string]any{"dev": "d1"} }),
			with(rec(nil), func(r *connect.Record) { r.Key = "d1" }), ""},
		{"schema", "ExtractField$Value", []string{"field", "id"}, withSchema(rec(v), s), withSchema(rec(int64(42)), str(connect.Int64, false)), ""},
		{"nested V2", "ExtractField$Value", []string{"field", "loc.lat", "field.syntax.version", "V2"}, withSchema(rec(v), s), withSchema(rec(1.5), str(connect.Float64, true)), ""},
		{"dotted name V1", "ExtractField$Value", []string{"field", "loc.lat"}, rec(map[string]any{"loc.lat": 2.5}), rec(2.5), ""},
		{"backticks V2", "ExtractField$Value", []string{"field", "`a.b`.c", "field.syntax.version", "v2"}, rec(map[string]any{"a.b": map[string]any{"c": "x"}}), rec("x"), ""},
		{"tombstone", "ExtractField$Value", []string{"field", "id"}, rec(nil), rec(nil), ""},
		{"not a map", "ExtractField$Value", []string{"field", "id"}, rec("plain"), nil, `field "id": bad value "plain": ExtractField needs a map (struct) value`},
		{"unknown in schema", "ExtractField$Value", []string{"field", "nope"}, withSchema(rec(v), s), nil, `field "nope"`},
	})
}

func TestFilter(t *testing.T) {
	run(t, []tcase{{"drops", "Filter", nil, rec("x"), nil, ""}})
}

func TestFlatten(t *testing.T) {
	// Kafka Connect's documented example.
	in := map[string]any{"content": map[string]any{"id": int64(42), "name": map[string]any{"first": "David", "middle": nil, "last": "Wong"}}, "tags": []any{"a"}}
	s := structSchema("doc",
		"content", structSchema("content", "id", str(connect.Int64, false), "name", &connect.Schema{Type: connect.Struct, Optional: true, Fields: []connect.Field{
			{Name: "first", Schema: str(connect.String, false)}, {Name: "last", Schema: str(connect.String, false)}}}),
		"tags", &connect.Schema{Type: connect.Array, Items: str(connect.String, false)})
	sv := map[string]any{"content": map[string]any{"id": int64(42), "name": nil}, "tags": []any{"a"}}
	run(t, []tcase{
		{"schemaless", "Flatten$Value", nil, rec(in), rec(map[string]any{
			"content.id": int64(42), "content.name.first": "David", "content.name.middle": nil, "content.name.last": "Wong", "tags": []any{"a"}}), ""},
		{"delimiter", "Flatten", []string{"delimiter", "_"}, rec(map[string]any{"a": map[string]any{"b": 1}}), rec(map[string]any{"a_b": 1}), ""},
		{"schema", "Flatten$Value", nil, withSchema(rec(sv), s), withSchema(rec(map[string]any{
			"content.id": int64(42), "content.name.first": nil, "content.name.last": nil, "tags": []any{"a"}}),
			structSchema("doc", "content.id", str(connect.Int64, false), "content.name.first", str(connect.String, true),
				"content.name.last", str(connect.String, true), "tags", &connect.Schema{Type: connect.Array, Items: str(connect.String, false)})), ""},
		{"tombstone", "Flatten$Value", nil, rec(nil), rec(nil), ""},
		{"not a map", "Flatten$Value", nil, rec(int64(1)), nil, "Flatten needs a map"},
	})
}

func TestHoistField(t *testing.T) {
	run(t, []tcase{
		{"schemaless", "HoistField$Value", []string{"field", "line"}, rec(int64(42)), rec(map[string]any{"line": int64(42)}), ""},
		{"schema", "HoistField$Value", []string{"field", "line"}, withSchema(rec("x"), str(connect.String, false)),
			withSchema(rec(map[string]any{"line": "x"}), structSchema("", "line", str(connect.String, false))), ""},
		{"key", "HoistField$Key", []string{"field", "k"}, rec(nil), with(rec(nil), func(r *connect.Record) { r.Key = map[string]any{"k": "dev-1"} }), ""},
	})
}

func TestInsertField(t *testing.T) {
	settings := []string{"topic.field", "topic", "partition.field", "part", "offset.field", "off!", "timestamp.field", "ts?",
		"static.field", "MessageSource", "static.value", "Kafka Connect framework"}
	s := structSchema("v", "a", str(connect.Int32, false))
	run(t, []tcase{
		{"schemaless", "InsertField$Value", settings, rec(map[string]any{"a": 1}), rec(map[string]any{
			"a": 1, "topic": "iot.raw", "part": int64(3), "off": int64(99), "ts": ts0, "MessageSource": "Kafka Connect framework"}), ""},
		{"schema", "InsertField$Value", settings, withSchema(rec(map[string]any{"a": 1}), s), withSchema(rec(map[string]any{
			"a": 1, "topic": "iot.raw", "part": int64(3), "off": int64(99), "ts": ts0, "MessageSource": "Kafka Connect framework"}),
			structSchema("v", "a", str(connect.Int32, false), "topic", str(connect.String, true), "part", str(connect.Int32, true),
				"off", str(connect.Int64, false), "ts", &connect.Schema{Type: connect.Int64, Optional: true, Name: timestampName, Version: 1},
				"MessageSource", str(connect.String, true))), ""},
		{"source record", "InsertField$Value", []string{"offset.field", "off", "topic.field", "t"},
			with(rec(map[string]any{}), func(r *connect.Record) { r.SourceOffset = map[string]any{"pos": 1} }),
			with(rec(map[string]any{"off": nil, "t": "iot.raw"}), func(r *connect.Record) { r.SourceOffset = map[string]any{"pos": 1} }), ""},
		{"tombstone", "InsertField$Value", settings, rec(nil), rec(nil), ""},
		{"not a map", "InsertField$Value", settings, rec("x"), nil, "InsertField needs a map"},
	})
}

func TestMaskField(t *testing.T) {
	in := map[string]any{"ssn": "123-45-6789", "age": int64(40), "score": 1.5, "ok": true, "tags": []any{"x"}, "at": ts0, "keep": "k"}
	run(t, []tcase{
		{"empty values", "MaskField$Value", []string{"fields", "ssn,age,score,ok,tags,at,absent"}, rec(in), rec(map[string]any{
			"ssn": "", "age": int64(0), "score": 0.0, "ok": false, "tags": []any{}, "at": time.UnixMilli(0).UTC(), "keep": "k"}), ""},
		{"replacement", "MaskField$Value", []string{"fields", "ssn", "replacement", "***-**-****"}, rec(in), rec(map[string]any{
			"ssn": "***-**-****", "age": int64(40), "score": 1.5, "ok": true, "tags": []any{"x"}, "at": ts0, "keep": "k"}), ""},
		{"numeric replacement", "MaskField$Value", []string{"fields", "age", "replacement", "-1"}, rec(map[string]any{"age": int64(40)}), rec(map[string]any{"age": int64(-1)}), ""},
		{"bad replacement", "MaskField$Value", []string{"fields", "age", "replacement", "none"}, rec(map[string]any{"age": int64(40)}), nil, `field "age": bad value 40: MaskField replacement "none" is not an integer`},
	})
}

func TestReplaceField(t *testing.T) {
	// Kafka Connect's documented example: exclude c, rename foo to c and bar to baz.
	in := map[string]any{"foo": int64(1), "bar": int64(2), "c": int64(3), "d": int64(4)}
	s := structSchema("v", "foo", str(connect.Int64, false), "bar", str(connect.Int64, false), "c", str(connect.Int64, false), "d", str(connect.Int64, false))
	run(t, []tcase{
		{"exclude and rename", "ReplaceField$Value", []string{"exclude", "c", "renames", "foo:c,bar:baz"}, rec(in),
			rec(map[string]any{"c": int64(1), "baz": int64(2), "d": int64(4)}), ""},
		{"include (whitelist)", "ReplaceField$Value", []string{"whitelist", "foo,d"}, rec(in), rec(map[string]any{"foo": int64(1), "d": int64(4)}), ""},
		{"schema", "ReplaceField$Value", []string{"blacklist", "c", "renames", "foo:c"}, withSchema(rec(in), s),
			withSchema(rec(map[string]any{"c": int64(1), "bar": int64(2), "d": int64(4)}),
				structSchema("v", "c", str(connect.Int64, false), "bar", str(connect.Int64, false), "d", str(connect.Int64, false))), ""},
	})
}

func TestSetSchemaMetadata(t *testing.T) {
	s := structSchema("old", "a", str(connect.Int32, false))
	ns := structSchema("com.example.Frame", "a", str(connect.Int32, false))
	ns.Version = 2
	run(t, []tcase{
		{"value", "SetSchemaMetadata$Value", []string{"schema.name", "com.example.Frame", "schema.version", "2"}, withSchema(rec(map[string]any{"a": 1}), s),
			withSchema(rec(map[string]any{"a": 1}), ns), ""},
		{"key", "SetSchemaMetadata$Key", []string{"schema.name", "K"}, with(rec(nil), func(r *connect.Record) { r.KeySchema = str(connect.String, false) }),
			with(rec(nil), func(r *connect.Record) { r.KeySchema = &connect.Schema{Type: connect.String, Name: "K"} }), ""},
		{"tombstone", "SetSchemaMetadata$Value", []string{"schema.name", "x"}, rec(nil), rec(nil), ""},
		{"schemaless", "SetSchemaMetadata$Value", []string{"schema.name", "x"}, rec("v"), nil, "SetSchemaMetadata needs a value with a schema"},
	})
}

func TestTimestampConverter(t *testing.T) {
	ms := ts0.UnixMilli()
	tsSchema := &connect.Schema{Type: connect.Int64, Name: timestampName, Version: 1}
	s := structSchema("v", "at", str(connect.Int64, false), "x", str(connect.String, true))
	run(t, []tcase{
		{"unix to Timestamp", "TimestampConverter$Value", []string{"field", "at", "target.type", "Timestamp"}, rec(map[string]any{"at": ms}), rec(map[string]any{"at": ts0}), ""},
		{"unix seconds to string", "TimestampConverter$Value", []string{"field", "at", "target.type", "string", "format", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "unix.precision", "seconds"},
			rec(map[string]any{"at": int64(1718035200)}), rec(map[string]any{"at": "2024-06-10T16:00:00.000Z"}), ""},
		{"string to unix", "TimestampConverter$Value", []string{"field", "at", "target.type", "unix", "format", "dd/MM/yyyy HH:mm:ss.SSS Z"},
			rec(map[string]any{"at": "10/06/2024 18:00:00.123 +0200"}), rec(map[string]any{"at": ms}), ""},
		{"fractional seconds", "TimestampConverter$Value", []string{"target.type", "Timestamp", "unix.precision", "seconds"}, rec(1718035200.123), rec(ts0), ""},
		{"Timestamp to Date", "TimestampConverter$Value", []string{"target.type", "Date"}, withSchema(rec(ts0), tsSchema),
			withSchema(rec(time.Date(2024, 6, 10, 0, 0, 0, 0, time.UTC)), &connect.Schema{Type: connect.Int32, Name: dateName, Version: 1}), ""},
		{"Timestamp to Time", "TimestampConverter$Value", []string{"target.type", "Time"}, rec(ts0), rec(time.Date(1970, 1, 1, 16, 0, 0, 123e6, time.UTC)), ""},
		{"field with schema", "TimestampConverter$Value", []string{"field", "at", "target.type", "Timestamp"}, withSchema(rec(map[string]any{"at": ms, "x": "y"}), s),
			withSchema(rec(map[string]any{"at": ts0, "x": "y"}), structSchema("v", "at", tsSchema, "x", str(connect.String, true))), ""},
		{"micro", "TimestampConverter$Value", []string{"target.type", "unix", "unix.precision", "microseconds"}, rec(ts0), rec(ts0.UnixMicro()), ""},
		{"bad string", "TimestampConverter$Value", []string{"field", "at", "target.type", "unix", "format", "yyyy-MM-dd"}, rec(map[string]any{"at": "June"}), nil, `field "at": bad value "June": does not match the format "yyyy-MM-dd"`},
		{"string without format", "TimestampConverter$Value", []string{"target.type", "unix"}, rec("2024"), nil, "requires format option"},
		{"bad type", "TimestampConverter$Value", []string{"target.type", "unix"}, rec(true), nil, "not bool"},
	})
}

func TestValueToKey(t *testing.T) {
	in := map[string]any{"userId": int64(7), "city": "Oslo", "state": nil, "x": 1}
	s := structSchema("v", "userId", str(connect.Int64, false), "city", str(connect.String, true), "x", str(connect.Int32, false))
	run(t, []tcase{
		{"schemaless", "ValueToKey", []string{"fields", "userId,city,state"}, rec(in),
			with(rec(in), func(r *connect.Record) { r.Key = map[string]any{"userId": int64(7), "city": "Oslo", "state": nil} }), ""},
		{"schema", "ValueToKey", []string{"fields", "userId,city"}, withSchema(rec(in), s),
			with(withSchema(rec(in), s), func(r *connect.Record) {
				r.Key = map[string]any{"userId": int64(7), "city": "Oslo"}
				r.KeySchema = structSchema("", "userId", str(connect.Int64, false), "city", str(connect.String, true))
			}), ""},
		{"tombstone", "ValueToKey", []string{"fields", "userId"}, rec(nil), rec(nil), ""},
		{"missing in schema", "ValueToKey", []string{"fields", "state"}, withSchema(rec(in), s), nil, `field "state"`},
	})
}

func TestHeaders(t *testing.T) {
	h := func(kv ...string) []connect.Header {
		var out []connect.Header
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, connect.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	withHeaders := func(r *connect.Record, hs []connect.Header) *connect.Record {
		return with(r, func(c *connect.Record) { c.Headers = hs })
	}
	in := withHeaders(rec(map[string]any{"id": int64(1), "ts": ts0, "name": "n"}), h("source", "s", "type", "t", "keep", "k", "source", "s2"))
	s := structSchema("v", "id", str(connect.Int64, false), "name", str(connect.String, false))
	sin := withSchema(rec(map[string]any{"id": int64(1), "name": "n"}), s)
	run(t, []tcase{
		{"drop", "DropHeaders", []string{"headers", "source,type"}, in, withHeaders(in, h("keep", "k")), ""},
		{"drop none", "DropHeaders", []string{"headers", "other"}, in, in, ""},
		{"insert", "InsertHeader", []string{"header", "origin", "value.literal", "kafka-connect"}, in,
			withHeaders(in, h("source", "s", "type", "t", "keep", "k", "source", "s2", "origin", "kafka-connect")), ""},
		{"copy", "HeaderFrom$Value", []string{"fields", "id,ts", "headers", "event_id,event_timestamp", "operation", "copy"}, in,
			withHeaders(in, h("source", "s", "type", "t", "keep", "k", "source", "s2", "event_id", "1", "event_timestamp", "2024-06-10T16:00:00.123Z")), ""},
		{"move with schema", "HeaderFrom$Value", []string{"fields", "id", "headers", "event_id", "operation", "move"}, sin,
			with(sin, func(r *connect.Record) {
				r.Value = map[string]any{"name": "n"}
				r.ValueSchema = structSchema("v", "name", str(connect.String, false))
				r.Headers = h("event_id", "1")
			}), ""},
	})
}

func TestRouters(t *testing.T) {
	run(t, []tcase{
		{"regex", "org.apache.kafka.connect.transforms.RegexRouter", []string{"regex", `([^.]+)\.([^.]+)\.([^.]+)`, "replacement", "$3"},
			with(rec(nil), func(r *connect.Record) { r.Topic = "dbserver1.inventory.customers" }),
			with(rec(nil), func(r *connect.Record) { r.Topic = "customers" }), ""},
		{"regex prefix", "RegexRouter", []string{"regex", `.*`, "replacement", `prefix-$0\$`}, rec(nil),
			with(rec(nil), func(r *connect.Record) { r.Topic = "prefix-iot.raw$" }), ""},
		{"regex $1x", "RegexRouter", []string{"regex", `iot\.(.*)`, "replacement", `$10-$1`}, rec(nil),
			with(rec(nil), func(r *connect.Record) { r.Topic = "raw0-raw" }), ""},
		{"regex named", "RegexRouter", []string{"regex", `iot\.(?P<kind>.*)`, "replacement", `sensors.${kind}`}, rec(nil),
			with(rec(nil), func(r *connect.Record) { r.Topic = "sensors.raw" }), ""},
		{"regex no full match", "RegexRouter", []string{"regex", `iot`, "replacement", "x"}, rec(nil), rec(nil), ""},
		{"regex first match", "RegexRouter", []string{"regex", `a|ab`, "replacement", "X"},
			with(rec(nil), func(r *connect.Record) { r.Topic = "ab" }), with(rec(nil), func(r *connect.Record) { r.Topic = "Xb" }), ""},
		{"timestamp", "TimestampRouter", []string{"topic.format", "foo-${topic}-${timestamp}", "timestamp.format", "yyyy.MM.dd"}, rec(nil),
			with(rec(nil), func(r *connect.Record) { r.Topic = "foo-iot.raw-2024.06.10" }), ""},
		{"timestamp defaults", "TimestampRouter", nil, rec(nil), with(rec(nil), func(r *connect.Record) { r.Topic = "iot.raw-20240610" }), ""},
	})
}

func TestPredicatesAndNegate(t *testing.T) {
	cfg := map[string]string{
		"transforms":                          "dropRaw,dropTombstones,keepHeader",
		"transforms.dropRaw.type":             "Filter",
		"transforms.dropRaw.predicate":        "isRaw",
		"transforms.dropTombstones.type":      "org.apache.kafka.connect.transforms.Filter",
		"transforms.dropTombstones.predicate": "tomb",
		"transforms.keepHeader.type":          "Filter",
		"transforms.keepHeader.predicate":     "hasTrace",
		"transforms.keepHeader.negate":        "true",
		"predicates":                          "isRaw,tomb,hasTrace",
		"predicates.isRaw.type":               "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
		"predicates.isRaw.pattern":            `iot\.raw`,
		"predicates.tomb.type":                "RecordIsTombstone",
		"predicates.hasTrace.type":            "HasHeaderKey",
		"predicates.hasTrace.name":            "trace",
	}
	c, err := NewChain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 3 {
		t.Errorf("Len = %d", c.Len())
	}
	traced := []connect.Header{{Key: "trace", Value: []byte("1")}}
	for _, tc := range []struct {
		r    *connect.Record
		kept bool
	}{
		{&connect.Record{Topic: "iot.raw", Value: "x", Headers: traced}, false},
		{&connect.Record{Topic: "iot.raw.x", Value: "x", Headers: traced}, true},
		{&connect.Record{Topic: "other", Value: nil, Headers: traced}, false},
		{&connect.Record{Topic: "other", Value: "x"}, false},
	} {
		got, err := c.Apply(tc.r)
		if err != nil || (got != nil) != tc.kept {
			t.Errorf("Apply(%+v) = %v, %v; kept want %v", tc.r, got, err, tc.kept)
		}
	}
	var nilChain *Chain
	r := rec("x")
	if got, err := nilChain.Apply(r); got != r || err != nil || nilChain.Len() != 0 {
		t.Error("nil chain")
	}
	empty, err := NewChain(map[string]string{})
	if err != nil || empty.Len() != 0 {
		t.Errorf("empty chain: %v", err)
	}
	if got, _ := empty.Apply(r); got != r {
		t.Error("empty chain changed the record")
	}
}

func TestChainOrder(t *testing.T) {
	c, err := NewChain(map[string]string{
		"transforms":                    "hoist, insert ,route",
		"transforms.hoist.type":         "HoistField$Value",
		"transforms.hoist.field":        "reading",
		"transforms.insert.type":        "InsertField",
		"transforms.insert.topic.field": "src",
		"transforms.route.type":         "RegexRouter",
		"transforms.route.regex":        `iot\.(.*)`,
		"transforms.route.replacement":  "sensors-$1",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Apply(rec(21.5))
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != "sensors-raw" || !reflect.DeepEqual(got.Value, map[string]any{"reading": 21.5, "src": "iot.raw"}) {
		t.Errorf("got %+v", got)
	}
}

func TestChainErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]string
		want map[string]string // key -> part of the message
	}{
		{"unknown transform", map[string]string{"transforms": "a", "transforms.a.type": "Foo"},
			map[string]string{"transforms.a.type": `unknown transform "Foo"`}},
		{"no variant", map[string]string{"transforms": "a", "transforms.a.type": "RegexRouter$Value"},
			map[string]string{"transforms.a.type": `unknown transform "RegexRouter$Value"`}},
		{"missing type", map[string]string{"transforms": "a"},
			map[string]string{"transforms.a.type": `Missing required configuration "transforms.a.type" which has no default value.`}},
		{"missing settings", map[string]string{"transforms": "a,b,c,d", "transforms.a.type": "ExtractField$Key", "transforms.b.type": "RegexRouter",
			"transforms.c.type": "HeaderFrom$Value", "transforms.c.fields": "a,b", "transforms.c.headers": "x", "transforms.d.type": "TimestampConverter$Value"},
			map[string]string{
				"transforms.a.field":       `Missing required configuration "transforms.a.field"`,
				"transforms.b.regex":       "Missing required",
				"transforms.b.replacement": "Missing required",
				"transforms.c.headers":     "same number of elements",
				"transforms.c.operation":   "Missing required",
				"transforms.d.target.type": "Missing required",
			}},
		{"bad values", map[string]string{"transforms": "a,b,c,d,e", "transforms.a.type": "Cast", "transforms.a.spec": "x:uuid",
			"transforms.b.type": "RegexRouter", "transforms.b.regex": "(?<=x)y", "transforms.b.replacement": "$2",
			"transforms.c.type": "TimestampConverter", "transforms.c.target.type": "string", "transforms.c.format": "yyyy-ww",
			"transforms.d.type": "ReplaceField$Key", "transforms.d.renames": "a",
			"transforms.e.type": "SetSchemaMetadata$Value"},
			map[string]string{
				"transforms.a.spec":        `unknown type "uuid"`,
				"transforms.b.regex":       "Invalid regex",
				"transforms.c.format":      `the letter 'w' is not supported`,
				"transforms.d.renames":     "Invalid rename mapping: a",
				"transforms.e.schema.name": "Neither schema name nor version configured",
			}},
		{"bad group", map[string]string{"transforms": "a", "transforms.a.type": "RegexRouter", "transforms.a.regex": "(x)", "transforms.a.replacement": "$2"},
			map[string]string{"transforms.a.replacement": "no group 2"}},
		{"unknown predicate reference", map[string]string{"transforms": "a", "transforms.a.type": "Filter", "transforms.a.predicate": "p"},
			map[string]string{"transforms.a.predicate": `predicate "p" is not declared in predicates`}},
		{"unknown predicate type", map[string]string{"predicates": "p", "predicates.p.type": "IsFriday", "transforms": "a", "transforms.a.type": "Filter", "transforms.a.predicate": "p"},
			map[string]string{"predicates.p.type": `unknown predicate "IsFriday"`}},
		{"predicate settings", map[string]string{"predicates": "p,q,r", "predicates.p.type": "TopicNameMatches", "predicates.q.type": "HasHeaderKey",
			"predicates.r.type": "TopicNameMatches", "predicates.r.pattern": "(("},
			map[string]string{"predicates.p.pattern": "Missing required", "predicates.q.name": "Missing required", "predicates.r.pattern": "Invalid regex"}},
		{"negate", map[string]string{"transforms": "a,b", "transforms.a.type": "Filter", "transforms.a.negate": "maybe",
			"transforms.b.type": "Filter", "transforms.b.negate": "true"},
			map[string]string{"transforms.a.negate": "Expected value to be either true or false", "transforms.b.negate": "negate needs a predicate"}},
		{"duplicate alias", map[string]string{"transforms": "a,a", "transforms.a.type": "Filter"},
			map[string]string{"transforms": `alias "a" is listed twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChain(tc.cfg)
			if c != nil || err == nil {
				t.Fatalf("NewChain = %v, %v", c, err)
			}
			byKey, other := connect.FieldErrors(err)
			if len(other) > 0 {
				t.Errorf("errors that are not FieldErrors: %v", other)
			}
			for key, want := range tc.want {
				if len(byKey[key]) != 1 || !strings.Contains(byKey[key][0], want) {
					t.Errorf("%s: %q, want %q", key, byKey[key], want)
				}
			}
			if len(byKey) != len(tc.want) {
				t.Errorf("errors on %v, want %d keys", byKey, len(tc.want))
			}
		})
	}
}

func TestNames(t *testing.T) {
	names := TransformNames()
	if len(names) != 26 {
		t.Errorf("%d transform names: %v", len(names), names)
	}
	for _, n := range names {
		if _, canonical, _, ok := lookupTransform(n); !ok || canonical != n {
			t.Errorf("lookup(%q) = %q, %v", n, canonical, ok)
		}
	}
	for alias, want := range map[string]string{
		"InsertField":        "org.apache.kafka.connect.transforms.InsertField$Value",
		"insertfield$key":    "org.apache.kafka.connect.transforms.InsertField$Key",
		"Filter":             "org.apache.kafka.connect.transforms.Filter",
		"ValueToKey":         "org.apache.kafka.connect.transforms.ValueToKey",
		"TimestampConverter": "org.apache.kafka.connect.transforms.TimestampConverter$Value",
	} {
		if _, canonical, _, ok := lookupTransform(alias); !ok || canonical != want {
			t.Errorf("lookup(%q) = %q, want %q", alias, canonical, want)
		}
	}
	if got := PredicateNames(); len(got) != 3 || got[0] != "org.apache.kafka.connect.transforms.predicates.HasHeaderKey" {
		t.Errorf("PredicateNames = %v", got)
	}
}

func TestGoLayout(t *testing.T) {
	for pattern, want := range map[string]string{
		"yyyy-MM-dd'T'HH:mm:ss.SSSXXX":   "2006-01-02T15:04:05.000Z07:00",
		"yyyyMMdd":                       "20060102",
		"dd MMM yy h:m:s a Z":            "02 Jan 06 3:4:5 PM -0700",
		"EEEE, d MMMM yyyy 'at' HH:mm z": "Monday, 2 January 2006 at 15:04 MST",
		"yyyy-MM-dd'T'HH:mm:ss''X":       "2006-01-02T15:04:05'Z07",
	} {
		got, err := goLayout(pattern)
		if err != nil || got != want {
			t.Errorf("goLayout(%q) = %q, %v; want %q", pattern, got, err, want)
		}
	}
	for _, bad := range []string{"yyyy'", "YYYY", "ss SSS", "'Monday'", "yyyy'1'", "HHH", "yyyy_MM"} {
		if got, err := goLayout(bad); err == nil {
			t.Errorf("goLayout(%q) = %q, want an error", bad, got)
		}
	}
}

func TestFieldPath(t *testing.T) {
	for in, want := range map[string][]string{
		"a":         {"a"},
		"a.b.c":     {"a", "b", "c"},
		"`a.b`.c":   {"a.b", "c"},
		"a.`b.c`":   {"a", "b.c"},
		"`a\\`b`.c": {"a`b", "c"},
		"`a`b`.c":   {"a`b", "c"},
	} {
		got, err := fieldPath(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("fieldPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a..b", "`a.b", ".a"} {
		if got, err := fieldPath(bad); err == nil {
			t.Errorf("fieldPath(%q) = %q, want an error", bad, got)
		}
	}
}

// A transform that changes a schema'd record returns the same schema for the same input
// schema, so downstream caches (the JSON converter's) see one schema per topic.
func TestSchemaCached(t *testing.T) {
	c := one(t, "ReplaceField$Value", "exclude", "b")
	s := structSchema("v", "a", str(connect.Int32, false), "b", str(connect.Int32, false))
	r1, _ := c.Apply(withSchema(rec(map[string]any{"a": 1, "b": 2}), s))
	r2, _ := c.Apply(withSchema(rec(map[string]any{"a": 3, "b": 4}), s))
	if r1.ValueSchema != r2.ValueSchema || len(s.Fields) != 2 {
		t.Error("schema not cached, or input schema changed")
	}
}

func TestConcurrentApply(t *testing.T) {
	c := one(t, "Cast$Value", "spec", "a:string")
	s := structSchema("v", "a", str(connect.Int32, false))
	done := make(chan bool)
	for range 4 {
		go func() {
			for i := range 200 {
				in := withSchema(rec(map[string]any{"a": int64(i)}), s)
				if _, err := c.Apply(in); err != nil {
					t.Error(err)
				}
				if in.Value.(map[string]any)["a"] != int64(i) {
					t.Error("input changed")
				}
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
}

// Every transform, on every kind of odd input, returns a record or an error: never a panic.
func TestNoPanics(t *testing.T) {
	configs := [][]string{
		{"Cast$Value", "spec", "a:int8,b:string,c:boolean,d:float32"}, {"Cast$Key", "spec", "int16"}, {"Cast$Value", "spec", "string"},
		{"DropHeaders", "headers", "a"}, {"ExtractField$Value", "field", "a"}, {"ExtractField$Key", "field", "a.b", "field.syntax.version", "V2"},
		{"ExtractField$Value", "field", "a.b", "field.syntax.version", "V2"},
		{"Filter"}, {"Flatten$Value"}, {"Flatten$Key", "delimiter", "_"}, {"HeaderFrom$Value", "fields", "a,b", "headers", "x,y", "operation", "move"},
		{"HoistField$Value", "field", "h"}, {"InsertField$Value", "topic.field", "t!", "timestamp.field", "ts", "offset.field", "o!"},
		{"InsertHeader", "header", "h", "value.literal", "v"}, {"MaskField$Value", "fields", "a,b,c,d", "replacement", "1"}, {"MaskField$Value", "fields", "a,b,c,d"},
		{"RegexRouter", "regex", "(.*)", "replacement", "$1-x"}, {"ReplaceField$Value", "exclude", "a", "renames", "b:z"},
		{"SetSchemaMetadata$Value", "schema.name", "n"}, {"SetSchemaMetadata$Key", "schema.version", "3"},
		{"TimestampConverter$Value", "field", "a", "target.type", "string", "format", "yyyy-MM-dd"},
		{"TimestampConverter$Value", "target.type", "Date", "format", "yyyy"}, {"TimestampConverter$Key", "target.type", "unix", "unix.precision", "nanoseconds"},
		{"TimestampRouter"}, {"ValueToKey", "fields", "a,b"},
	}
	values := []any{nil, "x", int64(1), 2.5, true, []byte("b"), []any{1}, ts0, map[string]any{},
		map[string]any{"a": map[string]any{"b": "c"}, "b": []any{nil}, "c": "yes", "d": 1e300},
		map[string]any{"a": "2024-01-02", "b": int64(-1 << 62), "c": nil, "d": map[any]any{1: 2}},
		map[string]any{"a": int64(1 << 62), "b": ts0, "c": []byte{1}, "d": "x"}}
	schemas := []*connect.Schema{nil, str(connect.String, true), str(connect.Int64, false),
		{Type: connect.Int64, Name: timestampName}, structSchema("s", "a", str(connect.Int8, false)),
		structSchema("s", "a", structSchema("t", "b", str(connect.String, true)), "b", &connect.Schema{Type: connect.Array}),
		structSchema("s", "a", &connect.Schema{Type: connect.Struct}, "b", (*connect.Schema)(nil), "c", str(connect.Boolean, true), "d", str(connect.Float32, true))}
	for _, cfg := range configs {
		c := one(t, cfg[0], cfg[1:]...)
		for _, v := range values {
			for _, s := range schemas {
				for _, key := range []bool{false, true} {
					r := &connect.Record{Topic: "t", Value: v, ValueSchema: s}
					if key {
						r = &connect.Record{Topic: "t", Key: v, KeySchema: s, Value: v}
					}
					func() {
						defer func() {
							if p := recover(); p != nil {
								t.Errorf("%v on %#v with schema %s: panic %v", cfg, v, dump(s), p)
							}
						}()
						_, _ = c.Apply(r) // only a panic is a failure here
					}()
				}
			}
		}
	}
}
