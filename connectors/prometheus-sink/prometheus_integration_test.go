package prometheussink_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// promResult is one series of a Prometheus instant query.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func query(t *testing.T, prom, q string) []promResult {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if code := sluicetest.Call(t, "GET", prom+"/api/v1/query?query="+url.QueryEscape(q), nil, &out); code != http.StatusOK {
		t.Fatalf("query %s: %d", q, code)
	}
	return out.Data.Result
}

// httpSDJob makes the test Prometheus scrape the targets the given service-discovery URLs
// list, until the test ends.
func httpSDJob(t *testing.T, job string, sdURLs ...string) {
	t.Helper()
	sluicetest.ScrapeJob(t, os.Getenv(connecttest.EnvTestenvDir), connecttest.Env(t, connecttest.EnvTestenvScript), job, sdURLs...)
}

func reading(sensor, place string, temp float64) *kafka.Message {
	v, _ := json.Marshal(map[string]any{"sensor_id": sensor, "place_id": place, "temperature": temp})
	return &kafka.Message{Key: []byte(sensor), Value: v}
}

// TestPrometheusScrapesAndFollowsTheTask runs the connector on two workers with Prometheus
// discovering its target through the REST API, checks that the values arrive with their
// labels, that the series limit shows in Prometheus, then stops the worker running the task
// and checks that Prometheus scrapes the task where it moved.
func TestPrometheusScrapesAndFollowsTheTask(t *testing.T) {
	prom := connecttest.Env(t, connecttest.EnvPrometheus)
	c := sluicetest.NewCluster(t)
	a, b := c.StartWorker(nil), c.StartWorker(nil)
	name := sluicetest.UniqueName("prom")
	metric := strings.ReplaceAll(name, "-", "_")
	topic := name + "-metrics"
	sluicetest.Produce(t, c.Bootstrap, topic, reading("s1", "p1", 20.5), reading("s2", "p1", 21), reading("s3", "p2", 22),
		reading("s4", "p2", 23)) // the fourth series is beyond series.max
	sluicetest.CreateConnector(t, a.URL, name, map[string]string{
		"connector.class": "prometheus-sink", "tasks.max": "1", "topics": topic,
		"listen.address": "0.0.0.0:0", // the published address gets the worker's host
		"metric.name":    metric, "value.fields": "temperature", "label.fields": "sensor_id,place_id",
		"series.max": "3",
	})
	sluicetest.WaitState(t, a.URL, name, api.StateRunning, 1)

	// Both workers answer the same discovery document, from the task's status.
	var first string
	for _, w := range []*sluicetest.Worker{a, b} {
		sluicetest.Eventually(t, 30*time.Second, "a prometheus target", func() (bool, string) {
			var groups []api.TargetGroup
			code := sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/prometheus-targets", nil, &groups)
			if code != 200 || len(groups) != 1 || len(groups[0].Targets) != 1 || strings.HasPrefix(groups[0].Targets[0], "0.0.0.0") ||
				groups[0].Labels["__metrics_path__"] != "/metrics" || groups[0].Labels["connector"] != name || groups[0].Labels["task"] != "0" {
				return false, fmt.Sprintf("%d %+v", code, groups)
			}
			first = groups[0].Targets[0]
			return true, ""
		})
	}
	job := name
	httpSDJob(t, job, a.URL+"/connectors/"+name+"/prometheus-targets", b.URL+"/connectors/"+name+"/prometheus-targets")

	sluicetest.Eventually(t, 60*time.Second, "Prometheus to have the values with their labels", func() (bool, string) {
		res := query(t, prom, fmt.Sprintf(`%s{job=%q}`, metric, job))
		got := map[string]string{}
		for _, r := range res {
			if r.Metric["instance"] != first || r.Metric["connector"] != name || r.Metric["task"] != "0" {
				return false, fmt.Sprintf("%+v", res)
			}
			got[r.Metric["sensor_id"]+"/"+r.Metric["place_id"]] = fmt.Sprint(r.Value[1])
		}
		want := map[string]string{"s1/p1": "20.5", "s2/p1": "21", "s3/p2": "22"}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%+v", res)
	})
	sluicetest.Eventually(t, 30*time.Second, "the dropped series counted in Prometheus", func() (bool, string) {
		res := query(t, prom, fmt.Sprintf(`sluice_prometheus_sink_series_dropped_total{job=%q}`, job))
		return len(res) == 1 && res[0].Value[1] == "1", fmt.Sprintf("%+v", res)
	})

	// Stop the worker running the task; the task moves to the other one.
	var st api.ConnectorStatus
	sluicetest.Call(t, "GET", a.URL+"/connectors/"+name+"/status", nil, &st)
	stay := b
	if st.Tasks[0].WorkerID == b.W.ID() {
		stay = a
		b.Stop()
	} else {
		a.Stop()
	}
	var moved string
	sluicetest.Eventually(t, 90*time.Second, "the task to run on the remaining worker", func() (bool, string) {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", stay.URL+"/connectors/"+name+"/status", nil, &st)
		var groups []api.TargetGroup
		sluicetest.Call(t, "GET", stay.URL+"/connectors/"+name+"/prometheus-targets", nil, &groups)
		if len(st.Tasks) != 1 || st.Tasks[0].State != api.StateRunning || st.Tasks[0].WorkerID != stay.W.ID() || len(groups) != 1 {
			return false, fmt.Sprintf("%+v %+v", st, groups)
		}
		moved = groups[0].Targets[0]
		return moved != first, fmt.Sprintf("%+v", groups)
	})
	sluicetest.Produce(t, c.Bootstrap, topic, reading("s1", "p1", 30.5))
	sluicetest.Eventually(t, 60*time.Second, "Prometheus to scrape the moved task", func() (bool, string) {
		res := query(t, prom, fmt.Sprintf(`%s{job=%q,sensor_id="s1",instance=%q}`, metric, job, moved))
		return len(res) == 1 && res[0].Value[1] == "30.5", fmt.Sprintf("%+v", res)
	})
}

