package e2e

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/simulate"
)

// This file computes, from what the simulator says it sent and nothing else, what every store
// must hold. It re-implements the parts of the aggregate connector's semantics the test relies
// on (see the aggregation settings in pipeline_test.go), independently of its code:
//
//   - Windows are tumbling, aligned to the epoch: [k*windowSize, (k+1)*windowSize), by the
//     frame's event time "ts" truncated to milliseconds.
//   - Duplicates (the same frame_id again: the simulator's duplicates, and MQTT redeliveries
//     after a killed worker) are dropped by dedupe.field=frame_id while the window that counted
//     the first copy is alive, which is always the case here: copies follow the original
//     within seconds, windows live allowedLateness past the watermark. So each distinct
//     frame_id counts once.
//   - A frame is too late when every window of it is past its allowed lateness at the
//     watermark (greatest event time seen in the partition, or the least over partitions for
//     global partitioning, minus watermarkOutOfOrder). The simulator's "late" frames are LateBy
//     (10 minutes) in the past, far beyond window size + lateness, so they are always too
//     late; every other frame is at most a few seconds behind the newest, well within the
//     lateness, so it always counts. checkPredictable verifies both margins on the frames
//     actually sent, and that no partition can start with a late frame (a partition without
//     a watermark takes any frame), so the expectation does not depend on arrival order.
//   - first and last are the values at the earliest and latest event time; on a tie the
//     connector takes the earlier or later arrival, so every tied value is accepted.
//   - A window is emitted (final) once the watermark passes its end, and again when a late
//     frame changes it; the stores upsert by window, so they hold the latest revision.

// Aggregation settings shared by the connectors' configs and the expectation.
const (
	windowSize          = 5 * time.Second
	watermarkOutOfOrder = 5 * time.Second
	allowedLateness     = 60 * time.Second
)

// valueFields are the aggregated fields (the aggregate connector's default value.fields).
var valueFields = []string{"temperature", "humidity", "pressure", "luminosity"}

func fieldValue(f simulate.Frame, name string) float64 {
	switch name {
	case "temperature":
		return f.Temperature
	case "humidity":
		return f.Humidity
	case "pressure":
		return f.Pressure
	case "luminosity":
		return f.Luminosity
	}
	panic("unknown field " + name)
}

// expField is the expected aggregate of one value field in one window.
type expField struct {
	n                   int
	sum, min, max       float64
	firstT, lastT       int64
	firstVals, lastVals []float64 // the values at firstT and lastT (several on a tie)
}

func (a *expField) add(v float64, t int64) {
	if a.n == 0 {
		*a = expField{n: 1, sum: v, min: v, max: v, firstT: t, lastT: t, firstVals: []float64{v}, lastVals: []float64{v}}
		return
	}
	a.n++
	a.sum += v
	a.min, a.max = math.Min(a.min, v), math.Max(a.max, v)
	switch {
	case t < a.firstT:
		a.firstT, a.firstVals = t, []float64{v}
	case t == a.firstT:
		a.firstVals = append(a.firstVals, v)
	}
	switch {
	case t > a.lastT:
		a.lastT, a.lastVals = t, []float64{v}
	case t == a.lastT:
		a.lastVals = append(a.lastVals, v)
	}
}

// expWindow is one expected window result.
type expWindow struct {
	group  string
	start  int64 // ms
	frames int
	fields map[string]*expField
}

func (w *expWindow) end() int64 { return w.start + windowSize.Milliseconds() }

// windowID names a window: group value and start in ms.
func windowID(group string, start int64) string { return fmt.Sprintf("%s@%d", group, start) }

