package worker

import "testing"

func TestStartProgressDescribesTheStep(t *testing.T) {
	for _, tt := range []struct {
		name   string
		step   string
		detail func() string
		want   string
	}{
		{"before the first step", "", nil, "starting"},
		{"a step", "joining worker group g", nil, "joining worker group g"},
		{"a step with its detail", "reading internal topic t to the end", func() string { return "2 of 25 partitions still to read" },
			"reading internal topic t to the end (2 of 25 partitions still to read)"},
		{"an empty detail", "reading internal topic t to the end", func() string { return "" }, "reading internal topic t to the end"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p startProgress
			if tt.step != "" {
				p.set(tt.step, tt.detail)
			}
			if got := p.describe(); got != tt.want {
				t.Errorf("describe() = %q, want %q", got, tt.want)
			}
		})
	}
}
