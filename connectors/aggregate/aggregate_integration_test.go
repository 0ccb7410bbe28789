package aggregate_test

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// The stream the acceptance tests generate: devices spread over the raw topic's partitions,
// one frame a second each, with frames swapped (out of order within the bound), late frames
// (some within the allowed lateness, some past it) and repeated frames (duplicates).
const (
	windowMs   = 10_000
	outOfOrder = 2_000
	lateness   = 5_000
	partitions = 3
)

type genFrame struct {
	ID        string   `json:"frame_id"`
	Device    string   `json:"device_id"`
	Place     string   `json:"place_id"`
	TS        any      `json:"ts"`
	Temp      float64  `json:"temperature"`
	Humidity  *float64 `json:"humidity,omitempty"`
	time      int64
	partition int32
}

// generate returns the frames of each partition in the order they are produced. seconds is
// how many base frames each device has; the frames start at base.
func generate(devices, seconds int, base int64) [][]genFrame {
	perPart := make([][][]genFrame, partitions)
	for d := 0; d < devices; d++ {
		dev := fmt.Sprintf("d%d", d)
		var list []genFrame
		mk := func(id string, t int64, s int) genFrame {
			f := genFrame{ID: id, Device: dev, Place: fmt.Sprintf("p%d", d%2), Temp: float64(d*100+s%50) * 0.25, time: t, partition: int32(d % partitions)}
			if s%5 != 0 {
				h := float64(s%7) * 0.5
				f.Humidity = &h
			}
			if s%2 == 0 {
				f.TS = time.UnixMilli(t).UTC().Format(time.RFC3339Nano)
			} else {
				f.TS = t
			}
			return f
		}
		for s := 0; s < seconds; s++ {
			t := base + int64(s)*1000 + int64(d)*37
			list = append(list, mk(fmt.Sprintf("%s-%d", dev, s), t, s))
			if s%23 == 22 { // late, within or past the allowed lateness depending on the window
				list = append(list, mk(fmt.Sprintf("%s-late-%d", dev, s), t-10_500, s+1))
			}
			if s%31 == 30 { // far too late
				list = append(list, mk(fmt.Sprintf("%s-old-%d", dev, s), t-60_500, s+2))
			}
			if s%13 == 12 { // a duplicate of the frame two back
				list = append(list, list[len(list)-3])
			}
		}
		for i := 6; i+1 < len(list); i += 7 { // out of order by about a second
			list[i], list[i+1] = list[i+1], list[i]
		}
		perPart[d%partitions] = append(perPart[d%partitions], list)
	}
	out := make([][]genFrame, partitions)
	for p, lists := range perPart { // interleave the devices of a partition
		for i := 0; ; i++ {
			more := false
			for _, l := range lists {
				if i < len(l) {
					out[p] = append(out[p], l[i])
					more = true
				}
			}
			if !more {
				break
			}
		}
		// A frame far ahead closes every window of the partition.
		end := base + int64(seconds+60)*1000
		out[p] = append(out[p], genFrame{ID: fmt.Sprintf("end-%d", p), Device: fmt.Sprintf("end-%d", p), TS: end, time: end, partition: int32(p)})
	}
	return out
}

// expectedWindow is the independent computation's result for one window.
type expectedWindow struct {
	field  string // the group field
	group  string
	start  int64
	values map[string]any
}

type fieldStats struct {
	n             int
	sum, min, max float64
	first, last   float64
	firstT, lastT int64
	hasValue      bool
}

func (s *fieldStats) add(v float64, t int64) {
	if !s.hasValue {
		*s = fieldStats{n: 1, sum: v, min: v, max: v, first: v, last: v, firstT: t, lastT: t, hasValue: true}
		return
	}
	s.n++
	s.sum += v
	s.min, s.max = math.Min(s.min, v), math.Max(s.max, v)
	if t < s.firstT {
		s.first, s.firstT = v, t
	}
	if t >= s.lastT {
		s.last, s.lastT = v, t
	}
}

type simCounts struct{ accepted, lateAccepted, tooLate, dupes int }