// expectation is what the stores must hold after a run.
type expectation struct {
	sent      []simulate.Sent
	frames    map[string]simulate.Frame // distinct frame_id -> the frame
	sendCount map[string]int            // frame_id -> how often the simulator sent it
	malformed map[string]int            // malformed payload -> how often it was sent
	late      map[string]bool           // frame_ids the aggregates must find too late
	last      map[string]simulate.Frame // device -> the last frame it sent (arrival order)
	devMax    map[string]int64          // device -> its greatest accepted event time, ms
	byDevice  map[string]*expWindow     // windowID -> window, grouped by device_id
	byPlace   map[string]*expWindow     // windowID -> window, grouped by place_id
	kinds     map[string]int
}

func windowStart(ms int64) int64 {
	size := windowSize.Milliseconds()
	return ms / size * size // event times are after 1970
}

func addTo(ws map[string]*expWindow, group string, f simulate.Frame) {
	t := f.Time.UnixMilli()
	id := windowID(group, windowStart(t))
	w := ws[id]
	if w == nil {
		w = &expWindow{group: group, start: windowStart(t), fields: map[string]*expField{}}
		ws[id] = w
	}
	w.frames++
	for _, name := range valueFields {
		a := w.fields[name]
		if a == nil {
			a = &expField{}
			w.fields[name] = a
		}
		a.add(fieldValue(f, name), t)
	}
}

// expect computes the expectation from the frames sent, in the order they were sent.
func expect(t *testing.T, sent []simulate.Sent) *expectation {
	t.Helper()
	e := &expectation{sent: sent, frames: map[string]simulate.Frame{}, sendCount: map[string]int{}, malformed: map[string]int{},
		late: map[string]bool{}, last: map[string]simulate.Frame{}, devMax: map[string]int64{},
		byDevice: map[string]*expWindow{}, byPlace: map[string]*expWindow{}, kinds: map[string]int{}}
	checkPredictable(t, sent)
	for _, s := range sent {
		e.kinds[s.Kind]++
		if s.Kind == simulate.KindMalformed {
			e.malformed[string(s.Payload)]++
			continue
		}
		f := s.Frame
		e.sendCount[f.FrameID]++
		e.last[f.DeviceID] = f
		if _, seen := e.frames[f.FrameID]; seen {
			continue // a duplicate: dropped by dedupe.field, and a keyed upsert in the stores
		}
		e.frames[f.FrameID] = f
		if s.Kind == simulate.KindLate {
			e.late[f.FrameID] = true
			continue
		}
		e.devMax[f.DeviceID] = max(e.devMax[f.DeviceID], f.Time.UnixMilli())
		addTo(e.byDevice, f.DeviceID, f)
		addTo(e.byPlace, f.PlaceID, f)
	}
	return e
}

// checkPredictable fails the test when the frames sent are ones whose verdict in the
// aggregates would depend on arrival order (see the top of this file).
func checkPredictable(t *testing.T, sent []simulate.Sent) {
	t.Helper()
	var newest int64
	firstOfDevice, lateIDs := map[string]bool{}, map[string]bool{}
	for i, s := range sent {
		if s.Kind == simulate.KindMalformed {
			continue
		}
		f := s.Frame
		ts := f.Time.UnixMilli()
		if !firstOfDevice[f.DeviceID] {
			firstOfDevice[f.DeviceID] = true
			if s.Kind == simulate.KindLate {
				t.Fatalf("frame %d (%s), the first of its device, is late: a partition could start with it, and the aggregates would "+
					"then depend on arrival order; change the simulator seed", i, f.FrameID)
			}
		}
		lag := time.Duration(newest-ts) * time.Millisecond
		// A duplicate is a copy of its device's previous frame, late or not.
		late := s.Kind == simulate.KindLate || (s.Kind == simulate.KindDuplicate && lateIDs[f.FrameID])
		if late {
			lateIDs[f.FrameID] = true
			if lag < 2*(windowSize+allowedLateness+watermarkOutOfOrder) {
				t.Fatalf("late frame %s is only %v behind the newest: its verdict would depend on timing", f.FrameID, lag)
			}
			continue
		}
		if lag > allowedLateness/2 {
			t.Fatalf("frame %s (%s) is %v behind the newest: too close to the allowed lateness for a predictable verdict", f.FrameID, s.Kind, lag)
		}
		newest = max(newest, ts)
	}
}

