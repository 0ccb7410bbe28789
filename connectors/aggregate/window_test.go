package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
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
		if got, err := a.add(0, 0, f); got != s.want {
			t.Fatalf("step %d (%s at %d): verdict %d (%v), want %d", i, s.group, s.time, got, err, s.want)
		}
		if got := describe(a.advance(0)); !slices.Equal(got, s.emits) {
			t.Fatalf("step %d (%s at %d): emitted %v, want %v", i, s.group, s.time, got, s.emits)
		}
	}
	return a
}

func testFrame(group string, time int64, id string, v float64) *frame {
	g := []any{group}
	key, err := groupKeyOf(g)
	if err != nil {
		panic(err)
	}
	return &frame{group: g, groupKey: key, time: time, id: id, hasID: id != "", values: map[string]float64{"v": v}}
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
		if _, err := a.add(0, 0, testFrame("a", tm, "", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := describe(a.advance(0)); !slices.Equal(got, []string{"a@0#0:1"}) {
		t.Errorf("emitted %v", got)
	}
	// watermark 20 closes window 5 (5..15) and 10 (10..20)
	if _, err := a.add(0, 0, testFrame("a", 20, "", 1)); err != nil {
		t.Fatal(err)
	}
	if got := describe(a.advance(0)); !slices.Equal(got, []string{"a@5#0:2", "a@10#0:1"}) {
		t.Errorf("emitted %v", got)
	}
	// A frame at 16 is too late for window 10 (closed, no lateness) but still fits window 15.
	if v, _ := a.add(0, 0, testFrame("a", 16, "", 1)); v != accepted {
		t.Errorf("frame at 16: %d", v)
	}
	if v, _ := a.add(0, 0, testFrame("a", 14, "", 1)); v != tooLate {
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
		if _, err := orig.add(0, 0, f); err != nil {
			t.Fatal(err)
		}
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
		if v, _ := agg.add(0, 0, testFrame("a", 5, "2", 1)); v != duplicate {
			t.Errorf("duplicate id after restore: %d", v)
		}
		if v, _ := agg.add(0, 0, testFrame("a", 6, "5", 6)); v != accepted {
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

// TestStateLimits: frames the window state cannot take, or that a limit turns away, are
// rejected with an error naming the field and value, and leave the state as it was.
func TestStateLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   windowSpec
		before []*frame
		poison *frame
		want   verdict
		field  string
		reason string
	}{
		{"sum overflows", windowSpec{}, []*frame{testFrame("a", 1, "1", math.MaxFloat64)}, testFrame("a", 2, "2", math.MaxFloat64),
			rejected, "v", "overflow to infinity"},
		{"negative sum overflows", windowSpec{}, []*frame{testFrame("a", 1, "1", -math.MaxFloat64)}, testFrame("a", 2, "2", -math.MaxFloat64),
			rejected, "v", "overflow to infinity"},
		{"dedupe.max.ids", windowSpec{maxIDs: 2}, []*frame{testFrame("a", 1, "1", 1), testFrame("a", 2, "2", 1)}, testFrame("a", 3, "3", 1),
			rejected, "frame_id", "already keeps 2 event ids, the most dedupe.max.ids allows"},
		{"id bytes", windowSpec{}, []*frame{testFrame("a", 1, strings.Repeat("x", maxIDBytes/2), 1)}, testFrame("a", 2, strings.Repeat("y", maxIDBytes/2), 1),
			rejected, "frame_id", "would take more than 800000 bytes"},
		{"one huge id", windowSpec{}, nil, testFrame("a", 2, strings.Repeat("y", maxIDBytes), 1),
			rejected, "frame_id", "an event id may take at most"},
		{"window.max.open", windowSpec{maxOpen: 2}, []*frame{testFrame("a", 1, "1", 1), testFrame("b", 2, "2", 1)}, testFrame("c", 3, "3", 1),
			noRoom, "device_id", `"c": opening a window at 1970-01-01T00:00:00.000Z for it would exceed window.max.open`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := windowSpec{size: 10, advance: 10, outOfOrder: 2, lateness: 5, fields: []string{"v"}, dedupe: true,
				idField: "frame_id", groupBy: []string{"device_id"}, maxIDs: tc.spec.maxIDs, maxOpen: tc.spec.maxOpen}
			a := newAggregator(spec)
			for _, f := range tc.before {
				if v, err := a.add(0, 0, f); v != accepted {
					t.Fatalf("frame %s before: %d %v", f.id, v, err)
				}
			}
			v, err := a.add(0, 0, tc.poison)
			var de *connect.DataError
			if v != tc.want || !errors.As(err, &de) || de.Field != tc.field || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("add = %d, %v; want %d naming %s, saying %s", v, err, tc.want, tc.field, tc.reason)
			}
			// The state is as before: each window has its frames only and encodes.
			n := int64(0)
			for _, w := range a.scopes[0].windows {
				n += w.Frames
				if _, err := json.Marshal(w); err != nil {
					t.Errorf("window %s: %v", w.groupKey, err)
				}
				if w.hasID(tc.poison.id) {
					t.Errorf("window %s holds the rejected frame's id", w.groupKey)
				}
			}
			if n != int64(len(tc.before)) {
				t.Errorf("windows hold %d frames, want %d", n, len(tc.before))
			}
		})
	}
}

// TestMaxOpenMakesRoom: a frame that would open a window beyond window.max.open first makes
// the windows its time expires emit and go; frames turned away still move the watermark.
func TestMaxOpenMakesRoom(t *testing.T) {
	spec := windowSpec{size: 10, advance: 10, outOfOrder: 2, lateness: 5, fields: []string{"v"}, groupBy: []string{"device_id"}, maxOpen: 2}
	a := newAggregator(spec)
	mustAdd := func(f *frame, want verdict) {
		t.Helper()
		if v, err := a.add(0, 0, f); v != want {
			t.Fatalf("%s at %d: %d (%v), want %d", f.groupKey, f.time, v, err, want)
		}
	}
	mustAdd(testFrame("a", 1, "", 1), accepted)
	mustAdd(testFrame("b", 2, "", 2), accepted)
	mustAdd(testFrame("c", 3, "", 3), noRoom)
	// Watermark 10: window 0 closes, so making room emits it as it is then (a has 1 frame),
	// but it is not expired.
	mustAdd(testFrame("c", 12, "", 3), noRoom)
	mustAdd(testFrame("a", 4, "", 4), accepted)  // a late frame within the lateness
	mustAdd(testFrame("c", 17, "", 5), accepted) // watermark 15 expires window 0: a emitted again, both dropped
	if got, want := describe(a.advance(0)), []string{"a@0#0:1", "b@0#0:1", "a@0#1:2"}; !slices.Equal(got, want) {
		t.Errorf("emitted %v, want %v", got, want)
	}
	_, deletes, _ := a.changes(0)
	if len(deletes) != 2 {
		t.Errorf("changelog deletes %v, want the two dropped windows", deletes)
	}
	mustAdd(testFrame("d", 18, "", 1), accepted)
	mustAdd(testFrame("e", 19, "", 1), noRoom)
}

// TestRestoreResetsFutureWatermark: a changelog whose watermark is far in the future (written
// before event.time.max.future existed) does not make every later frame too late.
func TestRestoreResetsFutureWatermark(t *testing.T) {
	spec := windowSpec{size: 10_000, advance: 10_000, outOfOrder: 2000, lateness: 5000, fields: []string{"v"}}
	task := &Task{agg: newAggregator(spec), parser: parser{maxFuture: 60_000}, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	now := time.Now().UnixMilli()
	future, _ := json.Marshal(&partState{Seen: true, MaxTime: now + 365*24*3600*1000})
	if err := task.apply(0, []byte("p|0"), future); err != nil {
		t.Fatal(err)
	}
	if v, err := task.agg.add(0, 0, testFrame("a", now, "", 1)); v != accepted {
		t.Errorf("a frame of now after restoring a future watermark: %d %v", v, err)
	}
	if _, _, parts := task.agg.changes(0); len(parts) != 1 || parts[0].MaxTime > now+60_000 {
		t.Errorf("the reset watermark is not written back: %+v", parts)
	}
}
