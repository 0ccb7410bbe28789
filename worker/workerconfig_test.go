package worker

import (
	"strings"
	"testing"
)

// Consumer settings no sink task could start with are refused when the worker starts, by
// name; the ones the sink consumer does not use are left to the warning each task logs.
func TestWorkerRefusesConsumerSettingsNoSinkCouldUse(t *testing.T) {
	for _, tt := range []struct {
		setting, value, want string
	}{
		{"consumer.fetch.wait.max.ms", "5", `fetch.wait.max.ms: "5" is under 10`},
		{"consumer.session.timeout.ms", "10s", `session.timeout.ms: "10s"`},
		{"consumer.auto.offset.reset", "oldest", `auto.offset.reset: "oldest"`},
		{"consumer.fetch.wait.max.ms", "100", ""},
		{"consumer.queued.min.messages", "1000", ""},
	} {
		t.Run(tt.setting+"="+tt.value, func(t *testing.T) {
			_, err := ParseWorkerConfig(map[string]string{"bootstrap.servers": "localhost:9092", tt.setting: tt.value})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}
