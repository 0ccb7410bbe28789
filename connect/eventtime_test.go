package connect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEventTime(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		v    any
		unit string
		want time.Time
		err  string
	}{
		{at, UnitMillis, at, ""},
		{"2024-05-01T12:00:00.123456789Z", UnitMillis, at, ""},
		{int64(1714564800123), UnitMillis, at.Truncate(time.Millisecond), ""},
		{1714564800, UnitSeconds, at.Truncate(time.Second), ""},
		{int64(1714564800123456789), UnitNanos, at, ""},
		{json.Number("1714564800123456"), UnitMicros, at.Truncate(time.Microsecond), ""},
		{1714564800.5, UnitSeconds, at.Truncate(time.Second).Add(500 * time.Millisecond), ""},
		{"yesterday", UnitMillis, time.Time{}, "not an RFC 3339 time"},
		{true, UnitMillis, time.Time{}, "a bool is not a time"},
	} {
		got, err := EventTime(tc.v, tc.unit)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("EventTime(%v, %s) error %v, want %q", tc.v, tc.unit, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("EventTime(%v, %s) = %v, %v; want %v", tc.v, tc.unit, got, err, tc.want)
		}
	}
}