// simulate computes the expected final aggregates the plain way: per partition in order, a
// watermark of the greatest time so far minus the bound, tumbling windows, frames of windows
// past their lateness dropped, repeated ids dropped; only windows the final watermark closed.
func simulate(parts [][]genFrame, groupField string) (map[string]expectedWindow, simCounts) {
	var c simCounts
	out := map[string]expectedWindow{}
	for _, frames := range parts {
		type acc struct {
			frames      int
			temp, humid fieldStats
			ids         map[string]bool
		}
		wins := map[string]*acc{}
		var maxT int64
		seen := false
		for _, f := range frames {
			start := f.time - ((f.time%windowMs)+windowMs)%windowMs
			wm := maxT - outOfOrder
			if seen && start+windowMs+lateness <= wm {
				c.tooLate++
				continue
			}
			group := f.Device
			if groupField == "place_id" {
				group = f.Place
			}
			k := fmt.Sprintf("%s|%d", group, start)
			a := wins[k]
			if a == nil {
				a = &acc{ids: map[string]bool{}}
				wins[k] = a
			}
			if a.ids[f.ID] {
				c.dupes++
				continue
			}
			a.ids[f.ID] = true
			a.frames++
			a.temp.add(f.Temp, f.time)
			if f.Humidity != nil {
				a.humid.add(*f.Humidity, f.time)
			}
			c.accepted++
			if seen && start+windowMs <= wm {
				c.lateAccepted++
			}
			if !seen || f.time > maxT {
				maxT, seen = f.time, true
			}
		}
		for k, a := range wins {
			dev, startS, _ := strings.Cut(k, "|")
			var start int64
			if _, err := fmt.Sscan(startS, &start); err != nil {
				panic(fmt.Sprintf("window key %q this function made: %v", k, err))
			}
			if start+windowMs > maxT-outOfOrder {
				continue // never closed
			}
			v := map[string]any{"frames": float64(a.frames)}
			for name, s := range map[string]fieldStats{"temperature": a.temp, "humidity": a.humid} {
				v[name+"_count"] = float64(s.n)
				v[name+"_sum"] = s.sum
				if !s.hasValue {
					for _, agg := range []string{"min", "max", "avg", "first", "last"} {
						v[name+"_"+agg] = nil
					}
					continue
				}
				v[name+"_min"], v[name+"_max"], v[name+"_avg"] = s.min, s.max, s.sum/float64(s.n)
				v[name+"_first"], v[name+"_last"] = s.first, s.last
			}
			out[windowKey(groupField, dev, start)] = expectedWindow{field: groupField, group: dev, start: start, values: v}
		}
	}
	return out, c
}

func windowKey(field, group string, start int64) string {
	return fmt.Sprintf(`{%q:%q,"window_start":%q}`, field, group, time.UnixMilli(start).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

func produceFrames(t *testing.T, bootstrap, topic string, parts [][]genFrame, from, to float64) int {
	t.Helper()
	var msgs []*kafka.Message
	for p, frames := range parts {
		lo, hi := int(from*float64(len(frames))), int(to*float64(len(frames)))
		for _, f := range frames[lo:hi] {
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(p)}, Key: []byte(f.Device), Value: b})
		}
	}
	sluicetest.Produce(t, bootstrap, topic, msgs...)
	return len(msgs)
}

// readCommitted reads a whole topic as a read_committed consumer sees it now.
func readCommitted(t *testing.T, bootstrap, topic string) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": sluicetest.UniqueName("check"),
		"isolation.level": "read_committed", "enable.partition.eof": true, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil || len(md.Topics[topic].Partitions) == 0 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	var tps []kafka.TopicPartition
	pending := map[int32]bool{}
	for _, p := range md.Topics[topic].Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetBeginning})
		pending[p.ID] = true
	}
	if err := c.Assign(tps); err != nil {
		t.Fatal(err)
	}
	var out []*kafka.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("reading %s: partitions %v not read to the end", topic, pending)
		}
		switch e := c.Poll(200).(type) {
		case *kafka.Message:
			out = append(out, e)
		case kafka.PartitionEOF:
			delete(pending, e.Partition)
		}
	}
	return out
}

