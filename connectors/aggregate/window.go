package aggregate

import (
	"math"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/connect"
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
	idField       string // dedupe.field, for the messages
	groupBy       []string
	maxIDs        int // most event ids a window keeps (dedupe.max.ids); 0: no limit
	maxOpen       int // most open windows of all scopes (window.max.open); 0: no limit
}

// maxIDBytes bounds the JSON of the event ids a window keeps, whatever dedupe.max.ids says, so
// that a window's changelog record stays below Kafka's default limit of 1 MB a record.
const maxIDBytes = 800_000

// maxGroupKeyBytes bounds a group key's JSON, for the same reason (the group values are in the
// window's changelog record, its output key and value, and its metrics' labels).
const maxGroupKeyBytes = 4096

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
	rejected // the windows cannot take the frame (add returns why)
	noRoom   // the frame would open a window beyond window.max.open (add returns the error)
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
	idBytes  int // an upper bound of the JSON size of IDs
}

// indexIDs builds the set of ids from IDs (restored from the changelog) when it is missing.
func (w *window) indexIDs() {
	if w.ids != nil || len(w.IDs) == 0 {
		return
	}
	w.ids = make(map[string]struct{}, len(w.IDs))
	w.idBytes = 0
	for _, x := range w.IDs {
		w.ids[x] = struct{}{}
		w.idBytes += idJSONBytes(x)
	}
}

func (w *window) hasID(id string) bool {
	w.indexIDs()
	_, ok := w.ids[id]
	return ok
}

func (w *window) addID(id string) {
	w.indexIDs()
	if w.ids == nil {
		w.ids = map[string]struct{}{}
	}
	w.ids[id] = struct{}{}
	w.IDs = append(w.IDs, id)
	w.idBytes += idJSONBytes(id)
}

// idJSONBytes is an upper bound of the bytes id takes in the JSON array of a window's ids:
// quotes and comma, and six bytes (\u00XX) for each byte JSON may escape.
func idJSONBytes(id string) int {
	n := 3
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			n += 6
		} else {
			n++
		}
	}
	return n
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
	pending []emission      // emitted between transactions to make room (window.max.open)
	// The watermark at which room was last made, so that a full task does not look at all its
	// windows for every frame it turns away.
	roomWM   int64
	madeRoom bool
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
// no more frames, and a frame none of whose windows takes it is too late. A frame the windows
// cannot take is rejected, one that would open a window beyond window.max.open gets noRoom;
// the error then says why, naming the field and value.
func (a *aggregator) add(scopeID, partition int32, f *frame) (verdict, error) {
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
		return tooLate, nil
	}
	if a.spec.dedupe && f.hasID {
		for _, st := range alive {
			if w := s.windows[winKey{f.groupKey, st}]; w != nil && w.hasID(f.id) {
				p.Dupes++
				return duplicate, nil
			}
		}
	}
	// The frame's event time is good from here on, whatever becomes of the frame: it moves the
	// watermark, so that windows close and make room even while frames are turned away.
	if !p.Seen || f.time > p.MaxTime {
		p.Seen, p.MaxTime = true, f.time
	}
	if v, err := a.check(s, f, alive); err != nil {
		return v, err
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
	return accepted, nil
}

