package aggregate

import (
	"math"
	"slices"
	"strings"
)

// This file is the window logic, free of Kafka: frames go in per source partition, window
// results and state changes come out. Times are milliseconds since the epoch.

// windowSpec is the part of the configuration the window logic needs.
type windowSpec struct {
	size, advance int64 // advance == size for tumbling windows
	outOfOrder    int64
	lateness      int64
	fields        []string
	dedupe        bool
	emitEarly     bool
}

// frame is one parsed raw frame.
type frame struct {
	group    []any  // the group key's values, in group.by order
	groupKey string // canonical JSON of group
	time     int64
	id       string
	hasID    bool
	values   map[string]float64 // value field -> value, only for numeric fields present
}

// verdict says what became of a frame.
type verdict int

const (
	accepted verdict = iota
	duplicate
	tooLate
)

// winKey names a window within a scope.
type winKey struct {
	group string
	start int64
}

// fieldAgg is the running aggregate of one value field in one window.
type fieldAgg struct {
	N      int64   `json:"n"`
	Sum    float64 `json:"sum"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	First  float64 `json:"first"`
	FirstT int64   `json:"first_t"`
	Last   float64 `json:"last"`
	LastT  int64   `json:"last_t"`
}

func (a *fieldAgg) add(v float64, t int64) {
	if a.N == 0 {
		*a = fieldAgg{N: 1, Sum: v, Min: v, Max: v, First: v, FirstT: t, Last: v, LastT: t}
		return
	}
	a.N++
	a.Sum += v
	a.Min = math.Min(a.Min, v)
	a.Max = math.Max(a.Max, v)
	if t < a.FirstT {
		a.First, a.FirstT = v, t
	}
	if t >= a.LastT {
		a.Last, a.LastT = v, t
	}
}

// window is one open window of one group key. Its exported fields are what the changelog
// stores.
type window struct {
	Group    []any                `json:"g"`
	Start    int64                `json:"s"`
	End      int64                `json:"e"`
	Frames   int64                `json:"n"`
	Fields   map[string]*fieldAgg `json:"f"`
	IDs      []string             `json:"ids,omitempty"`
	Revision int                  `json:"r"` // emissions so far; the next one has this revision
	Dirty    bool                 `json:"d"` // changed since last emitted

	groupKey string
	ids      map[string]struct{}
}

func (w *window) hasID(id string) bool {
	if w.ids == nil && len(w.IDs) > 0 {
		w.ids = make(map[string]struct{}, len(w.IDs))
		for _, x := range w.IDs {
			w.ids[x] = struct{}{}
		}
	}
	_, ok := w.ids[id]
	return ok
}

func (w *window) addID(id string) {
	w.hasID(id) // builds the set from IDs when restored
	if w.ids == nil {
		w.ids = map[string]struct{}{}
	}
	w.ids[id] = struct{}{}
	w.IDs = append(w.IDs, id)
}

// partState is what the window logic keeps per source partition; the changelog stores it.
type partState struct {
	Seen      bool  `json:"seen"`
	MaxTime   int64 `json:"max"`
	Late      int64 `json:"late"`
	Dupes     int64 `json:"dupes"`
	Accepted  int64 `json:"accepted"`
	changed   bool
	partition int32
}

// scope is a unit of window state: one source partition (aligned) or all of them (global).
type scope struct {
	windows map[winKey]*window
	parts   map[int32]*partState
	changed map[winKey]bool // windows to write to the changelog: true = put, false = delete
}

func newScope() *scope {
	return &scope{windows: map[winKey]*window{}, parts: map[int32]*partState{}, changed: map[winKey]bool{}}
}

// watermark is the least watermark of the scope's partitions that have seen frames.
func (s *scope) watermark(spec *windowSpec) (int64, bool) {
	wm, ok := int64(math.MaxInt64), false
	for _, p := range s.parts {
		if p.Seen {
			wm, ok = min(wm, p.MaxTime-spec.outOfOrder), true
		}
	}
	return wm, ok
}

// emission is one window result to write.
type emission struct {
	w        *window
	final    bool // the watermark passed the window's end
	revision int  // 0 for a window's first emission, then 1, 2, ...
}

// aggregator holds the window state of a task's scopes.
type aggregator struct {
	spec   windowSpec
	scopes map[int32]*scope
}

func newAggregator(spec windowSpec) *aggregator {
	return &aggregator{spec: spec, scopes: map[int32]*scope{}}
}

func (a *aggregator) scope(id int32) *scope {
	s := a.scopes[id]
	if s == nil {
		s = newScope()
		a.scopes[id] = s
	}
	return s
}

func (a *aggregator) part(s *scope, partition int32) *partState {
	p := s.parts[partition]
	if p == nil {
		p = &partState{partition: partition}
		s.parts[partition] = p
	}
	return p
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// windowStarts returns the starts of the windows holding time t, latest first.
func (spec *windowSpec) windowStarts(t int64) []int64 {
	var out []int64
	for start := floorDiv(t, spec.advance) * spec.advance; start > t-spec.size; start -= spec.advance {
		out = append(out, start)
	}
	return out
}

// add takes a frame read from a source partition into the scope's windows. The frame is
// judged against the watermark before it: a window whose allowed lateness has passed takes
// no more frames, and a frame none of whose windows takes it is too late.
func (a *aggregator) add(scopeID, partition int32, f *frame) verdict {
	s := a.scope(scopeID)
	p := a.part(s, partition)
	wm, haveWM := s.watermark(&a.spec)
	starts := a.spec.windowStarts(f.time)
	alive := starts[:0]
	for _, st := range starts {
		if !haveWM || st+a.spec.size+a.spec.lateness > wm {
			alive = append(alive, st)
		}
	}
	p.changed = true
	if len(alive) == 0 {
		p.Late++
		return tooLate
	}
	if a.spec.dedupe && f.hasID {
		for _, st := range alive {
			if w := s.windows[winKey{f.groupKey, st}]; w != nil && w.hasID(f.id) {
				p.Dupes++
				return duplicate
			}
		}
	}
	for _, st := range alive {
		k := winKey{f.groupKey, st}
		w := s.windows[k]
		if w == nil {
			w = &window{Group: f.group, Start: st, End: st + a.spec.size, Fields: map[string]*fieldAgg{}, groupKey: f.groupKey}
			s.windows[k] = w
		}
		w.Frames++
		for name, v := range f.values {
			fa := w.Fields[name]
			if fa == nil {
				fa = &fieldAgg{}
				w.Fields[name] = fa
			}
			fa.add(v, f.time)
		}
		if a.spec.dedupe && f.hasID {
			w.addID(f.id)
		}
		w.Dirty = true
		s.changed[k] = true
	}
	p.Accepted++
	if !p.Seen || f.time > p.MaxTime {
		p.Seen, p.MaxTime = true, f.time
	}
	return accepted
}

// advance returns the windows of a scope to emit now, in order of window start and group
// key, and drops the windows whose allowed lateness the watermark has passed. A window is
// emitted when the watermark reaches its end, and again after every change while its
// allowed lateness lasts (and, with emitEarly, after every change while it is open).
func (a *aggregator) advance(scopeID int32) []emission {
	s := a.scopes[scopeID]
	if s == nil {
		return nil
	}
	wm, ok := s.watermark(&a.spec)
	var out []emission
	for k, w := range s.windows {
		closed := ok && w.End <= wm
		if w.Dirty && (closed || a.spec.emitEarly) {
			out = append(out, emission{w: w, final: closed})
		}
		if ok && w.End+a.spec.lateness <= wm {
			delete(s.windows, k)
			s.changed[k] = false
		}
	}
	slices.SortFunc(out, func(x, y emission) int {
		if x.w.Start != y.w.Start {
			return cmpInt(x.w.Start, y.w.Start)
		}
		return strings.Compare(x.w.groupKey, y.w.groupKey)
	})
	for i := range out {
		e := &out[i]
		e.revision = e.w.Revision
		e.w.Dirty = false
		e.w.Revision++
		if k := (winKey{e.w.groupKey, e.w.Start}); s.windows[k] != nil {
			s.changed[k] = true
		}
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// changes returns and forgets what changed in a scope since the last call: windows to put,
// keys of windows to delete, and partition states to put.
func (a *aggregator) changes(scopeID int32) (puts []*window, deletes []winKey, parts []*partState) {
	s := a.scopes[scopeID]
	if s == nil {
		return nil, nil, nil
	}
	for k, put := range s.changed {
		if w := s.windows[k]; put && w != nil {
			puts = append(puts, w)
		} else {
			deletes = append(deletes, k)
		}
	}
	clear(s.changed)
	for _, p := range s.parts {
		if p.changed {
			parts = append(parts, p)
			p.changed = false
		}
	}
	return puts, deletes, parts
}

// restoreWindow puts a window read back from the changelog.
func (a *aggregator) restoreWindow(scopeID int32, w *window) {
	w.groupKey = groupKeyOf(w.Group)
	w.ids = nil
	if w.Fields == nil {
		w.Fields = map[string]*fieldAgg{}
	}
	a.scope(scopeID).windows[winKey{w.groupKey, w.Start}] = w
}

// restorePart puts a partition state read back from the changelog.
func (a *aggregator) restorePart(scopeID, partition int32, p *partState) {
	p.partition, p.changed = partition, false
	a.scope(scopeID).parts[partition] = p
}

// deleteWindow removes a window whose tombstone the changelog holds.
func (a *aggregator) deleteWindow(scopeID int32, k winKey) {
	if s := a.scopes[scopeID]; s != nil {
		delete(s.windows, k)
	}
}

// drop forgets all state of a scope.
func (a *aggregator) drop(scopeID int32) { delete(a.scopes, scopeID) }

// reset forgets all state.
func (a *aggregator) reset() { clear(a.scopes) }