// TestExpiredSeriesLeavePrometheus: a series not updated for series.ttl is no longer served,
// and the expiry is counted in a metric Prometheus scrapes.
func TestExpiredSeriesLeavePrometheus(t *testing.T) {
	prom := connecttest.Env(t, connecttest.EnvPrometheus)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("promttl")
	metric := strings.ReplaceAll(name, "-", "_")
	topic := name + "-metrics"
	sluicetest.Produce(t, c.Bootstrap, topic, reading("s1", "p1", 20.5))
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "prometheus-sink", "tasks.max": "1", "topics": topic, "listen.address": "127.0.0.1:0",
		"metric.name": metric, "value.fields": "temperature", "label.fields": "sensor_id,place_id", "series.ttl": "5s",
	})
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	httpSDJob(t, name, w.URL+"/connectors/"+name+"/prometheus-targets")
	sluicetest.Eventually(t, 60*time.Second, "Prometheus to have the series", func() (bool, string) {
		res := query(t, prom, fmt.Sprintf(`%s{job=%q}`, metric, name))
		return len(res) == 1 && res[0].Value[1] == "20.5", fmt.Sprintf("%+v", res)
	})
	sluicetest.Eventually(t, 60*time.Second, "the expiry counted in Prometheus and the series gone", func() (bool, string) {
		expired := query(t, prom, fmt.Sprintf(`sluice_prometheus_sink_series_expired_total{job=%q}`, name))
		held := query(t, prom, fmt.Sprintf(`sluice_prometheus_sink_series{job=%q}`, name))
		return len(expired) == 1 && expired[0].Value[1] == "1" && len(held) == 1 && held[0].Value[1] == "0",
			fmt.Sprintf("expired %+v, held %+v", expired, held)
	})
	// Prometheus marks the series stale once a scrape no longer has it.
	sluicetest.Eventually(t, 60*time.Second, "the expired series no longer in Prometheus", func() (bool, string) {
		res := query(t, prom, fmt.Sprintf(`%s{job=%q}`, metric, name))
		return len(res) == 0, fmt.Sprintf("%+v", res)
	})
}