// waitConsumed waits until the connector's group has committed the end of every partition
// of the raw topic.
func waitConsumed(t *testing.T, bootstrap, group, topic string, timeout time.Duration) {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group,
		"isolation.level": "read_committed", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sluicetest.Eventually(t, timeout, "the aggregate group to commit the whole raw topic", func() (bool, string) {
		var tps []kafka.TopicPartition
		want := map[int32]int64{}
		for p := int32(0); p < partitions; p++ {
			_, hi, err := c.QueryWatermarkOffsets(topic, p, 5000)
			if err != nil {
				return false, err.Error()
			}
			want[p] = hi
			tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
		}
		got, err := c.Committed(tps, 5000)
		if err != nil {
			return false, err.Error()
		}
		for _, tp := range got {
			if int64(tp.Offset) != want[tp.Partition] {
				return false, fmt.Sprintf("committed %v, ends %v", got, want)
			}
		}
		return true, ""
	})
}

// committedTotal is how many raw records the group has committed so far.
func committedTotal(t *testing.T, bootstrap, group, topic string) int64 {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p := int32(0); p < partitions; p++ {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	got, err := c.Committed(tps, 5000)
	if err != nil {
		return 0
	}
	var n int64
	for _, tp := range got {
		if tp.Offset > 0 {
			n += int64(tp.Offset)
		}
	}
	return n
}

// checkOutput compares the committed output with the expected windows: every window there
// with revisions 0..n each once, the last one final and equal to the independent
// computation, and no other windows. It returns the number of records.
func checkOutput(t *testing.T, msgs []*kafka.Message, want map[string]expectedWindow) int {
	t.Helper()
	type rev struct {
		revision int
		final    bool
		values   map[string]any
	}
	got := map[string][]rev{}
	for _, m := range msgs {
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("output value %s: %v", m.Value, err)
		}
		got[string(m.Key)] = append(got[string(m.Key)], rev{int(v["revision"].(float64)), v["final"].(bool), v})
	}
	for k, w := range want {
		revs := got[k]
		if len(revs) == 0 {
			t.Errorf("window %s missing", k)
			continue
		}
		sort.SliceStable(revs, func(i, j int) bool { return revs[i].revision < revs[j].revision })
		for i, r := range revs {
			if r.revision != i {
				var nums []int
				for _, r := range revs {
					nums = append(nums, r.revision)
				}
				t.Errorf("window %s: revisions %v, want 0..%d each once", k, nums, len(revs)-1)
				break
			}
		}
		last := revs[len(revs)-1]
		if !last.final {
			t.Errorf("window %s: last revision not final", k)
		}
		for name, wv := range w.values {
			if gv := last.values[name]; fmt.Sprint(gv) != fmt.Sprint(wv) {
				t.Errorf("window %s: %s = %v, want %v", k, name, gv, wv)
			}
		}
		if last.values[w.field] != w.group {
			t.Errorf("window %s: %s %v", k, w.field, last.values[w.field])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("window %s emitted but not expected", k)
		}
	}
	return len(msgs)
}

func aggregateConfig(bootstrap, raw, out, late string) map[string]string {
	return map[string]string{
		"connector.class": "aggregate", "tasks.max": "2",
		"kafka.bootstrap.servers": bootstrap, "source.topic": raw, "output.topic": out, "late.topic": late,
		"group.by": "device_id", "value.fields": "temperature,humidity", "event.time.field": "ts", "dedupe.field": "frame_id",
		"window.size": "10s", "watermark.out.of.order": "2s", "allowed.lateness": "5s",
		"commit.interval": "200ms", "topic.replication.factor": "-1",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.replication.factor": "-1",
	}
}

// baseTime is a recent whole minute, so that the topics' retention keeps the records.
func baseTime() int64 { return time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli() }

