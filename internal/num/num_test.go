package num

import (
	"encoding/json"
	"math"
	"testing"
)

func TestIntAndIntegral(t *testing.T) {
	tests := []struct {
		name         string
		v            any
		want         int64
		int, integer bool
	}{
		{"int64", int64(-7), -7, true, true},
		{"int8", int8(-8), -8, true, true},
		{"uint64 in range", uint64(1 << 62), 1 << 62, true, true},
		{"uint64 too big", uint64(math.MaxUint64), 0, false, false},
		{"json.Number", json.Number("42"), 42, true, true},
		{"json.Number fraction", json.Number("4.2"), 0, false, false},
		{"integral float", 3.0, 3, false, true},
		{"fractional float", 3.5, 0, false, false},
		{"float beyond int64", 1e19, 0, false, false},
		{"float32", float32(-2), -2, false, true},
		{"string", "5", 0, false, false},
		{"nil", nil, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n, ok := Int(tc.v); ok != tc.int || (ok && n != tc.want) {
				t.Errorf("Int(%#v) = %d, %v; want %d, %v", tc.v, n, ok, tc.want, tc.int)
			}
			if n, ok := Integral(tc.v); ok != tc.integer || (ok && n != tc.want) {
				t.Errorf("Integral(%#v) = %d, %v; want %d, %v", tc.v, n, ok, tc.want, tc.integer)
			}
		})
	}
}