// requiredDeviceWindows are the per-device windows the watermark has closed for certain:
// a partition's watermark is at least the greatest event time of any of its devices minus the
// out-of-order bound.
func (e *expectation) requiredDeviceWindows() map[string]*expWindow {
	out := map[string]*expWindow{}
	for id, w := range e.byDevice {
		if w.end() <= e.devMax[w.group]-watermarkOutOfOrder.Milliseconds() {
			out[id] = w
		}
	}
	return out
}

// requiredPlaceWindows are the per-place windows closed for certain: the global watermark is
// the least partition watermark, at least the least device's greatest time minus the bound.
func (e *expectation) requiredPlaceWindows() map[string]*expWindow {
	least := int64(math.MaxInt64)
	for _, m := range e.devMax {
		least = min(least, m)
	}
	out := map[string]*expWindow{}
	for id, w := range e.byPlace {
		if w.end() <= least-watermarkOutOfOrder.Milliseconds() {
			out[id] = w
		}
	}
	return out
}

// gotWindow is a window result as a store holds it: group, start, and the value fields by
// name (numbers as float64, booleans as bool).
type gotWindow struct {
	group  string
	start  int64
	values map[string]any
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// diff compares a stored window with the expected one; it returns what differs.
func (w *expWindow) diff(g gotWindow) []string {
	var out []string
	check := func(name string, ok func(float64) bool, want any) {
		v, isNum := num(g.values[name])
		if !isNum || !ok(v) {
			out = append(out, fmt.Sprintf("%s=%v want %v", name, g.values[name], want))
		}
	}
	check("frames", func(v float64) bool { return v == float64(w.frames) }, w.frames)
	if g.values["final"] != true {
		out = append(out, fmt.Sprintf("final=%v", g.values["final"]))
	}
	for _, name := range valueFields {
		a := w.fields[name]
		check(name+"_count", func(v float64) bool { return v == float64(a.n) }, a.n)
		check(name+"_sum", func(v float64) bool { return near(v, a.sum) }, a.sum)
		check(name+"_avg", func(v float64) bool { return near(v, a.sum/float64(a.n)) }, a.sum/float64(a.n))
		check(name+"_min", func(v float64) bool { return v == a.min }, a.min)
		check(name+"_max", func(v float64) bool { return v == a.max }, a.max)
		check(name+"_first", func(v float64) bool { return slices.Contains(a.firstVals, v) }, a.firstVals)
		check(name+"_last", func(v float64) bool { return slices.Contains(a.lastVals, v) }, a.lastVals)
	}
	return out
}

// compareWindows checks stored windows against the expectation: every required window is
// there, and every window there (required or not) is the expected one. It returns a summary
// of the problems, empty when there are none.
func compareWindows(kind string, got []gotWindow, all, required map[string]*expWindow) string {
	var problems []string
	seen := map[string]bool{}
	for _, g := range got {
		id := windowID(g.group, g.start)
		if seen[id] {
			problems = append(problems, id+": stored twice")
			continue
		}
		seen[id] = true
		w := all[id]
		if w == nil {
			problems = append(problems, id+": not expected at all")
			continue
		}
		if d := w.diff(g); len(d) > 0 {
			problems = append(problems, id+": "+strings.Join(d, ", "))
		}
	}
	var missing []string
	for id := range required {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d closed windows missing, e.g. %v", len(missing), len(required), missing[:min(5, len(missing))]))
	}
	if len(problems) == 0 {
		return ""
	}
	sort.Strings(problems)
	return fmt.Sprintf("%s: %d windows stored; %d problems: %s", kind, len(got), len(problems), strings.Join(problems[:min(8, len(problems))], "; "))
}