// check tells whether the windows starting at alive can take the frame, before any of them
// changes: no sum may overflow, no window may keep more event ids than its limits allow, and
// the task may not hold more open windows than window.max.open (windows the watermark has
// expired are emitted and dropped first to make room).
func (a *aggregator) check(s *scope, f *frame, alive []int64) (verdict, error) {
	opening := 0
	for _, st := range alive {
		w := s.windows[winKey{f.groupKey, st}]
		if w == nil {
			opening++
			continue
		}
		for name, v := range f.values {
			if fa := w.Fields[name]; fa != nil && fa.N > 0 && math.IsInf(fa.Sum+v, 0) {
				return rejected, connect.BadField(name, v, "adding it makes the sum of the window at %s of group %s overflow to infinity",
					formatTime(w.Start), w.groupKey)
			}
		}
		if a.spec.dedupe && f.hasID {
			w.indexIDs()
			if a.spec.maxIDs > 0 && len(w.IDs) >= a.spec.maxIDs {
				return rejected, connect.BadField(a.spec.idField, f.id, "the window at %s of group %s already keeps %d event ids, the most dedupe.max.ids allows",
					formatTime(w.Start), w.groupKey, len(w.IDs))
			}
			if w.idBytes+idJSONBytes(f.id) > maxIDBytes {
				return rejected, connect.BadField(a.spec.idField, f.id, "the event ids of the window at %s of group %s would take more than %d bytes in its changelog record",
					formatTime(w.Start), w.groupKey, maxIDBytes)
			}
		}
	}
	if a.spec.dedupe && f.hasID && idJSONBytes(f.id) > maxIDBytes {
		return rejected, connect.BadField(a.spec.idField, f.id, "an event id may take at most %d bytes", maxIDBytes)
	}
	if opening == 0 || a.spec.maxOpen <= 0 || a.openWindows()+opening <= a.spec.maxOpen {
		return accepted, nil
	}
	// Make room: emit and drop what the watermark, this frame's time included, has expired.
	// A scope is looked at again only when its watermark has moved.
	for _, sc := range a.scopes {
		if wm, ok := sc.watermark(&a.spec); ok && (!sc.madeRoom || wm != sc.roomWM) {
			sc.madeRoom, sc.roomWM = true, wm
			for _, em := range a.advanceTo(sc, wm, ok) {
				em.w = em.w.snapshot()
				sc.pending = append(sc.pending, em)
			}
		}
	}
	if a.openWindows()+opening > a.spec.maxOpen {
		return noRoom, connect.BadField(strings.Join(a.spec.groupBy, ","), groupValue(f.group), "opening a window at %s for it would exceed window.max.open=%d open windows in the task",
			formatTime(alive[len(alive)-1]), a.spec.maxOpen)
	}
	return accepted, nil
}

// groupValue is what an error shows of a group key: the value of a single group field, else
// all of them.
func groupValue(group []any) any {
	if len(group) == 1 {
		return group[0]
	}
	return group
}

// openWindows counts the open windows of all scopes.
func (a *aggregator) openWindows() int {
	n := 0
	for _, s := range a.scopes {
		n += len(s.windows)
	}
	return n
}

// snapshot copies a window's results, for an emission written later while the window may
// still change.
func (w *window) snapshot() *window {
	c := &window{Group: w.Group, Start: w.Start, End: w.End, Frames: w.Frames, Fields: make(map[string]*fieldAgg, len(w.Fields)),
		Revision: w.Revision, groupKey: w.groupKey}
	for k, fa := range w.Fields {
		v := *fa
		c.Fields[k] = &v
	}
	return c
}

// advance returns the windows of a scope to emit now, in order of window start and group
// key, and drops the windows whose allowed lateness the watermark has passed. A window is
// emitted when the watermark reaches its end, and again after every change while its
// allowed lateness lasts (and, with emitEarly, after every change while it is open).
// Emissions made earlier to make room come first.
func (a *aggregator) advance(scopeID int32) []emission {
	s := a.scopes[scopeID]
	if s == nil {
		return nil
	}
	out := s.pending
	s.pending = nil
	wm, ok := s.watermark(&a.spec)
	return append(out, a.advanceTo(s, wm, ok)...)
}

func (a *aggregator) advanceTo(s *scope, wm int64, ok bool) []emission {
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
func (a *aggregator) restoreWindow(scopeID int32, w *window) error {
	key, err := groupKeyOf(w.Group)
	if err != nil {
		return err
	}
	w.groupKey = key
	w.ids = nil
	if w.Fields == nil {
		w.Fields = map[string]*fieldAgg{}
	}
	a.scope(scopeID).windows[winKey{w.groupKey, w.Start}] = w
	return nil
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

// reset forgets all state.
func (a *aggregator) reset() { clear(a.scopes) }
