package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

func mustNew(t testing.TB, class string, settings map[string]string) Converter {
	t.Helper()
	c, err := New(class, settings, false)
	if err != nil {
		t.Fatalf("New(%q): %v", class, err)
	}
	return c
}

func TestNewAliases(t *testing.T) {
	for class, want := range map[string]any{
		"json": &jsonConverter{}, "JSON": &jsonConverter{}, "JsonConverter": &jsonConverter{}, JSONClass: &jsonConverter{},
		"string": stringConverter{}, "StringConverter": stringConverter{}, StringClass: stringConverter{},
		"bytearray": byteArrayConverter{}, "ByteArrayConverter": byteArrayConverter{}, ByteArrayClass: byteArrayConverter{}, "byte-array": byteArrayConverter{},
	} {
		c, err := New(class, nil, false)
		if err != nil {
			t.Errorf("New(%q): %v", class, err)
			continue
		}
		if reflect.TypeOf(c) != reflect.TypeOf(want) {
			t.Errorf("New(%q) = %T, want %T", class, c, want)
		}
	}
	if _, err := New("io.confluent.connect.avro.AvroConverter", nil, false); err == nil || !strings.Contains(err.Error(), `unknown converter "io.confluent.connect.avro.AvroConverter"`) {
		t.Errorf("unknown class: %v", err)
	}
	if len(Names()) != 3 {
		t.Errorf("Names() = %v", Names())
	}
}

func TestNewBadSettings(t *testing.T) {
	for _, tc := range []struct {
		class    string
		settings map[string]string
		key      string
	}{
		{"json", map[string]string{"schemas.enable": "yes"}, "schemas.enable"},
		{"json", map[string]string{"schemas.cache.size": "-1"}, "schemas.cache.size"},
		{"json", map[string]string{"decimal.format": "HEX"}, "decimal.format"},
		{"json", map[string]string{"replace.null.with.default": "1"}, "replace.null.with.default"},
		{"string", map[string]string{"converter.encoding": "ISO-8859-1"}, "converter.encoding"},
	} {
		c, err := New(tc.class, tc.settings, true)
		if c != nil {
			t.Errorf("New(%s, %v) returned a converter with an error", tc.class, tc.settings)
		}
		byKey, other := connect.FieldErrors(err)
		if len(byKey[tc.key]) != 1 || len(other) != 0 {
			t.Errorf("New(%s, %v) = %v, want a FieldError on %s", tc.class, tc.settings, err, tc.key)
		}
	}
	if _, err := New("string", map[string]string{"converter.encoding": "utf-8", "encoding": "UTF8"}, false); err != nil {
		t.Errorf("UTF-8: %v", err)
	}
	if _, err := New("json", map[string]string{"schemas.enable": " False ", "converter.type": "value", "decimal.format": "numeric"}, false); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}

