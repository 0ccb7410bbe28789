package prometheussink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

// Label values and record-given metric names longer than label.value.max.length are bad
// records, with a reason naming the field, the length and the limit; nothing of them is kept.
func TestOverLongLabelValuesAndNamesAreBadRecords(t *testing.T) {
	tests := []struct {
		name       string
		value      map[string]any
		wantReason string // empty: stored
	}{
		{"a label at the limit", map[string]any{"name": "m", "sensor_id": strings.Repeat("s", 16), "v": 1.0}, ""},
		{"a label one byte over", map[string]any{"name": "m", "sensor_id": strings.Repeat("s", 17), "v": 1.0},
			`field "sensor_id": bad value "sssssssssssssssss": label value is 17 bytes long, over label.value.max.length 16`},
		{"a huge label", map[string]any{"name": "m", "sensor_id": strings.Repeat("h", 1<<20), "v": 1.0},
			`label value is 1048576 bytes long, over label.value.max.length 16`},
		{"a numeric label over", map[string]any{"name": "m", "sensor_id": 1.2345678901234567e300, "v": 1.0},
			`label value is 23 bytes long, over label.value.max.length 16`},
		{"a name at the limit", map[string]any{"name": strings.Repeat("n", 16), "sensor_id": "s", "v": 1.0}, ""},
		{"a huge name", map[string]any{"name": strings.Repeat("n", 100_000), "sensor_id": "s", "v": 1.0},
			`field "name": bad value "nnnn`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, tc, url := startTask(t, connect.Config{"metric.name.field": "name", "label.fields": "sensor_id", "value.fields": "v",
				"label.value.max.length": "16"})
			if err := task.Put(t.Context(), []connect.Record{rec(tt.value)}); err != nil {
				t.Fatal(err)
			}
			if tt.wantReason == "" {
				if len(tc.Reported) != 0 || task.store.len() != 1 {
					t.Errorf("reported %v, %d series held; want the record stored", tc.Reasons, task.store.len())
				}
				return
			}
			if len(tc.Reported) != 1 || !strings.Contains(tc.Reasons[0].Error(), tt.wantReason) {
				t.Fatalf("reported %v, want one reason containing %q", tc.Reasons, tt.wantReason)
			}
			if reason := tc.Reasons[0].Error(); len(reason) > 500 {
				t.Errorf("reason of %d bytes: the message should quote the value cut short", len(reason))
			}
			if task.store.len() != 0 {
				t.Errorf("%d series held, want none", task.store.len())
			}
			if text := scrape(t, url, ""); !strings.Contains(text, `sluice_prometheus_sink_bad_records_total{connector="test",task="0"} 1`) {
				t.Errorf("bad record not counted:\n%s", text)
			}
		})
	}
}

func TestLabelsPerSeriesAreLimited(t *testing.T) {
	fields := func(n int) string {
		var f []string
		for i := range n {
			f = append(f, fmt.Sprintf("l%d", i))
		}
		return strings.Join(f, ",")
	}
	for _, tt := range []struct {
		cfg     connect.Config
		wantErr string
	}{
		{connect.Config{"label.fields": fields(29)}, ""},
		{connect.Config{"label.fields": fields(30)}, "label.fields: 30 label fields and the metric name make 31 labels per series, over series.labels.max 30"},
		{connect.Config{"label.fields": fields(3), "series.labels.max": "4"}, ""},
		{connect.Config{"label.fields": fields(4), "series.labels.max": "4"}, "over series.labels.max 4"},
	} {
		_, err := connect.Decode[Config](tt.cfg)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Decode(%v) = %v, want error %q", tt.cfg["label.fields"], err, tt.wantErr)
		}
	}
}

// Reaching series.max puts a note in the task's status naming the limit and a dropped series,
// and the note goes once there is room again.
func TestSeriesLimitIsNotedInTheStatus(t *testing.T) {
	task, tc, _ := startTask(t, connect.Config{"metric.name": "m", "label.fields": "id", "series.max": "2", "series.ttl": "1h"})
	put := func(ids ...string) {
		for _, id := range ids {
			if err := task.Put(t.Context(), []connect.Record{rec(map[string]any{"id": id, "value": 1.0})}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("a", "b", "a")
	if note := tc.Note(); note != "" {
		t.Fatalf("note %q below the limit", note)
	}
	put("c", "d")
	want := `series.max 2 reached: samples that would add a series, such as m{id="c"}, are dropped and counted in sluice_prometheus_sink_series_dropped_total`
	if note := tc.Note(); !strings.Contains(note, want) {
		t.Fatalf("note %q, want it to contain %q", note, want)
	}
	if len(tc.Reported) != 0 {
		t.Errorf("reported %v: a full store is no bad record", tc.Reasons)
	}
	// b expires: there is room again, and the note goes.
	task.store.mu.Lock()
	for _, se := range task.store.series {
		if se.labels[0] == "b" {
			se.seen = se.seen.Add(-2 * task.cfg.TTL)
		}
	}
	task.store.mu.Unlock()
	task.store.expire()
	put("a")
	if note := tc.Note(); note != "" {
		t.Errorf("note %q after series expired, want none", note)
	}
}
