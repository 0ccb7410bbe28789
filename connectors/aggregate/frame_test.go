package aggregate

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

func TestParseFrames(t *testing.T) {
	p := parser{groupBy: []string{"device_id", "loc.place"}, fields: []string{"temperature", "humidity"}, timeField: "ts", idField: "frame_id",
		maxFuture: 5 * 60_000}
	const now = 1795428001500 // 2026-11-23T10:00:01.5Z
	for _, tc := range []struct {
		name   string
		in     string
		time   int64
		group  string
		id     string
		values map[string]float64
		bad    string // the field a DataError names; "-" for a non-object
		reason string // what the error says besides
	}{
		{"iso time", `{"device_id":"d1","loc":{"place":"p1"},"ts":"2026-11-23T10:00:01.5Z","frame_id":"f1","temperature":21.5,"humidity":"40"}`,
			1795428001500, `["d1","p1"]`, "f1", map[string]float64{"temperature": 21.5, "humidity": 40}, "", ""},
		{"epoch ms, numeric group", `{"device_id":7,"loc.place":"p1","ts":1700000000000,"temperature":1}`,
			1700000000000, `[7,"p1"]`, "", map[string]float64{"temperature": 1}, "", ""},
		{"epoch ms as text, offset time zone", `{"device_id":"d","loc":{"place":"p"},"ts":"1700000000001","humidity":"x"}`,
			1700000000001, `["d","p"]`, "", map[string]float64{}, "", ""},
		{"zone offset", `{"device_id":"d","loc":{"place":"p"},"ts":"2026-11-23T11:00:00+01:00"}`,
			1795428000000, `["d","p"]`, "", map[string]float64{}, "", ""},
		{"connect envelope", `{"schema":{"type":"struct"},"payload":{"device_id":"d","loc":{"place":"p"},"ts":5,"frame_id":12}}`,
			5, `["d","p"]`, "12", map[string]float64{}, "", ""},
		{"missing group", `{"device_id":"d","ts":5}`, 0, "", "", nil, "loc.place", ""},
		{"missing time", `{"device_id":"d","loc":{"place":"p"}}`, 0, "", "", nil, "ts", ""},
		{"bad time", `{"device_id":"d","loc":{"place":"p"},"ts":"yesterday"}`, 0, "", "", nil, "ts", ""},
		{"object group", `{"device_id":{"x":1},"loc":{"place":"p"},"ts":1}`, 0, "", "", nil, "device_id", ""},
		{"not an object", `[1,2]`, 0, "", "", nil, "-", ""},
		{"NaN reading", `{"device_id":"d","loc":{"place":"p"},"ts":5,"temperature":"NaN"}`, 0, "", "", nil, "temperature", `"NaN": a reading must be a finite number`},
		{"infinite reading", `{"device_id":"d","loc":{"place":"p"},"ts":5,"humidity":" -Infinity"}`, 0, "", "", nil, "humidity", `" -Infinity": a reading must be a finite number`},
		{"Inf reading", `{"device_id":"d","loc":{"place":"p"},"ts":5,"humidity":"Inf"}`, 0, "", "", nil, "humidity", `"Inf"`},
		{"reading beyond float64 as text", `{"device_id":"d","loc":{"place":"p"},"ts":5,"humidity":"1e400"}`, 0, "", "", nil, "humidity", `"1e400": the reading is beyond the range`},
		{"reading beyond float64 as number", `{"device_id":"d","loc":{"place":"p"},"ts":5,"humidity":1e400}`, 0, "", "", nil, "-", "number 1e400"},
		{"far-future event time", `{"device_id":"d","loc":{"place":"p"},"ts":"2027-11-23T10:00:00Z"}`, 0, "", "", nil, "ts",
			`"2027-11-23T10:00:00Z": the event time 2027-11-23T10:00:00.000Z is more than 5m0s ahead of the wall clock`},
		{"event time within the future bound", `{"device_id":"d","loc":{"place":"p"},"ts":"2026-11-23T10:04:00Z"}`,
			1795428240000, `["d","p"]`, "", map[string]float64{}, "", ""},
		{"event time beyond year 9999", `{"device_id":"d","loc":{"place":"p"},"ts":1e300}`, 0, "", "", nil, "ts", "outside the years 1 to 9999"},
		{"event time before year 1", `{"device_id":"d","loc":{"place":"p"},"ts":"-9223372036854775808"}`, 0, "", "", nil, "ts", "outside the years 1 to 9999"},
		{"event time beyond int64", `{"device_id":"d","loc":{"place":"p"},"ts":"99999999999999999999"}`, 0, "", "", nil, "ts", "outside the years 1 to 9999"},
		{"group key too long", `{"device_id":"` + strings.Repeat("x", 5000) + `","loc":{"place":"p"},"ts":5}`, 0, "", "", nil, "device_id,loc.place", "more than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := p.parse([]byte(tc.in), 99, now)
			if tc.bad != "" {
				var de *connect.DataError
				if !errors.As(err, &de) || (tc.bad != "-" && de.Field != tc.bad) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("parse = %v, %v; want a DataError on %s saying %s", f, err, tc.bad, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.time != tc.time || f.groupKey != tc.group || f.id != tc.id || f.hasID != (tc.id != "") || len(f.values) != len(tc.values) {
				t.Fatalf("parse = %+v", f)
			}
			for k, v := range tc.values {
				if f.values[k] != v {
					t.Errorf("%s = %v, want %v", k, f.values[k], v)
				}
			}
		})
	}
	k := parser{groupBy: []string{"device_id"}, maxFuture: 1000}
	if f, err := k.parse([]byte(`{"device_id":"d"}`), 1234, 1234); err != nil || f.time != 1234 {
		t.Errorf("Kafka timestamp as event time: %+v %v", f, err)
	}
	if _, err := k.parse([]byte(`{"device_id":"d"}`), 3000, 1000); err == nil || !strings.Contains(err.Error(), "Kafka timestamp") {
		t.Errorf("Kafka timestamp far in the future: %v", err)
	}
	k.maxFuture = 0 // no check
	if _, err := k.parse([]byte(`{"device_id":"d"}`), 1e12, 1000); err != nil {
		t.Errorf("event.time.max.future=0: %v", err)
	}
}

func TestEncodeResultAndMetrics(t *testing.T) {
	e := encoder{groupBy: []string{"device_id"}, fields: []string{"temperature", "humidity"}, aggs: []string{AggAvg, AggCount}, prefix: "sensor"}
	w := &window{Group: []any{"d1"}, Start: 0, End: 60000, Frames: 2,
		Fields: map[string]*fieldAgg{"temperature": {N: 2, Sum: 41, Min: 20, Max: 21}}}
	if got, err := e.resultKey(w); err != nil || string(got) != `{"device_id":"d1","window_start":"1970-01-01T00:00:00.000Z"}` {
		t.Errorf("key %s, %v", got, err)
	}
	want := `{"device_id":"d1","final":true,"frames":2,"humidity_avg":null,"humidity_count":0,"revision":1,"temperature_avg":20.5,"temperature_count":2,"window_end":"1970-01-01T00:01:00.000Z","window_start":"1970-01-01T00:00:00.000Z"}`
	if got, err := e.resultValue(emission{w: w, final: true, revision: 1}); err != nil || string(got) != want {
		t.Errorf("value\n%s (%v), want\n%s", got, err, want)
	}
	ms, err := e.metrics(emission{w: w, final: true}, "1m0s")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, string(m.key))
	}
	wantNames := []string{`sensor_frames{device_id="d1",window="1m0s"}`, `sensor_temperature_avg{device_id="d1",window="1m0s"}`,
		`sensor_temperature_count{device_id="d1",window="1m0s"}`, `sensor_humidity_count{device_id="d1",window="1m0s"}`}
	if len(names) != len(wantNames) {
		t.Fatalf("metrics %v, want %v", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Errorf("metric %d: %s, want %s", i, names[i], wantNames[i])
		}
	}
	if got, want := string(ms[1].value), `{"labels":{"device_id":"d1","window":"1m0s"},"name":"sensor_temperature_avg","timestamp":60000,"value":20.5}`; got != want {
		t.Errorf("metric value %s, want %s", got, want)
	}
}

// TestEncodeErrorsAreReturned: a result that cannot be encoded is an error, never an empty
// record (a tombstone of the window's key).
func TestEncodeErrorsAreReturned(t *testing.T) {
	e := encoder{groupBy: []string{"device_id"}, fields: []string{"temperature"}, aggs: []string{AggSum}, prefix: "sensor"}
	w := &window{Group: []any{"d1"}, End: 60000, Frames: 1, Fields: map[string]*fieldAgg{"temperature": {N: 1, Sum: math.Inf(1)}}}
	if v, err := e.resultValue(emission{w: w}); err == nil {
		t.Errorf("resultValue of an infinite sum = %s, no error", v)
	}
	if ms, err := e.metrics(emission{w: w}, "1m0s"); err == nil {
		t.Errorf("metrics of an infinite sum = %d records, no error", len(ms))
	}
}
