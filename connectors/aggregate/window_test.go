package aggregate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestWindowStarts(t *testing.T) {
	for _, tc := range []struct {
		size, advance, t int64
		want             []int64
	}{
		{10, 10, 0, []int64{0}},
		{10, 10, 9, []int64{0}},
		{10, 10, 10, []int64{10}},
		{10, 10, -1, []int64{-10}},
		{10, 5, 12, []int64{10, 5}},
		{10, 5, 10, []int64{10, 5}},
		{10, 5, 9, []int64{5, 0}},
		{30, 10, 25, []int64{20, 10, 0}},
		{10, 3, 10, []int64{9, 6, 3}},
	} {
		spec := windowSpec{size: tc.size, advance: tc.advance}
		if got := spec.windowStarts(tc.t); !slices.Equal(got, tc.want) {
			t.Errorf("size %d advance %d: windowStarts(%d) = %v, want %v", tc.size, tc.advance, tc.t, got, tc.want)
		}
	}
}

// step is one frame in and what the aggregator then emits, as "group@start#revision:frames"
// (with "~" for a window that is not final).
type step struct {
	group string
	time  int64
	id    string
	v     float64
	want  verdict
	emits []string
}

func runSteps(t *testing.T, spec windowSpec, steps []step) *aggregator {
	t.Helper()
	a := newAggregator(spec)
	for i, s := range steps {
		f := testFrame(s.group, s.time, s.id, s.v)
		if got := a.add(0, 0, f); got != s.want {
			t.Fatalf("step %d (%s at %d): verdict %d, want %d", i, s.group, s.time, got, s.want)
		}
		if got := describe(a.advance(0)); !slices.Equal(got, s.emits) {
			t.Fatalf("step %d (%s at %d): emitted %v, want %v", i, s.group, s.time, got, s.emits)
		}
	}
	return a
}

func testFrame(group string, time int64, id string, v float64) *frame {
	g := []any{group}
	return &frame{group: g, groupKey: groupKeyOf(g), time: time, id: id, hasID: id != "", values: map[string]float64{"v": v}}
}

func describe(ems []emission) []string {
	var out []string
	for _, e := range ems {
		s := fmt.Sprintf("%v@%d#%d:%d", e.w.Group[0], e.w.Start, e.revision, e.w.Frames)
		if !e.final {
			s += "~"
		}
		out = append(out, s)
	}
	return out
}

func TestTumblingWatermarkLatenessAndDuplicates(t *testing.T) {
	// Windows of 10, watermark 2 behind the greatest time, lateness 5.
	spec := windowSpec{size: 10, advance: 10, outOfOrder: 2, lateness: 5, fields: []string{"v"}, dedupe: true}
	runSteps(t, spec, []step{
		{"a", 1, "1", 1, accepted, nil},
		{"b", 5, "2", 1, accepted, nil},
		{"a", 11, "3", 1, accepted, nil},                            // watermark 9: window 0 still open
		{"a", 8, "4", 1, accepted, nil},                             // out of order, within the bound
		{"a", 12, "5", 1, accepted, []string{"a@0#0:2", "b@0#0:1"}}, // watermark 10 closes window 0
		{"a", 3, "6", 1, accepted, []string{"a@0#1:3"}},             // late within lateness: re-emitted
		{"a", 3, "6", 1, duplicate, nil},                            // same id: dropped
		{"a", 4, "1", 1, duplicate, nil},                            // id 1 was counted in window 0
		{"a", 17, "7", 1, accepted, nil},                            // watermark 15: window 0 dropped
		{"b", 2, "8", 1, tooLate, nil},
		{"a", 9, "9", 1, tooLate, nil},
		{"c", 13, "10", 1, accepted, nil}, // a new key in an open window
		{"a", 30, "11", 1, accepted, []string{"a@10#0:3", "c@10#0:1"}},
	})
}

