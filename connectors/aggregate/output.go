package aggregate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// encoder shapes window results into output and metrics records.
type encoder struct {
	groupBy []string
	fields  []string
	aggs    []string
	prefix  string
}

// resultKey is the output key: the group fields and the window start, as a JSON object.
func (e *encoder) resultKey(w *window) ([]byte, error) {
	m := make(map[string]any, len(e.groupBy)+1)
	for i, g := range e.groupBy {
		m[g] = w.Group[i]
	}
	m["window_start"] = formatTime(w.Start)
	return json.Marshal(m)
}

// aggValue is one aggregation of a field, and whether it has a value (min, max, avg, first
// and last have none when no frame of the window had the field).
func aggValue(fa *fieldAgg, agg string) (float64, bool) {
	if fa == nil || fa.N == 0 {
		if agg == AggCount || agg == AggSum {
			return 0, true
		}
		return 0, false
	}
	switch agg {
	case AggCount:
		return float64(fa.N), true
	case AggMin:
		return fa.Min, true
	case AggMax:
		return fa.Max, true
	case AggAvg:
		return fa.Sum / float64(fa.N), true
	case AggSum:
		return fa.Sum, true
	case AggFirst:
		return fa.First, true
	case AggLast:
		return fa.Last, true
	}
	return 0, false
}

// resultValue is the output value of a window: the group fields, window bounds, frame count,
// <field>_<aggregation> for each value field and aggregation (null when no frame had the
// field), the revision and whether the window is closed.
func (e *encoder) resultValue(em emission) ([]byte, error) {
	w := em.w
	m := make(map[string]any, len(e.groupBy)+6+len(e.fields)*len(e.aggs))
	for i, g := range e.groupBy {
		m[g] = w.Group[i]
	}
	m["window_start"] = formatTime(w.Start)
	m["window_end"] = formatTime(w.End)
	m["frames"] = w.Frames
	m["revision"] = em.revision
	m["final"] = em.final
	for _, f := range e.fields {
		for _, a := range e.aggs {
			if v, ok := aggValue(w.Fields[f], a); ok {
				m[f+"_"+a] = v
			} else {
				m[f+"_"+a] = nil
			}
		}
	}
	return json.Marshal(m)
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_:]`)

func metricName(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// labelName is the label a group field becomes: its last path element, sanitized.
func labelName(field string) string {
	if i := strings.LastIndex(field, "."); i >= 0 {
		field = field[i+1:]
	}
	n := metricName(field)
	if n != "" && n[0] >= '0' && n[0] <= '9' {
		n = "_" + n
	}
	return n
}

// metric is a metrics-shaped record.
type metric struct {
	key, value []byte
}

// metrics returns the metrics records of a window: <prefix>_frames, and
// <prefix>_<field>_<aggregation> for every value field and aggregation that has a value, each
// {"name", "labels": {group labels..., "window": size}, "value", "timestamp": window end ms}.
func (e *encoder) metrics(em emission, windowSize string) ([]metric, error) {
	w := em.w
	labels := make(map[string]string, len(e.groupBy)+1)
	for i, g := range e.groupBy {
		labels[labelName(g)] = fmt.Sprint(w.Group[i])
	}
	labels["window"] = windowSize
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	slices.Sort(names)
	var lb strings.Builder
	for i, k := range names {
		if i > 0 {
			lb.WriteByte(',')
		}
		fmt.Fprintf(&lb, "%s=%q", k, labels[k])
	}
	out := make([]metric, 0, 1+len(e.fields)*len(e.aggs))
	one := func(name string, v float64) error {
		val, err := json.Marshal(map[string]any{"name": name, "labels": labels, "value": v, "timestamp": w.End})
		if err != nil {
			return fmt.Errorf("metric %s: %w", name, err)
		}
		out = append(out, metric{key: []byte(name + "{" + lb.String() + "}"), value: val})
		return nil
	}
	if err := one(metricName(e.prefix+"_frames"), float64(w.Frames)); err != nil {
		return nil, err
	}
	for _, f := range e.fields {
		for _, a := range e.aggs {
			if v, ok := aggValue(w.Fields[f], a); ok {
				if err := one(metricName(e.prefix+"_"+f+"_"+a), v); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