func TestAggregatesEqualIndependentComputation(t *testing.T) {
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	raw, out, late, metrics, dlq := sluicetest.UniqueName("raw"), sluicetest.UniqueName("agg"), sluicetest.UniqueName("late"),
		sluicetest.UniqueName("metrics"), sluicetest.UniqueName("dlq")
	sluicetest.CreateTopic(t, c.Bootstrap, raw, partitions)
	parts := generate(6, 120, baseTime())
	want, counts := simulate(parts, "device_id")
	if counts.lateAccepted == 0 || counts.tooLate == 0 || counts.dupes == 0 {
		t.Fatalf("the generated stream lacks a kind of frame: %+v", counts)
	}
	t.Logf("stream: %+v, %d windows", counts, len(want))
	produceFrames(t, c.Bootstrap, raw, parts, 0, 0.5)
	// Two frames the connector cannot read go to the dead-letter topic.
	sluicetest.Produce(t, c.Bootstrap, raw,
		&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &raw, Partition: 0}, Value: []byte("not json")},
		&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &raw, Partition: 1}, Value: []byte(`{"device_id":"x"}`)})

	name := sluicetest.UniqueName("agg")
	cfg := aggregateConfig(c.Bootstrap, raw, out, late)
	cfg["metrics.topic"], cfg["errors.deadletterqueue.topic.name"] = metrics, dlq
	cfg["commit.max.records"] = "5" // small transactions, so that late frames update windows already emitted
	sluicetest.CreateConnector(t, w.URL, name, cfg)
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)
	produceFrames(t, c.Bootstrap, raw, parts, 0.5, 1)

	waitConsumed(t, c.Bootstrap, "sluice-aggregate-"+name, raw, 2*time.Minute)
	n := checkOutput(t, readCommitted(t, c.Bootstrap, out), want)
	lateMsgs := readCommitted(t, c.Bootstrap, late)
	if len(lateMsgs) != counts.tooLate {
		t.Errorf("late topic has %d frames, want %d", len(lateMsgs), counts.tooLate)
	}
	for _, m := range lateMsgs {
		if r, _ := sluicetest.Header(m, "sluice.aggregate.reason"); !strings.Contains(r, "too late") {
			t.Errorf("late frame %s: reason header %q", m.Value, r)
		}
	}
	if bad := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 2, 30*time.Second); len(bad) != 2 {
		t.Errorf("dead-letter topic has %d records, want the 2 bad frames", len(bad))
	}
	// Each output record has its metrics: sensor_temperature_avg at the window end.
	type series struct {
		device string
		ts     int64
	}
	avg := map[series]float64{}
	for _, m := range readCommitted(t, c.Bootstrap, metrics) {
		var v struct {
			Name      string            `json:"name"`
			Labels    map[string]string `json:"labels"`
			Value     float64           `json:"value"`
			Timestamp int64             `json:"timestamp"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatal(err)
		}
		if v.Name == "sensor_temperature_avg" {
			avg[series{v.Labels["device_id"], v.Timestamp}] = v.Value
		}
	}
	for _, ew := range want {
		if got, ok := avg[series{ew.group, ew.start + windowMs}]; !ok || got != ew.values["temperature_avg"] {
			t.Errorf("metric sensor_temperature_avg of %s at %d = %v %v, want %v", ew.group, ew.start, got, ok, ew.values["temperature_avg"])
		}
	}
	if n <= len(want) {
		t.Errorf("%d output records for %d windows: no window was emitted again for a late frame", n, len(want))
	}
	t.Logf("%d output records for %d windows", n, len(want))
}

func TestKilledWorkerStillExactlyOnce(t *testing.T) {
	c := sluicetest.NewCluster(t)
	raw, out, late := sluicetest.UniqueName("raw"), sluicetest.UniqueName("agg"), sluicetest.UniqueName("late")
	sluicetest.CreateTopic(t, c.Bootstrap, raw, partitions)
	parts := generate(6, 300, baseTime())
	want, counts := simulate(parts, "device_id")
	t.Logf("stream: %+v, %d windows", counts, len(want))
	first := produceFrames(t, c.Bootstrap, raw, parts, 0, 0.6)

	p := c.StartProcess(nil)
	name := sluicetest.UniqueName("agg")
	cfg := aggregateConfig(c.Bootstrap, raw, out, late)
	cfg["tasks.max"], cfg["commit.max.records"], cfg["commit.interval"] = "1", "25", "100ms"
	sluicetest.CreateConnector(t, p.URL, name, cfg)
	group := "sluice-aggregate-" + name
	var atKill int64
	sluicetest.Eventually(t, 2*time.Minute, "the connector to commit its first transactions", func() (bool, string) {
		atKill = committedTotal(t, c.Bootstrap, group, raw)
		return atKill >= int64(first)/4, fmt.Sprint(atKill)
	})
	p.Kill()
	t.Logf("killed the worker with %d of %d produced frames committed", atKill, first)
	if atKill >= int64(first) {
		t.Logf("the worker had consumed the whole first part before the kill")
	}
	produceFrames(t, c.Bootstrap, raw, parts, 0.6, 1)
	p2 := c.StartProcess(nil)
	sluicetest.WaitState(t, p2.URL, name, api.StateRunning, 1)
	waitConsumed(t, c.Bootstrap, group, raw, 3*time.Minute)
	if !strings.Contains(p2.Log.String(), "window state restored") {
		t.Errorf("the restarted task did not restore windows from the changelog:\n%s", p2.Log.String())
	}
	n := checkOutput(t, readCommitted(t, c.Bootstrap, out), want)
	if got := len(readCommitted(t, c.Bootstrap, late)); got != counts.tooLate {
		t.Errorf("late topic has %d frames, want %d", got, counts.tooLate)
	}
	t.Logf("%d output records for %d windows", n, len(want))
}

// TestGlobalPartitioningPerPlace aggregates per place, a key that spans devices, with one
// task holding one state (partitioning=global), and compares with the independent
// computation. The raw topic has one partition here so that the order, and so the watermark,
// is known to the test.
func TestGlobalPartitioningPerPlace(t *testing.T) {
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	raw, out, late := sluicetest.UniqueName("raw"), sluicetest.UniqueName("agg"), sluicetest.UniqueName("late")
	sluicetest.CreateTopic(t, c.Bootstrap, raw, 1)
	parts := generate(6, 120, baseTime())
	var merged []genFrame // the partitions' frames interleaved into one partition
	for i := 0; ; i++ {
		more := false
		for _, p := range parts {
			if i < len(p) {
				merged = append(merged, p[i])
				more = true
			}
		}
		if !more {
			break
		}
	}
	one := [][]genFrame{merged}
	want, counts := simulate(one, "place_id")
	if counts.lateAccepted == 0 || counts.tooLate == 0 || counts.dupes == 0 {
		t.Fatalf("the generated stream lacks a kind of frame: %+v", counts)
	}
	produceFrames(t, c.Bootstrap, raw, one, 0, 1)
	name := sluicetest.UniqueName("agg")
	cfg := aggregateConfig(c.Bootstrap, raw, out, late)
	cfg["group.by"], cfg["partitioning"], cfg["tasks.max"], cfg["commit.max.records"] = "place_id", "global", "3", "5"
	sluicetest.CreateConnector(t, w.URL, name, cfg)
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	group := "sluice-aggregate-" + name
	c2, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	sluicetest.Eventually(t, 2*time.Minute, "the whole raw topic committed", func() (bool, string) {
		_, hi, err := c2.QueryWatermarkOffsets(raw, 0, 5000)
		got, cerr := c2.Committed([]kafka.TopicPartition{{Topic: &raw, Partition: 0}}, 5000)
		if err != nil || cerr != nil {
			return false, fmt.Sprint(err, cerr)
		}
		return int64(got[0].Offset) == hi, fmt.Sprintf("%v of %d", got[0].Offset, hi)
	})
	n := checkOutput(t, readCommitted(t, c.Bootstrap, out), want)
	if got := len(readCommitted(t, c.Bootstrap, late)); got != counts.tooLate {
		t.Errorf("late topic has %d frames, want %d", got, counts.tooLate)
	}
	t.Logf("stream %+v: %d output records for %d place windows", counts, n, len(want))
}
