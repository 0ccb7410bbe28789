package connect

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// The units a numeric event time counts since the epoch, as connectors' time.field.unit
// settings name them.
const (
	UnitSeconds = "s"
	UnitMillis  = "ms"
	UnitMicros  = "us"
	UnitNanos   = "ns"
)

// EventTime reads an event time from a record field's value: a time.Time (Kafka Connect's
// Timestamp), an RFC 3339 string, or a number of unit (UnitSeconds ... UnitNanos) since the
// epoch. Whole numbers are converted exactly; the error says what the value is and what a
// time should be, for a BadField.
func EventTime(v any, unit string) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("not an RFC 3339 time such as 2024-05-01T12:00:00Z")
		}
		return t, nil
	case int64:
		return fromEpoch(float64(x), x, true, unit), nil
	case int:
		return fromEpoch(float64(x), int64(x), true, unit), nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return fromEpoch(float64(n), n, true, unit), nil
		}
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("not a time")
		}
		return EventTime(f, unit)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, fmt.Errorf("not a time")
		}
		return fromEpoch(x, 0, false, unit), nil
	}
	return time.Time{}, fmt.Errorf("a %T is not a time: want an RFC 3339 string or a number of %s since the epoch", v, unit)
}

func fromEpoch(f float64, n int64, exact bool, unit string) time.Time {
	per := map[string]int64{UnitSeconds: 1e9, UnitMillis: 1e6, UnitMicros: 1e3, UnitNanos: 1}[unit]
	if per == 0 {
		per = 1e6
	}
	if exact && (n <= math.MaxInt64/per && n >= math.MinInt64/per) {
		return time.Unix(0, n*per).UTC()
	}
	return time.Unix(0, int64(f*float64(per))).UTC()
}
