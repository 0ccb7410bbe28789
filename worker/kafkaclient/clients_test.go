package kafkaclient

import (
	"maps"
	"testing"
)

func TestUnlessSetKeepsOnlyDefaultsNobodySet(t *testing.T) {
	defaults := map[string]string{MaxInFlight: "1", "queued.min.messages": "1000000"}
	tests := []struct {
		name     string
		settings []map[string]string
		want     map[string]string
	}{
		{"nothing set", []map[string]string{{}, nil}, defaults},
		{"set by name in a worker setting", []map[string]string{{MaxInFlight: "5"}},
			map[string]string{"queued.min.messages": "1000000"}},
		{"set by librdkafka's alias in an override", []map[string]string{{}, {"max.in.flight": "5"}},
			map[string]string{"queued.min.messages": "1000000"}},
		{"both set", []map[string]string{{"queued.min.messages": "10"}, {MaxInFlight: "2"}}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UnlessSet(defaults, tt.settings...); !maps.Equal(got, tt.want) {
				t.Errorf("unlessSet = %v, want %v", got, tt.want)
			}
		})
	}
}
