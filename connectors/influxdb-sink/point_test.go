package influxdbsink

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

// config is a valid configuration with the settings given as key, value pairs.
func config(t *testing.T, kv ...string) Config {
	t.Helper()
	cfg := connect.Config{"influxdb.url": "http://127.0.0.1:1", "influxdb.bucket": "b"}
	for i := 0; i < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		t.Fatalf("config %v: %v", kv, err)
	}
	return c
}

func TestRecordsBecomeLines(t *testing.T) {
	reading := map[string]any{"device_id": "d-1", "place": "hall", "temp": int64(21), "ok": true, "note": "a \"b\"",
		"reading": map[string]any{"hum": 40.5, "lux": nil}, "ts": "2024-05-01T12:00:00.123456789Z", "tags": []any{"x", int64(1)}}
	for _, tc := range []struct {
		name     string
		settings []string
		rec      connect.Record
		want     string
	}{{
		name:     "defaults: topic as measurement, record time, JSON numbers as floats",
		settings: nil,
		rec:      connect.Record{Topic: "iot.raw", Time: t0, Value: map[string]any{"device_id": "d-1", "temp": int64(21)}},
		want:     `iot.raw device_id="d-1",temp=21 1714564800123456789`,
	}, {
		name:     "tags, nested fields, time field, arrays as JSON",
		settings: []string{"tags", "device_id,place", "time.field", "ts"},
		rec:      connect.Record{Topic: "iot.raw", Value: reading},
		want:     `iot.raw,device_id=d-1,place=hall note="a \"b\"",ok=true,reading_hum=40.5,tags="[\"x\",1]",temp=21 1714564800123456789`,
	}, {
		name:     "every string a tag, integers inferred, a fixed measurement, ms precision",
		settings: []string{"tags.all.strings", "true", "fields.json.numbers", "infer", "measurement.name", "readings", "time.field", "ts", "write.precision", "ms"},
		rec:      connect.Record{Topic: "iot.raw", Value: reading},
		want:     `readings,device_id=d-1,note=a\ "b",place=hall ok=true,reading_hum=40.5,tags="[\"x\",1]",temp=21i 1714564800123`,
	}, {
		name:     "measurement from a field, listed fields only, epoch seconds",
		settings: []string{"measurement.field", "kind", "fields", "temp", "tags", "device_id", "time.field", "at", "time.field.unit", "s"},
		rec:      connect.Record{Topic: "x", Value: map[string]any{"kind": "climate", "device_id": "d-2", "temp": 19.5, "hum": 40.0, "at": int64(1714564800)}},
		want:     `climate,device_id=d-2 temp=19.5 1714564800000000000`,
	}, {
		name:     "a schema keeps integer types; unsigned values on 2.x",
		settings: nil,
		rec: connect.Record{Topic: "s", Time: t0, Value: map[string]any{"n": int64(7), "u": uint64(1 << 63), "f": float32(0.5)},
			ValueSchema: &connect.Schema{Type: connect.Struct, Fields: []connect.Field{{Name: "n", Schema: &connect.Schema{Type: connect.Int64}}}}},
		want: `s f=0.5,n=7i,u=9223372036854775808u 1714564800123456789`,
	}, {
		name:     "unsigned values are integers on the 1.x path",
		settings: []string{"influxdb.bucket", "", "influxdb.database", "db"},
		rec:      connect.Record{Topic: "s", Time: t0, Value: map[string]any{"u": uint32(5)}},
		want:     `s u=5i 1714564800123456789`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, tc.settings...)
			e := newEncoder(&cfg)
			got, err := e.encode(nil, &tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSuffix(string(got), "\n") != tc.want {
				t.Errorf("line\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestBadRecordsNameTheFieldAndValue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []string
		value    any
		want     string
	}{
		{"not an object", nil, "text", "must be a JSON object or a struct"},
		{"no fields", []string{"tags", "device_id"}, map[string]any{"device_id": "d"}, "no field to write"},
		{"a tag that is not a string", []string{"tags", "device_id"}, map[string]any{"device_id": int64(7), "v": 1.0}, `field "device_id": bad value 7: a tag value must be a string, not int64`},
		{"no time", []string{"time.field", "ts"}, map[string]any{"v": 1.0}, `field "ts": bad value <nil>: missing`},
		{"a time that is not one", []string{"time.field", "ts"}, map[string]any{"v": 1.0, "ts": "yesterday"}, `field "ts": bad value "yesterday": not an RFC 3339 time`},
		{"NaN", nil, map[string]any{"v": nan()}, `field "v": bad value NaN: InfluxDB takes no NaN`},
		{"no measurement", []string{"measurement.field", "kind"}, map[string]any{"v": 1.0}, `field "kind": bad value <nil>: missing`},
		{"unsigned too large for 1.x", []string{"influxdb.bucket", "", "influxdb.database", "db"}, map[string]any{"u": uint64(1 << 63)}, `field "u": bad value 9223372036854775808: too large`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, tc.settings...)
			e := newEncoder(&cfg)
			dst := []byte("kept\n")
			got, err := e.encode(dst, &connect.Record{Topic: "x", Time: t0, Value: tc.value})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if string(got) != "kept\n" {
				t.Errorf("a bad record changed the lines: %q", got)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func TestConfigRules(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"influxdb.bucket", ""}, "influxdb.bucket: Missing value"},
		{[]string{"influxdb.database", "db"}, "influxdb.database: Invalid value \"db\": set influxdb.bucket or influxdb.database, not both"},
		{[]string{"influxdb.url", "ftp://x"}, "influxdb.url: Invalid value"},
		{[]string{"influxdb.token", "t", "influxdb.username", "u"}, "influxdb.token: Invalid value"},
		{[]string{"tags", "ts", "time.field", "ts"}, `tags: Invalid value "ts": it is the time.field`},
		{[]string{"tags", "a", "fields", "a"}, `fields: Invalid value "a": it is also a tag`},
	} {
		cfg := connect.Config{"influxdb.url": "http://127.0.0.1:1", "influxdb.bucket": "b"}
		for i := 0; i < len(tc.kv); i += 2 {
			cfg[tc.kv[i]] = tc.kv[i+1]
		}
		_, err := connect.Decode[Config](cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.kv, err, tc.want)
		}
	}
}

func TestNamedLine(t *testing.T) {
	for msg, want := range map[string]string{
		`partial write: unable to parse 'm,host=d bad 17': invalid field format dropped=0`:       "m,host=d bad 17",
		`partial write: field type conflict: input field "s" on measurement "m" is type integer`: "",
	} {
		got, ok := namedLine(msg)
		if got != want || ok != (want != "") {
			t.Errorf("namedLine(%q) = %q, %v; want %q", msg, got, ok, want)
		}
	}
}

func TestPointsRefusedTellsPointsFromRequests(t *testing.T) {
	for msg, want := range map[string]bool{
		`partial write: unable to parse 'm,host=d bad 17': invalid field format dropped=0`:                                     true,
		`partial write: field type conflict: input field "v" on measurement "m" is type boolean, already exists as type float`: true,
		`partial write of line protocol occurred`:                                                                              true,
		`write buffer error: parsing failed for write_lp endpoint`:                                                             true,
		`invalid precision "x"`:               false,
		`retention policy not found: forever`: false,
	} {
		if got := pointsRefused(msg); got != want {
			t.Errorf("pointsRefused(%q) = %v, want %v", msg, got, want)
		}
	}
}