func TestJSONSchemalessValues(t *testing.T) {
	c := mustNew(t, "json", map[string]string{"schemas.enable": "false"})
	for in, want := range map[string]any{
		`1`:                     int64(1),
		`-0`:                    int64(0),
		`-9223372036854775808`:  int64(math.MinInt64),
		`9223372036854775807`:   int64(math.MaxInt64),
		`9223372036854775808`:   float64(9223372036854775808),
		`1.0`:                   1.0,
		`1e3`:                   1000.0,
		`"a\u00e9\ud83d\ude00"`: "aé😀",
		`"\ud800"`:              "\ufffd",
		"\"\xff\"":              "\ufffd",
		` {"a":[1,2.5,true,null,"x",{}], "b":{"c":[]}} `: map[string]any{
			"a": []any{int64(1), 2.5, true, nil, "x", map[string]any{}},
			"b": map[string]any{"c": []any{}},
		},
		`{"a":1,"a":2}`: map[string]any{"a": int64(2)},
	} {
		got, schema, err := c.FromKafka("t", []byte(in))
		if err != nil || schema != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("FromKafka(%s) = %#v, %v, %v; want %#v", in, got, schema, err, want)
		}
	}
	for _, data := range [][]byte{nil, {}} {
		if v, s, err := c.FromKafka("t", data); v != nil || s != nil || err != nil {
			t.Errorf("FromKafka(%q) = %v, %v, %v; want a tombstone", data, v, s, err)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	c := mustNew(t, "json", map[string]string{"schemas.enable": "false"})
	for in, want := range map[string]string{
		`{"a":}`:    `converting value of topic "iot.raw" from JSON: invalid character '}' looking for beginning of value (at byte 5)`,
		`{"a":1`:    "unexpected end of JSON input",
		`[1,]`:      "invalid character ']' looking for beginning of value",
		`01`:        "invalid character '1' after top-level value",
		`nul`:       "unexpected end of JSON input",
		`1e999`:     "number 1e999 is out of range",
		"\"a\x01\"": `invalid character '\x01' in string literal`,
		`"\x"`:      `invalid character 'x' in string escape code`,
	} {
		_, _, err := c.FromKafka("iot.raw", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `topic "iot.raw"`) {
			t.Errorf("FromKafka(%s) error = %v, want it to contain %q", in, err, want)
		}
		var std any
		if json.Unmarshal([]byte(in), &std) == nil {
			t.Errorf("encoding/json accepts %s", in)
		}
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if _, _, err := c.FromKafka("t", []byte(deep)); err == nil || !strings.Contains(err.Error(), "max depth") {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestJSONSchemalessToKafka(t *testing.T) {
	plain := mustNew(t, "json", map[string]string{"schemas.enable": "false"})
	enveloped := mustNew(t, "json", nil)
	v := map[string]any{"b": []byte("hi"), "a": 1.0, "c": []any{int64(1), 2.5e-7, "x\n<"}, "d": nil, "e": map[string]int{"z": 1}}
	want := `{"a":1.0,"b":"aGk=","c":[1,2.5e-7,"x\n<"],"d":null,"e":{"z":1}}`
	got, err := plain.ToKafka("t", v, nil)
	if err != nil || string(got) != want {
		t.Errorf("ToKafka = %s, %v; want %s", got, err, want)
	}
	got, err = enveloped.ToKafka("t", v, nil)
	if err != nil || string(got) != `{"schema":null,"payload":`+want+`}` {
		t.Errorf("ToKafka with envelope = %s, %v", got, err)
	}
	back, schema, err := enveloped.FromKafka("t", got)
	if err != nil || schema != nil || back.(map[string]any)["a"] != 1.0 {
		t.Errorf("FromKafka(%s) = %v, %v, %v", got, back, schema, err)
	}
	if got, err := plain.ToKafka("t", nil, nil); got != nil || err != nil {
		t.Errorf("ToKafka(nil) = %q, %v", got, err)
	}
	if _, err := plain.ToKafka("t", math.NaN(), nil); err == nil {
		t.Error("NaN written")
	}
	ts := time.Date(2024, 6, 10, 12, 0, 0, 5e6, time.UTC)
	if got, err := plain.ToKafka("t", ts, nil); err != nil || string(got) != `"2024-06-10T12:00:00.005Z"` {
		t.Errorf("time: %s, %v", got, err)
	}
}

// connectStruct is what Kafka Connect's JsonConverter writes for a struct.
const connectStruct = `{"schema":{"type":"struct","fields":[` +
	`{"type":"int32","optional":false,"field":"id"},` +
	`{"type":"string","optional":true,"field":"name"},` +
	`{"type":"array","items":{"type":"double","optional":false},"optional":true,"field":"readings"},` +
	`{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"int64","optional":false},"optional":true,"field":"counts"},` +
	`{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":false},"optional":true,"field":"codes"},` +
	`{"type":"bytes","optional":true,"field":"raw"},` +
	`{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"ts"},` +
	`{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"day"},` +
	`{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"tod"},` +
	`{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"connect.decimal.precision":"10","scale":"2"},"field":"price"},` +
	`{"type":"boolean","optional":true,"default":true,"field":"on"},` +
	`{"type":"float","optional":true,"doc":"in C","field":"temp"}` +
	`],"optional":false,"name":"iot.Frame","version":3},` +
	`"payload":{"id":42,"name":"s-1","readings":[1.5,2.0],"counts":{"a":1},"codes":[[1,"x"],[2,"y"]],"raw":"AAE=",` +
	`"ts":1718035200123,"day":19884,"tod":3600001,"price":"/zc=","on":false,"temp":21.3}}`

func TestJSONEnvelopeRoundTrip(t *testing.T) {
	c := mustNew(t, JSONClass, nil)
	v, s, err := c.FromKafka("t", []byte(connectStruct))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": int64(42), "name": "s-1", "readings": []any{1.5, 2.0}, "counts": map[string]any{"a": int64(1)},
		"codes": map[any]any{int64(1): "x", int64(2): "y"}, "raw": []byte{0, 1},
		"ts":    time.Date(2024, 6, 10, 16, 0, 0, 123e6, time.UTC),
		"day":   time.Date(2024, 6, 10, 0, 0, 0, 0, time.UTC),
		"tod":   time.Date(1970, 1, 1, 1, 0, 0, 1e6, time.UTC),
		"price": "-2.01", "on": false, "temp": float64(float32(21.3)),
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("FromKafka =\n%#v\nwant\n%#v", v, want)
	}
	if s.Name != "iot.Frame" || s.Version != 3 || len(s.Fields) != 12 || s.Field("temp").Schema.Doc != "in C" {
		t.Errorf("schema = %+v", s)
	}
	out, err := c.ToKafka("t", v, s)
	if err != nil || string(out) != connectStruct {
		t.Errorf("ToKafka =\n%s, %v\nwant\n%s", out, err, connectStruct)
	}
	// the schema comes from the cache the second time
	_, s2, _ := c.FromKafka("t", []byte(connectStruct))
	if s2 != s {
		t.Error("schema not cached")
	}
}

func TestJSONEnvelopeValues(t *testing.T) {
	c := mustNew(t, "json", nil)
	env := func(schema, payload string) []byte {
		return []byte(`{"schema":` + schema + `,"payload":` + payload + `}`)
	}
	for _, tc := range []struct {
		schema, payload string
		want            any
		err             string
	}{
		{`{"type":"int8"}`, `127`, int64(127), ""},
		{`{"type":"int8"}`, `128`, nil, `bad value 128: out of range for int8`},
		{`{"type":"int16"}`, `-32769`, nil, `out of range for int16`},
		{`{"type":"int32"}`, `3.0`, int64(3), ""},
		{`{"type":"int32"}`, `3.5`, nil, `not an integer`},
		{`{"type":"int64"}`, `"1"`, nil, `bad value "1": not an integer`},
		{`{"type":"double"}`, `1`, 1.0, ""},
		{`{"type":"float"}`, `1e300`, nil, `out of range for float`},
		{`{"type":"string"}`, `1`, nil, `not a string`},
		{`{"type":"boolean"}`, `"true"`, nil, `not a boolean`},
		{`{"type":"bytes"}`, `"!!"`, nil, `not base64`},
		{`{"type":"bytes","optional":true}`, `null`, nil, ""},
		{`{"type":"string"}`, `null`, nil, `null for a required string`},
		{`{"type":"string","default":"d"}`, `null`, "d", ""},
		{`{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{"a":1,"x":2}`, map[string]any{"a": int64(1)}, ""},
		{`{"type":"struct","fields":[{"field":"a","type":"int32"}]}`, `{}`, nil, `field "a": bad value <nil>: null for a required int32`},
		{`{"type":"struct","fields":[{"field":"a","type":"struct","fields":[{"field":"b","type":"int8"}]}]}`, `{"a":{"b":300}}`, nil, `field "a.b": bad value 300`},
		{`{"type":"struct","fields":[{"field":"a","type":"int32","optional":true}]}`, `{}`, map[string]any{"a": nil}, ""},
		{`{"type":"struct","fields":[{"field":"a","type":"int32","default":7}]}`, `{"a":null}`, map[string]any{"a": int64(7)}, ""},
		{`{"type":"struct"}`, `{}`, nil, `"fields" is not an array`},
		{`{"type":"struct","fields":[{"type":"int8"}]}`, `{}`, nil, `name is not specified`},
		{`{"type":"struct","fields":[{"field":"a","type":"int8"},{"field":"a","type":"int8"}]}`, `{}`, nil, `appears twice`},
		{`{"type":"uuid"}`, `1`, nil, `unknown type "uuid"`},
		{`{"optional":true}`, `1`, nil, `must contain a 'type' field`},
		{`{"type":"array"}`, `[]`, nil, `did not specify the items type`},
		{`{"type":"map","keys":{"type":"string"}}`, `{}`, nil, `did not specify the value type`},
		{`{"type":"map","keys":{"type":"string"},"values":{"type":"int8"}}`, `[]`, nil, `must be a JSON object`},
		{`{"type":"map","keys":{"type":"int8"},"values":{"type":"int8"}}`, `[[1]]`, nil, `not a [key, value] pair`},
		{`{"type":"string","parameters":{"a":1}}`, `"x"`, nil, `string values`},
		{`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal"}`, `"AA=="`, nil, `no "scale" parameter`},
		{`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"3"}}`, `12.5`, "12.500", ""},
		{`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}}`, `"gA=="`, "-128", ""},
		{`{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"4"}}`, `"AQ=="`, "0.0001", ""},
		{`{"type":"int64","name":"org.apache.kafka.connect.data.Timestamp"}`, `-1`, time.UnixMilli(-1).UTC(), ""},
		{`{"type":"string","name":"org.apache.kafka.connect.data.Timestamp"}`, `"x"`, "x", ""}, // not the logical type's base type
	} {
		v, _, err := c.FromKafka("t", env(tc.schema, tc.payload))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: error %v, want %q", tc.schema, tc.payload, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(v, tc.want) {
			t.Errorf("%s %s = %#v, %v; want %#v", tc.schema, tc.payload, v, err, tc.want)
		}
	}
	for _, in := range []string{`{"a":1}`, `[1]`, `{"schema":null}`, `{"payload":1}`, `{"schema":null,"payload":1,"x":2}`, `{}`} {
		_, _, err := c.FromKafka("t", []byte(in))
		if err == nil || !strings.Contains(err.Error(), `JsonConverter with schemas.enable requires "schema" and "payload" fields`) {
			t.Errorf("FromKafka(%s) = %v, want the envelope error", in, err)
		}
	}
	if _, _, err := c.FromKafka("t", []byte(`{"schema":null,"payload":`)); err == nil || !strings.Contains(err.Error(), "unexpected end") {
		t.Errorf("truncated envelope: %v", err)
	}
}

func TestJSONToKafkaWithSchema(t *testing.T) {
	c := mustNew(t, "json", map[string]string{"schemas.enable": "false"})
	i32 := &connect.Schema{Type: connect.Int32}
	dec := &connect.Schema{Type: connect.Bytes, Name: DecimalName, Parameters: map[string]string{"scale": "2"}}
	st := &connect.Schema{Type: connect.Struct, Fields: []connect.Field{
		{Name: "b", Schema: &connect.Schema{Type: connect.String, Optional: true}},
		{Name: "a", Schema: &connect.Schema{Type: connect.Int64, Default: int64(5)}},
	}}
	for _, tc := range []struct {
		s    *connect.Schema
		v    any
		want string
		err  string
	}{
		{i32, 7, `7`, ""},
		{i32, uint8(7), `7`, ""},
		{i32, 7.0, `7`, ""},
		{i32, int64(1) << 40, "", "out of range for int32"},
		{i32, "7", "", "string is not an integer"},
		{&connect.Schema{Type: connect.Float32}, 0.1, `0.1`, ""},
		{&connect.Schema{Type: connect.Float64}, 2, `2.0`, ""},
		{&connect.Schema{Type: connect.Bytes}, []byte{0xff}, `"/w=="`, ""},
		{&connect.Schema{Type: connect.Array, Items: i32}, []int{1, 2}, `[1,2]`, ""},
		{&connect.Schema{Type: connect.Map, Keys: &connect.Schema{Type: connect.String}, Values: i32}, map[string]int{"x": 1}, `{"x":1}`, ""},
		{&connect.Schema{Type: connect.Map, Keys: i32, Values: i32}, map[int]int{2: 1, 1: 3}, `[[1,3],[2,1]]`, ""},
		{st, map[string]any{"b": "x", "extra": 1}, `{"b":"x","a":5}`, ""},
		{st, map[string]any{"a": "x"}, "", `field "a": bad value "x": string is not an integer`},
		{st, "x", "", "must be a map"},
		{dec, "12.3", `"BM4="`, ""},
		{dec, -2.01, `"/zc="`, ""},
		{dec, 3, `"ASw="`, ""},
		{dec, "1.234", "", "more than 2 digits"},
		{dec, "1e99999", "", "not a decimal"},
		{dec, "1/3", "", "not a decimal"},
		{&connect.Schema{Type: connect.Int64, Name: TimestampName}, time.UnixMilli(1718035200123), `1718035200123`, ""},
		{&connect.Schema{Type: connect.Int32, Name: DateName}, time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), `-1`, ""},
		{&connect.Schema{Type: connect.Int32, Name: TimeName}, time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC), `1000`, ""},
		{&connect.Schema{Type: connect.Int32}, time.Now(), "", "needs a Timestamp, Date or Time schema"},
	} {
		got, err := c.ToKafka("t", tc.v, tc.s)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ToKafka(%#v, %s) error %v, want %q", tc.v, tc.s.Type, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ToKafka(%#v, %s) = %s, %v; want %s", tc.v, tc.s.Type, got, err, tc.want)
		}
	}
	numeric := mustNew(t, "json", map[string]string{"decimal.format": "NUMERIC"})
	got, err := numeric.ToKafka("t", "-0.5", dec)
	if want := `{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},"payload":-0.50}`; err != nil || string(got) != want {
		t.Errorf("NUMERIC = %s, %v; want %s", got, err, want)
	}
	if v, _, err := numeric.FromKafka("t", got); err != nil || v != "-0.50" {
		t.Errorf("NUMERIC back = %v, %v", v, err)
	}
	var de *connect.DataError
	if _, err := c.ToKafka("t", "x", i32); !errors.As(err, &de) {
		t.Errorf("error %v is not a DataError", err)
	}
}

