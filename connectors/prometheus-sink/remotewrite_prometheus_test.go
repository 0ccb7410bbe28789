package prometheussink

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// namedContext is a SinkContext with a connector name of its own, so that the task's own
// series in the shared test Prometheus are this run's.
type namedContext struct {
	*connecttest.SinkContext
	name string
}

func (n namedContext) Connector() string { return n.name }

// promQuery runs an instant query and renders each result as name{labels} value.
func promQuery(t *testing.T, prom, q string) []string {
	t.Helper()
	var out struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if code := sluicetest.Call(t, "GET", prom+"/api/v1/query?query="+url.QueryEscape(q), nil, &out); code != http.StatusOK {
		t.Fatalf("query %s: %d", q, code)
	}
	var res []string
	for _, r := range out.Data.Result {
		var labels []string
		for k, v := range r.Metric {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		res = append(res, "{"+strings.Join(labels, ",")+"} "+fmt.Sprint(r.Value[1]))
	}
	slices.Sort(res)
	return res
}

// TestRemoteWriteToPrometheus remote writes to the test Prometheus (run with
// --web.enable-remote-write-receiver) with scraping off, and reads the samples back through
// its HTTP API: first every interval with the push time, then with the records' timestamps,
// where Prometheus refuses a sample too old for its head block with a 400.
func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := connecttest.Env(t, connecttest.EnvPrometheus)
	name := sluicetest.UniqueName("rw")
	metric := strings.ReplaceAll(name, "-", "_")
	start := func(connector string, cfg connect.Config) *Task {
		t.Helper()
		cfg["topics"] = "iot.metrics"
		cfg["scrape.enable"] = "false"
		cfg["remote.write.url"] = prom + "/api/v1/write"
		cfg["label.fields"] = "sensor_id,place_id"
		cfg["value.fields"] = "temperature"
		task := &Task{}
		if err := task.Start(t.Context(), cfg, namedContext{connecttest.NewSinkContext(t, 0), connector}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := task.Stop(); err != nil {
				t.Error(err)
			}
		})
		return task
	}
	reading := func(sensor, place string, temp float64, at time.Time) connect.Record {
		return connect.Record{Value: map[string]any{"sensor_id": sensor, "place_id": place, "temperature": temp}, Time: at}
	}

	task := start(name, connect.Config{"metric.name": metric, "remote.write.interval": "100ms"})
	put(t, task, reading("s1", "p1", 20.5, time.Now()), reading("s2", "p1", 21, time.Now()))
	sluicetest.Eventually(t, 30*time.Second, "the remote-written samples in Prometheus", func() (bool, string) {
		got := promQuery(t, prom, metric)
		want := []string{
			fmt.Sprintf("{__name__=%s,place_id=p1,sensor_id=s1} 20.5", metric),
			fmt.Sprintf("{__name__=%s,place_id=p1,sensor_id=s2} 21", metric),
		}
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	put(t, task, reading("s1", "p1", 30.5, time.Now()))
	sluicetest.Eventually(t, 30*time.Second, "the updated sample in Prometheus", func() (bool, string) {
		got := promQuery(t, prom, metric+`{sensor_id="s1"}`)
		return len(got) == 1 && strings.HasSuffix(got[0], " 30.5"), fmt.Sprint(got)
	})
	// Scraping off, the task's own metrics are remote-written too.
	sluicetest.Eventually(t, 30*time.Second, "the task's own metrics in Prometheus", func() (bool, string) {
		got := promQuery(t, prom, fmt.Sprintf(`sluice_prometheus_sink_samples_total{connector=%q}`, name))
		return slices.Equal(got, []string{fmt.Sprintf("{__name__=sluice_prometheus_sink_samples_total,connector=%s,task=0} 3", name)}), fmt.Sprint(got)
	})
	if f := counterValue(t, task.remote.failures); f != 0 {
		t.Errorf("%v failed requests", f)
	}

	// With the records' timestamps; the pushes come from the test.
	ts := start(name+"-ts", connect.Config{"metric.name": metric + "_ts", "timestamps.enable": "true", "remote.write.interval": "1h"})
	put(t, ts, reading("s1", "p1", 1, time.UnixMilli(1_600_000_000_000))) // 2020: out of bounds
	ts.remote.push(t.Context())
	if f, s := counterValue(t, ts.remote.failures), counterValue(t, ts.remote.sent); f != 1 || s != 0 {
		t.Errorf("an out-of-bounds sample: failures %v, sent %v; want 1 and 0", f, s)
	}
	at := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	put(t, ts, reading("s1", "p1", 7.25, at))
	ts.remote.push(t.Context())
	if f := counterValue(t, ts.remote.failures); f != 1 {
		t.Errorf("failures %v after a good push, want still 1", f)
	}
	sluicetest.Eventually(t, 30*time.Second, "the sample with its record timestamp in Prometheus", func() (bool, string) {
		v := promQuery(t, prom, metric+"_ts")
		tsv := promQuery(t, prom, "timestamp("+metric+"_ts)")
		want := strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', -1, 64)
		return len(v) == 1 && strings.HasSuffix(v[0], " 7.25") && len(tsv) == 1 && strings.HasSuffix(tsv[0], " "+want),
			fmt.Sprint(v, tsv, " want timestamp ", want)
	})
}