func TestHoppingWindows(t *testing.T) {
	spec := windowSpec{size: 10, advance: 5, outOfOrder: 0, lateness: 0, fields: []string{"v"}}
	runSteps(t, spec, []step{
		{"a", 7, "", 1, accepted, nil},                  // windows 0 and 5
		{"a", 12, "", 1, accepted, []string{"a@0#0:1"}}, // windows 5 and 10; watermark 12 closes window 0
	})
	a := newAggregator(spec)
	for _, tm := range []int64{7, 12} {
		a.add(0, 0, testFrame("a", tm, "", 1))
	}
	if got := describe(a.advance(0)); !slices.Equal(got, []string{"a@0#0:1"}) {
		t.Errorf("emitted %v", got)
	}
	a.add(0, 0, testFrame("a", 20, "", 1)) // watermark 20 closes window 5 (5..15) and 10 (10..20)
	if got := describe(a.advance(0)); !slices.Equal(got, []string{"a@5#0:2", "a@10#0:1"}) {
		t.Errorf("emitted %v", got)
	}
	// A frame at 16 is too late for window 10 (closed, no lateness) but still fits window 15.
	if v := a.add(0, 0, testFrame("a", 16, "", 1)); v != accepted {
		t.Errorf("frame at 16: %d", v)
	}
	if v := a.add(0, 0, testFrame("a", 14, "", 1)); v != tooLate {
		t.Errorf("frame at 14 (windows 5 and 10, both closed): %d", v)
	}
}

func TestEmitEarly(t *testing.T) {
	spec := windowSpec{size: 10, advance: 10, fields: []string{"v"}, emitEarly: true}
	runSteps(t, spec, []step{
		{"a", 1, "", 1, accepted, []string{"a@0#0:1~"}},
		{"a", 2, "", 1, accepted, []string{"a@0#1:2~"}},
		{"a", 10, "", 1, accepted, []string{"a@10#0:1~"}}, // window 0 closed, unchanged: dropped unemitted again
	})
}

func TestFieldAggregates(t *testing.T) {
	var fa fieldAgg
	for _, x := range []struct {
		v float64
		t int64
	}{{5, 10}, {1, 30}, {9, 20}, {7, 10}, {3, 30}} {
		fa.add(x.v, x.t)
	}
	want := map[string]float64{AggCount: 5, AggMin: 1, AggMax: 9, AggSum: 25, AggAvg: 5, AggFirst: 5, AggLast: 3}
	for agg, w := range want {
		if got, ok := aggValue(&fa, agg); !ok || got != w {
			t.Errorf("%s = %v %v, want %v", agg, got, ok, w)
		}
	}
	if _, ok := aggValue(nil, AggAvg); ok {
		t.Error("avg of no values has a value")
	}
	if v, ok := aggValue(nil, AggCount); !ok || v != 0 {
		t.Error("count of no values is not 0")
	}
}

// TestChangelogRoundTrip restores state from what changes() returned, as the changelog would
// hold it, and checks the restored aggregator behaves as the original.
func TestChangelogRoundTrip(t *testing.T) {
	spec := windowSpec{size: 10, advance: 10, outOfOrder: 2, lateness: 5, fields: []string{"v"}, dedupe: true}
	orig := newAggregator(spec)
	log := map[string][]byte{}
	persist := func() {
		puts, dels, parts := orig.changes(0)
		for _, w := range puts {
			b, _ := json.Marshal(w)
			log[string(windowChangelogKey(winKey{w.groupKey, w.Start}))] = b
		}
		for _, k := range dels {
			log[string(windowChangelogKey(k))] = nil
		}
		for _, p := range parts {
			b, _ := json.Marshal(p)
			log[fmt.Sprintf("p|%d", p.partition)] = b
		}
	}
	for _, f := range []*frame{testFrame("a", 1, "1", 2), testFrame("a", 4, "2", 4), testFrame("b", 12, "3", 1), testFrame("a", 13, "4", 1)} {
		orig.add(0, 0, f)
	}
	orig.advance(0)
	persist()
	restored := &Task{agg: newAggregator(spec)}
	keys := make([]string, 0, len(log))
	for k := range log {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := restored.apply(0, []byte(k), log[k]); err != nil {
			t.Fatal(err)
		}
	}
	for _, agg := range []*aggregator{orig, restored.agg} {
		if v := agg.add(0, 0, testFrame("a", 5, "2", 1)); v != duplicate {
			t.Errorf("duplicate id after restore: %d", v)
		}
		if v := agg.add(0, 0, testFrame("a", 6, "5", 6)); v != accepted {
			t.Errorf("late frame: %d", v)
		}
	}
	got, want := describe(restored.agg.advance(0)), describe(orig.advance(0))
	if !slices.Equal(got, want) || len(want) != 1 || !strings.HasPrefix(want[0], "a@0#1:3") {
		t.Errorf("restored emits %v, original %v", got, want)
	}
	if g, w := restored.agg.scopes[0].windows[winKey{`["a"]`, 0}].Fields["v"].Sum, 12.0; g != w {
		t.Errorf("restored sum %v, want %v", g, w)
	}
}