func TestDecimalBytes(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "127", "128", "-128", "-129", "255", "256", "-32768", "123456789012345678901234567890", "-98765432109876543210"} {
		u, err := parseDecimal(s, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		b := unscaledToBytes(u)
		if back := unscaledFromBytes(b); back.Cmp(u) != 0 {
			t.Errorf("%s: bytes %x read back as %s", s, b, back)
		}
		if len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
			t.Errorf("%s: bytes %x not minimal", s, b)
		}
	}
	if got := formatDecimal(bigInt(5), -2); got != "500" {
		t.Errorf("negative scale: %s", got)
	}
	if got := formatDecimal(bigInt(-5), 3); got != "-0.005" {
		t.Errorf("small: %s", got)
	}
}

func TestStringConverter(t *testing.T) {
	c := mustNew(t, "StringConverter", nil)
	v, s, err := c.FromKafka("t", []byte("héllo\xff"))
	if err != nil || v != "héllo\ufffd" || s.Type != connect.String || !s.Optional {
		t.Errorf("FromKafka = %q, %v, %v", v, s, err)
	}
	if v, s, err := c.FromKafka("t", nil); v != nil || s != nil || err != nil {
		t.Errorf("FromKafka(nil) = %v, %v, %v", v, s, err)
	}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"abc", "abc"}, {[]byte("raw"), "raw"}, {int64(42), "42"}, {1.0, "1.0"}, {true, "true"},
		{map[string]any{"a": 1}, `{"a":1}`}, {[]any{"x"}, `["x"]`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
	} {
		got, err := c.ToKafka("t", tc.v, nil)
		if err != nil || string(got) != tc.want {
			t.Errorf("ToKafka(%#v) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
	if got, err := c.ToKafka("t", nil, nil); got != nil || err != nil {
		t.Errorf("ToKafka(nil) = %q, %v", got, err)
	}
}

func TestByteArrayConverter(t *testing.T) {
	c := mustNew(t, "org.apache.kafka.connect.converters.ByteArrayConverter", nil)
	data := []byte{1, 2, 3}
	v, s, err := c.FromKafka("t", data)
	if err != nil || !bytes.Equal(v.([]byte), data) || s.Type != connect.Bytes {
		t.Errorf("FromKafka = %v, %v, %v", v, s, err)
	}
	if got, err := c.ToKafka("t", data, nil); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ToKafka([]byte) = %v, %v", got, err)
	}
	if got, err := c.ToKafka("t", "ab", nil); err != nil || string(got) != "ab" {
		t.Errorf("ToKafka(string) = %v, %v", got, err)
	}
	if got, err := c.ToKafka("t", nil, nil); err != nil || got != nil {
		t.Errorf("ToKafka(nil) = %v, %v", got, err)
	}
	if _, err := c.ToKafka("t", int64(1), nil); err == nil || !strings.Contains(err.Error(), "ByteArrayConverter is not compatible with objects of type int64") {
		t.Errorf("ToKafka(int64) = %v", err)
	}
	if _, err := c.ToKafka("t", data, &connect.Schema{Type: connect.Struct}); err == nil || !strings.Contains(err.Error(), "invalid schema type") {
		t.Errorf("struct schema: %v", err)
	}
}

// stdDecode decodes with encoding/json and turns numbers into what this package returns.
func stdDecode(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	var conv func(any) (any, error)
	conv = func(v any) (any, error) {
		switch x := v.(type) {
		case json.Number:
			if !strings.ContainsAny(string(x), ".eE") {
				if n, err := x.Int64(); err == nil {
					return n, nil
				}
			}
			return x.Float64()
		case map[string]any:
			for k, e := range x {
				var err error
				if x[k], err = conv(e); err != nil {
					return nil, err
				}
			}
		case []any:
			for i, e := range x {
				var err error
				if x[i], err = conv(e); err != nil {
					return nil, err
				}
			}
		}
		return v, nil
	}
	return conv(v)
}

func FuzzJSONFromKafka(f *testing.F) {
	for _, seed := range []string{
		iotFrame, connectStruct, `{"schema":null,"payload":[1,"a",{"b":null}]}`, `"\ud83d\ude00\u2028"`, `-0.0`, `1e21`, `123456789012345678901234567890`,
		`{"schema":{"type":"map","keys":{"type":"int8"},"values":{"type":"float"}},"payload":[[1,0.1]]}`,
		`{"schema":{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"-2"}},"payload":"Bw=="}`,
		`{"schema":{"type":"struct","fields":[{"field":"x","type":"string","default":"d","optional":true}]},"payload":{}}`,
	} {
		f.Add([]byte(seed))
	}
	plain, _ := New("json", map[string]string{"schemas.enable": "false"}, false)
	enveloped, _ := New("json", nil, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Schemaless: accepts what encoding/json accepts, decodes to the same values, and
		// writing then reading is stable.
		v, _, err := plain.FromKafka("t", data)
		if len(data) > 0 {
			std, stdErr := stdDecode(data)
			if (err == nil) != (stdErr == nil) {
				t.Fatalf("FromKafka(%q) error %v, encoding/json %v", data, err, stdErr)
			}
			if err == nil && !reflect.DeepEqual(v, std) {
				t.Fatalf("FromKafka(%q) = %#v, encoding/json %#v", data, v, std)
			}
		}
		if err == nil && v != nil {
			roundTrip(t, plain, v, nil)
		}
		// With schemas: no panic, and what reads writes back stably.
		v, s, err := enveloped.FromKafka("t", data)
		if err == nil && v != nil {
			roundTrip(t, enveloped, v, s)
		}
	})
}

func roundTrip(t *testing.T, c Converter, v any, s *connect.Schema) {
	t.Helper()
	b1, err := c.ToKafka("t", v, s)
	if err != nil {
		t.Fatalf("ToKafka(%#v): %v", v, err)
	}
	v2, s2, err := c.FromKafka("t", b1)
	if err != nil {
		t.Fatalf("FromKafka(%s): %v", b1, err)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip through %s: %#v became %#v", b1, v, v2)
	}
	b2, err := c.ToKafka("t", v2, s2)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("second write %s, %v; first %s", b2, err, b1)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := mustNew(t, "json", map[string]string{"schemas.cache.size": "2"})
	done := make(chan bool)
	for g := range 4 {
		go func() {
			defer func() { done <- true }()
			for i := range 300 {
				schema := `{"type":"struct","fields":[{"field":"n","type":"int64"}],"name":"s` + string(rune('a'+(i+g)%5)) + `"}`
				v, s, err := c.FromKafka("t", []byte(`{"schema":`+schema+`,"payload":{"n":`+strings.Repeat("1", 1+i%9)+`}}`))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.ToKafka("t", v, s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
