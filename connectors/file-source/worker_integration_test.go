package filesource_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// A file holding a line of 3 MB, far over the default line.max.bytes (1 MiB), run by a worker
// on the real Kafka: the line goes to the dead-letter topic with its first 1024 bytes and a
// reason naming the file, its offset, its length and the limit; the lines around it reach
// the topic, the task keeps running, and a restarted worker resumes after the last line.
func TestOverLongLineGoesToTheDeadLetterTopicAndReadingGoesOn(t *testing.T) {
	c := sluicetest.NewCluster(t)
	topic := sluicetest.UniqueName("file-long")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	path := filepath.Join(t.TempDir(), "in.log")
	const longLen = 3 << 20
	long := strings.Repeat("L", longLen)
	if err := os.WriteFile(path, []byte("first\n"+long+"\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := c.StartWorker(nil)
	cfg := map[string]string{"connector.class": "file-source", "file": path, "kafka.topic": topic, "poll.interval": "50",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.name": topic + "-dlq",
		"errors.deadletterqueue.topic.replication.factor": "-1", "errors.deadletterqueue.context.headers.enable": "true"}
	sluicetest.CreateConnector(t, w.URL, "long", cfg)

	got := sluicetest.ConsumeAll(t, c.Bootstrap, topic, 2, time.Minute)
	if len(got) != 2 || string(got[0].Value) != `"first"` || string(got[1].Value) != `"after"` {
		t.Fatalf("topic holds %d records %q, want the lines first and after", len(got), values(got))
	}
	dlq := sluicetest.ConsumeAll(t, c.Bootstrap, topic+"-dlq", 1, time.Minute)
	if len(dlq) != 1 {
		t.Fatalf("%d records on the dead-letter topic, want 1", len(dlq))
	}
	if v := string(dlq[0].Value); v != long[:1024] {
		t.Errorf("dead letter holds %d bytes, want the line's first 1024", len(v))
	}
	reason, _ := sluicetest.Header(dlq[0], "__connect.errors.exception.message")
	want := fmt.Sprintf("%s: the line at byte offset 6 is %d bytes long, over line.max.bytes 1048576", path, longLen)
	if !strings.Contains(reason, want) {
		t.Errorf("dead-letter reason %q, want it to contain %q", reason, want)
	}
	sluicetest.WaitState(t, w.URL, "long", api.StateRunning, 1)

	// The worker stops (storing the offset after "after"); a new one reads only what follows.
	w.Stop()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("later\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w2 := c.StartWorker(nil)
	sluicetest.WaitState(t, w2.URL, "long", api.StateRunning, 1)
	got = sluicetest.ConsumeAll(t, c.Bootstrap, topic, 3, time.Minute)
	if len(got) != 3 || string(got[2].Value) != `"later"` {
		t.Fatalf("after the restart the topic holds %q, want first, after, later", values(got))
	}
	// Nothing more comes: neither the long line again nor a line read twice.
	if more := sluicetest.ConsumeAll(t, c.Bootstrap, topic, 4, 3*time.Second); len(more) != 3 {
		t.Errorf("the topic holds %q, want 3 lines", values(more))
	}
	if dlq := sluicetest.ConsumeAll(t, c.Bootstrap, topic+"-dlq", 2, 3*time.Second); len(dlq) != 1 {
		t.Errorf("%d records on the dead-letter topic after the restart, want 1", len(dlq))
	}
}

func values(msgs []*kafka.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		v := string(m.Value)
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		out[i] = v
	}
	return out
}
