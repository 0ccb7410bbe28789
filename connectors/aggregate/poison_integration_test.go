package aggregate_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// poisonFrame is a raw frame of the poison tests; a nil Temp leaves the field out.
type poisonFrame struct {
	ID     string `json:"frame_id"`
	Device string `json:"device_id"`
	TS     any    `json:"ts"`
	Temp   any    `json:"temperature,omitempty"`
}

// TestPoisonFramesAreDeadLettered runs the connector on a stream with one frame it cannot
// aggregate: the frame goes to the dead-letter topic with a reason naming the field and
// value, the frames after it are aggregated as if it had not been there, and the task stays
// RUNNING. Before, each of these made every transaction fail and the task replay the same
// frames forever, or (a far-future event time) made every later frame too late.
func TestPoisonFramesAreDeadLettered(t *testing.T) {
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	base := baseTime()
	at := func(s int) int64 { return base + int64(s)*1000 }
	good := func(id string, s int, temp float64) poisonFrame {
		return poisonFrame{ID: id, Device: "d1", TS: at(s), Temp: temp}
	}
	for _, tc := range []struct {
		name     string
		settings map[string]string
		first    []float64   // temperatures of the frames in the first window, at 1 s, 2 s, ...
		poison   poisonFrame // in the first window, after those
		reason   []string    // what the dead-letter reason says
		note     string      // what the task's status trace says, if anything
	}{
		{name: "NaN reading", poison: poisonFrame{ID: "p", Device: "d1", TS: at(4), Temp: "NaN"},
			reason: []string{`field "temperature": bad value "NaN"`, "finite"}},
		{name: "infinite reading", poison: poisonFrame{ID: "p", Device: "d1", TS: at(4), Temp: "-Infinity"},
			reason: []string{`field "temperature": bad value "-Infinity"`, "finite"}},
		{name: "sum overflows", first: []float64{1, 1.7e308, 3}, poison: good("p", 4, 1.7e308),
			reason: []string{`field "temperature": bad value 1.7e+308`, "overflow to infinity"}},
		{name: "far-future event time", poison: poisonFrame{ID: "p", Device: "d1", TS: "2999-01-01T00:00:00Z", Temp: 99.0},
			reason: []string{`field "ts": bad value "2999-01-01T00:00:00Z"`, "ahead of the wall clock", "event.time.max.future"}},
		{name: "dedupe.max.ids", settings: map[string]string{"dedupe.max.ids": "3"}, poison: good("p", 4, 99),
			reason: []string{`field "frame_id": bad value "p"`, "dedupe.max.ids"}},
		{name: "window.max.open", settings: map[string]string{"window.max.open": "1"}, poison: poisonFrame{ID: "p", Device: "d2", TS: at(4), Temp: 99.0},
			reason: []string{`field "device_id": bad value "d2"`, "window.max.open"}, note: "window.max.open reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, out, late, dlq := sluicetest.UniqueName("raw"), sluicetest.UniqueName("agg"), sluicetest.UniqueName("late"), sluicetest.UniqueName("dlq")
			sluicetest.CreateTopic(t, c.Bootstrap, raw, 1)
			first := tc.first
			if first == nil {
				first = []float64{1, 2, 3}
			}
			var frames []poisonFrame
			var sum1 float64
			for i, v := range first {
				frames = append(frames, good(fmt.Sprintf("a%d", i), 1+i, v))
				sum1 += v
			}
			// The second window's frames come late enough to expire the first window
			// (watermark 2 s behind, lateness 5 s), so that window.max.open=1 has room.
			frames = append(frames, tc.poison, good("b1", 17, 4), good("b2", 18, 5), good("end", 60, 0))
			var msgs []*kafka.Message
			for _, f := range frames {
				b, err := json.Marshal(f)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &raw, Partition: 0}, Key: []byte(f.Device), Value: b})
			}
			sluicetest.Produce(t, c.Bootstrap, raw, msgs...)

			name := sluicetest.UniqueName("agg")
			cfg := aggregateConfig(c.Bootstrap, raw, out, late)
			// A transaction per frame: before, a window holding a poison value made every
			// transaction after it fail.
			cfg["tasks.max"], cfg["value.fields"], cfg["commit.max.records"] = "1", "temperature", "1"
			cfg["errors.deadletterqueue.topic.name"], cfg["errors.deadletterqueue.context.headers.enable"] = dlq, "true"
			for k, v := range tc.settings {
				cfg[k] = v
			}
			sluicetest.CreateConnector(t, w.URL, name, cfg)
			sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
			waitPartitionConsumed(t, c.Bootstrap, "sluice-aggregate-"+name, raw, int64(len(msgs)))

			bad := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 1, 30*time.Second)
			if len(bad) != 1 {
				t.Fatalf("dead-letter topic has %d records, want the poison frame", len(bad))
			}
			if want, _ := json.Marshal(tc.poison); string(bad[0].Value) != string(want) {
				t.Errorf("dead letter %s, want the poison frame %s", bad[0].Value, want)
			}
			reason, _ := sluicetest.Header(bad[0], "__connect.errors.exception.message")
			t.Logf("dead-letter reason: %s", reason)
			for _, r := range tc.reason {
				if !strings.Contains(reason, r) {
					t.Errorf("dead-letter reason %q does not say %q", reason, r)
				}
			}
			if n := len(readCommitted(t, c.Bootstrap, late)); n != 0 {
				t.Errorf("late topic has %d frames, want none", n)
			}
			got := map[string]map[string]any{} // the latest revision per window start
			for _, m := range readCommitted(t, c.Bootstrap, out) {
				var v map[string]any
				if err := json.Unmarshal(m.Value, &v); err != nil {
					t.Fatalf("output %s: %v", m.Value, err)
				}
				if prev := got[v["window_start"].(string)]; prev == nil || prev["revision"].(float64) < v["revision"].(float64) {
					got[v["window_start"].(string)] = v
				}
			}
			start := func(s int) string { return time.UnixMilli(at(s)).UTC().Format("2006-01-02T15:04:05.000Z07:00") }
			want := map[string]map[string]any{
				start(0):  {"device_id": "d1", "frames": float64(len(first)), "temperature_sum": sum1, "final": true},
				start(10): {"device_id": "d1", "frames": 2.0, "temperature_sum": 9.0, "final": true},
			}
			if len(got) != len(want) {
				t.Errorf("output windows %v, want %v", got, want)
			}
			for ws, wv := range want {
				for k, v := range wv {
					if g := got[ws][k]; fmt.Sprint(g) != fmt.Sprint(v) {
						t.Errorf("window %s: %s = %v, want %v (%v)", ws, k, g, v, got[ws])
					}
				}
			}
			st := sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
			if st.Tasks[0].Restarts != 0 {
				t.Errorf("the task restarted %d times", st.Tasks[0].Restarts)
			}
			if tc.note != "" && !strings.Contains(st.Tasks[0].Trace, tc.note) {
				t.Errorf("task trace %q does not say %q", st.Tasks[0].Trace, tc.note)
			}
		})
	}
}

// waitPartitionConsumed waits until the group has committed n records of partition 0 of topic.
func waitPartitionConsumed(t *testing.T, bootstrap, group, topic string, n int64) {
	t.Helper()
	cons, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	sluicetest.Eventually(t, 2*time.Minute, "the aggregate group to commit the raw topic", func() (bool, string) {
		got, err := cons.Committed([]kafka.TopicPartition{{Topic: &topic, Partition: 0}}, 5000)
		if err != nil {
			return false, err.Error()
		}
		return int64(got[0].Offset) == n, fmt.Sprintf("committed %v of %d", got[0].Offset, n)
	})
}
