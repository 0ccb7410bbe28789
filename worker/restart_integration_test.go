package worker_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

func TestFailedTaskRestartsAutomaticallyWithinLimit(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("restart")
	sluicetest.Produce(t, c.Bootstrap, topic, &kafka.Message{Value: []byte(`{"n":1}`)})
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "phoenix", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "fail", "fail.task": "0",
		"auto.restart.enable": "true", "auto.restart.backoff.max.ms": "1000", "auto.restart.max.attempts": "2"}}, nil)
	// The record is never committed, so every restart meets it again and fails: after two
	// automatic restarts the task stays FAILED, and the count says so.
	var st api.TaskState
	sluicetest.Eventually(t, 90*time.Second, "the task FAILED after 2 automatic restarts", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/phoenix/tasks/0/status", nil, &st)
		return st.State == api.StateFailed && st.Restarts == 2 && !strings.Contains(st.Trace, "scheduled"), fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Trace, "boom") {
		t.Errorf("trace %q does not carry the cause", st.Trace)
	}
	// A manual restart starts counting afresh.
	sluicetest.Call(t, "POST", w.URL+"/connectors/phoenix/tasks/0/restart", nil, nil)
	sluicetest.Eventually(t, 60*time.Second, "the manually restarted task failing again with a count started afresh", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/phoenix/tasks/0/status", nil, &st)
		return st.Restarts == 1, fmt.Sprintf("%+v", st)
	})
}

func TestSourceBadRecordsGoToDeadLetterTopic(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, dlq := sluicetest.UniqueName("src"), sluicetest.UniqueName("src-dlq")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "src-tolerant", "config": map[string]string{
		"connector.class": "probe-source", "topic": topic, "count": "20", "bad.every": "5",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq,
		"errors.deadletterqueue.topic.replication.factor": "-1", "errors.deadletterqueue.context.headers.enable": "true"}}, nil)
	good := sluicetest.ConsumeAll(t, c.Bootstrap, topic, 16, 60*time.Second)
	if len(good) != 16 {
		t.Fatalf("%d good records on %s, want 16", len(good), topic)
	}
	bad := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 4, 60*time.Second)
	if len(bad) != 4 {
		t.Fatalf("%d records on the dead-letter topic, want 4", len(bad))
	}
	for _, m := range bad {
		if !strings.HasPrefix(string(m.Value), "garbage-") {
			t.Errorf("dead-lettered value %q, want the original payload", m.Value)
		}
		if msg, _ := sluicetest.Header(m, "__connect.errors.exception.message"); !strings.Contains(msg, `"payload"`) {
			t.Errorf("reason header %q does not name the field", msg)
		}
		if tp, _ := sluicetest.Header(m, "__connect.errors.topic"); tp != topic {
			t.Errorf("topic header %q, want %q", tp, topic)
		}
	}
	// The reported records count as done: the stored offset covers all 20.
	var offs api.ConnectorOffsets
	sluicetest.Eventually(t, 30*time.Second, "the offset past the last record", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/src-tolerant/offsets", nil, &offs)
		return len(offs.Offsets) == 1 && offs.Offsets[0].Offset["n"] == float64(19), fmt.Sprint(offs)
	})

	// Without tolerance the first bad record fails the task.
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "src-strict", "config": map[string]string{
		"connector.class": "probe-source", "topic": topic, "count": "20", "bad.every": "5"}}, nil)
	var st api.ConnectorStatus
	sluicetest.Eventually(t, 60*time.Second, "the strict source task FAILED", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/src-strict/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Tasks[0].Trace, "Tolerance exceeded") || !strings.Contains(st.Tasks[0].Trace, `"payload"`) {
		t.Errorf("trace %q should say the tolerance was exceeded and name the field", st.Tasks[0].Trace)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("metrics")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "counted", "config": map[string]string{
		"connector.class": "probe-source", "topic": topic, "count": "7"}}, nil)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "drain", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic}}, nil)
	sluicetest.Eventually(t, 60*time.Second, "metrics for the tasks", func() (bool, string) {
		resp, err := http.Get(w.URL + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		for _, want := range []string{
			`sluice_source_records_written_total{connector="counted",task="0"} 7`,
			`sluice_source_records_polled_total{connector="counted",task="0"} 7`,
			`sluice_task_state{connector="counted",state="RUNNING",task="0"} 1`,
			`sluice_batch_duration_seconds_count{connector="counted",op="poll",task="0"}`,
			`sluice_sink_records_put_total{connector="drain",task="0"} 7`,
			`sluice_sink_records_lag{connector="drain",task="0"} 0`,
			"go_goroutines",
		} {
			if !strings.Contains(body, want) {
				return false, "missing " + want
			}
		}
		return true, ""
	})
}
