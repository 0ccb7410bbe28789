package filesource

import (
	"os"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// startTask starts a file-source task reading path into the topic "lines", polling every 10ms.
func startTask(t *testing.T, tc *connecttest.SourceContext, path string) *Task {
	t.Helper()
	task := &Task{}
	cfg := connect.Config{"file": path, "kafka.topic": "lines", "poll.interval": "10ms", "batch.size": "3"}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return task
}

// values polls once and returns the lines it got, checking each record's offset follows on.
func values(t *testing.T, task *Task) []string {
	t.Helper()
	recs, err := task.Poll(t.Context())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	var out []string
	for _, r := range recs {
		if r.Topic != "lines" || r.SourcePartition["file"] != task.cfg.File {
			t.Fatalf("record %+v: wrong topic or source partition", r)
		}
		out = append(out, r.Value.(string))
	}
	return out
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
