package worker_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

func taskStatus(t *testing.T, base, name string) api.TaskState {
	t.Helper()
	var st api.ConnectorStatus
	sluicetest.Call(t, "GET", base+"/connectors/"+name+"/status", nil, &st)
	if len(st.Tasks) != 1 {
		return api.TaskState{}
	}
	return st.Tasks[0]
}

// metricsText is what the worker's /metrics serves.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A connector panicking in Acknowledged (called on the delivery goroutine) fails its task; the
// worker lives on and keeps serving.
func TestPanicInAcknowledgedFailsTheTaskNotTheWorker(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("panicky")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
		"connector.class": "probe-source", "topic": sluicetest.UniqueName("panicky"), "mode": "panic-ack"}}, nil)
	sluicetest.Eventually(t, 60*time.Second, "the task FAILED", func() (bool, string) {
		ts := taskStatus(t, w.URL, name)
		return ts.State == api.StateFailed && strings.Contains(ts.Trace, "acknowledged panicked: acknowledging went wrong"), fmt.Sprintf("%+v", ts)
	})
	if code := sluicetest.Call(t, "GET", w.URL+"/connectors", nil, nil); code != 200 {
		t.Fatalf("GET /connectors = %d after the panic", code)
	}
}

// Retriable poll errors keep the task RUNNING, say so in its status, are counted, and the note
// goes once polls succeed again.
func TestRetriablePollErrorsShowInStatusAndMetrics(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	name, topic := sluicetest.UniqueName("flakypoll"), sluicetest.UniqueName("flakypoll")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
		"connector.class": "probe-source", "topic": topic, "mode": "flaky-poll", "poll.failures": "4"}}, nil)
	sluicetest.Eventually(t, 60*time.Second, "the status says the task is retrying", func() (bool, string) {
		ts := taskStatus(t, w.URL, name)
		return ts.State == api.StateRunning && strings.Contains(ts.Trace, "retrying poll: device gateway unreachable"), fmt.Sprintf("%+v", ts)
	})
	sluicetest.ConsumeAll(t, c.Bootstrap, topic, 20, 60*time.Second)
	sluicetest.Eventually(t, 30*time.Second, "the retry note gone from the status", func() (bool, string) {
		ts := taskStatus(t, w.URL, name)
		return ts.State == api.StateRunning && ts.Trace == "", fmt.Sprintf("%+v", ts)
	})
	if want := fmt.Sprintf(`sluice_source_poll_retries_total{connector=%q,task="0"} 4`, name); !strings.Contains(metricsText(t, w.URL), want) {
		t.Errorf("metrics lack %s", want)
	}
}

// A source record Kafka would refuse for its size is a bad record: with errors.tolerance=all it
// goes to the dead-letter topic (cut to fit, saying how long it was) and the rest flows; with
// none the task fails once, saying which record, its size and the limit.
func TestOversizedSourceRecordsFollowTheErrorPolicy(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, dlq := sluicetest.UniqueName("big"), sluicetest.UniqueName("big-dlq")
	tolerant := sluicetest.UniqueName("tolerant-big")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": tolerant, "config": map[string]string{
		"connector.class": "probe-source", "topic": topic, "count": "20", "pad.at": "5", "pad.bytes": "1200000",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq,
		"errors.deadletterqueue.topic.replication.factor": "-1", "errors.deadletterqueue.context.headers.enable": "true"}}, nil)
	got := sluicetest.ConsumeAll(t, c.Bootstrap, topic, 19, 60*time.Second)
	for _, m := range got {
		if strings.Contains(string(m.Value), `"n":5`) {
			t.Fatalf("the oversized record reached the topic: %d bytes", len(m.Value))
		}
	}
	dead := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 1, 60*time.Second)
	if stage, _ := sluicetest.Header(dead[0], "__connect.errors.stage"); stage != "KAFKA_PRODUCE" {
		t.Errorf("dead-letter stage %q, want KAFKA_PRODUCE", stage)
	}
	if orig, _ := sluicetest.Header(dead[0], "__sluice.errors.value.original.bytes"); orig == "" {
		t.Errorf("the dead-letter record does not say how long the value was")
	}
	if msg, _ := sluicetest.Header(dead[0], "__connect.errors.exception.message"); !strings.Contains(msg, "message.max.bytes of 1000000") {
		t.Errorf("exception message %q does not give the limit", msg)
	}
	if ts := taskStatus(t, w.URL, tolerant); ts.State != api.StateRunning {
		t.Errorf("tolerant task %+v, want RUNNING", ts)
	}

	strict := sluicetest.UniqueName("strict-big")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": strict, "config": map[string]string{
		"connector.class": "probe-source", "topic": sluicetest.UniqueName("big"), "count": "20", "pad.at": "5", "pad.bytes": "1200000"}}, nil)
	sluicetest.Eventually(t, 60*time.Second, "the strict task FAILED", func() (bool, string) {
		ts := taskStatus(t, w.URL, strict)
		ok := ts.State == api.StateFailed
		for _, want := range []string{"Tolerance exceeded", `key "5"`, "bytes once converted", "message.max.bytes of 1000000"} {
			ok = ok && strings.Contains(ts.Trace, want)
		}
		return ok, fmt.Sprintf("%+v", ts)
	})
}
