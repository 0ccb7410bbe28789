// Package num reads integers out of the values decoded records hold: every Go integer type,
// and, where a caller takes them, floats with an integral value (what JSON numbers decode to).
package num

import (
	"encoding/json"
	"math"
)

// Int returns v as an int64 when v is of a Go integer type (or a json.Number holding an
// integer) and fits in one. Floats are refused: use Integral to take them.
func Int(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint64:
		return int64(x), x <= math.MaxInt64
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}

// Integral is Int that also takes a float64 or float32 with an integral value within int64's
// range.
func Integral(v any) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		return Int(v)
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), true
	}
	return 0, false
}
