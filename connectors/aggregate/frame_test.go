package aggregate

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

func TestParseFrames(t *testing.T) {
	p := parser{groupBy: []string{"device_id", "loc.place"}, fields: []string{"temperature", "humidity"}, timeField: "ts", idField: "frame_id"}
	for _, tc := range []struct {
		name   string
		in     string
		time   int64
		group  string
		id     string
		values map[string]float64
		bad    string // the field a DataError names; "-" for a non-object
	}{
		{"iso time", `{"device_id":"d1","loc":{"place":"p1"},"ts":"2026-11-23T10:00:01.5Z","frame_id":"f1","temperature":21.5,"humidity":"40"}`,
			1795428001500, `["d1","p1"]`, "f1", map[string]float64{"temperature": 21.5, "humidity": 40}, ""},
		{"epoch ms, numeric group", `{"device_id":7,"loc.place":"p1","ts":1700000000000,"temperature":1}`,
			1700000000000, `[7,"p1"]`, "", map[string]float64{"temperature": 1}, ""},
		{"epoch ms as text, offset time zone", `{"device_id":"d","loc":{"place":"p"},"ts":"1700000000001","humidity":"x"}`,
			1700000000001, `["d","p"]`, "", map[string]float64{}, ""},
		{"zone offset", `{"device_id":"d","loc":{"place":"p"},"ts":"2026-11-23T11:00:00+01:00"}`,
			1795428000000, `["d","p"]`, "", map[string]float64{}, ""},
		{"connect envelope", `{"schema":{"type":"struct"},"payload":{"device_id":"d","loc":{"place":"p"},"ts":5,"frame_id":12}}`,
			5, `["d","p"]`, "12", map[string]float64{}, ""},
		{"missing group", `{"device_id":"d","ts":5}`, 0, "", "", nil, "loc.place"},
		{"missing time", `{"device_id":"d","loc":{"place":"p"}}`, 0, "", "", nil, "ts"},
		{"bad time", `{"device_id":"d","loc":{"place":"p"},"ts":"yesterday"}`, 0, "", "", nil, "ts"},
		{"object group", `{"device_id":{"x":1},"loc":{"place":"p"},"ts":1}`, 0, "", "", nil, "device_id"},
		{"not an object", `[1,2]`, 0, "", "", nil, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := p.parse([]byte(tc.in), 99)
			if tc.bad != "" {
				var de *connect.DataError
				if !errors.As(err, &de) || (tc.bad != "-" && de.Field != tc.bad) {
					t.Fatalf("parse = %v, %v; want a DataError on %s", f, err, tc.bad)
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
	k := parser{groupBy: []string{"device_id"}}
	if f, err := k.parse([]byte(`{"device_id":"d"}`), 1234); err != nil || f.time != 1234 {
		t.Errorf("Kafka timestamp as event time: %+v %v", f, err)
	}
}

func TestEncodeResultAndMetrics(t *testing.T) {
	e := encoder{groupBy: []string{"device_id"}, fields: []string{"temperature", "humidity"}, aggs: []string{AggAvg, AggCount}, prefix: "sensor"}
	w := &window{Group: []any{"d1"}, Start: 0, End: 60000, Frames: 2,
		Fields: map[string]*fieldAgg{"temperature": {N: 2, Sum: 41, Min: 20, Max: 21}}}
	if got, want := string(e.resultKey(w)), `{"device_id":"d1","window_start":"1970-01-01T00:00:00.000Z"}`; got != want {
		t.Errorf("key %s, want %s", got, want)
	}
	want := `{"device_id":"d1","final":true,"frames":2,"humidity_avg":null,"humidity_count":0,"revision":1,"temperature_avg":20.5,"temperature_count":2,"window_end":"1970-01-01T00:01:00.000Z","window_start":"1970-01-01T00:00:00.000Z"}`
	if got := string(e.resultValue(emission{w: w, final: true, revision: 1})); got != want {
		t.Errorf("value\n%s, want\n%s", got, want)
	}
	ms := e.metrics(emission{w: w, final: true}, "1m0s")
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
