package prometheussink_test

import (
	"encoding/json"
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

// A worker on the real Kafka: a record with a 900 KB label value goes to the dead-letter topic
// with its reason, and reaching series.max shows in the task's status; the task keeps running
// and serves the series it holds.
func TestHugeLabelsAndTheSeriesLimitReportClearly(t *testing.T) {
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	name := sluicetest.UniqueName("promlimits")
	metric := strings.ReplaceAll(name, "-", "_")
	topic := name + "-metrics"
	huge, _ := json.Marshal(map[string]any{"sensor_id": strings.Repeat("x", 900_000), "place_id": "p1", "temperature": 1.0})
	sluicetest.Produce(t, c.Bootstrap, topic, reading("s1", "p1", 20.5), &kafka.Message{Key: []byte("huge"), Value: huge},
		reading("s2", "p1", 21), reading("s3", "p2", 22)) // s3 is beyond series.max
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{
		"connector.class": "prometheus-sink", "tasks.max": "1", "topics": topic, "listen.address": "127.0.0.1:0",
		"metric.name": metric, "value.fields": "temperature", "label.fields": "sensor_id,place_id", "series.max": "2",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.name": topic + "-dlq",
		"errors.deadletterqueue.topic.replication.factor": "-1", "errors.deadletterqueue.context.headers.enable": "true",
	})

	dlq := sluicetest.ConsumeAll(t, c.Bootstrap, topic+"-dlq", 1, time.Minute)
	if len(dlq) != 1 || string(dlq[0].Key) != "huge" {
		t.Fatalf("dead-letter topic holds %d records, want the one with the huge label", len(dlq))
	}
	reason, _ := sluicetest.Header(dlq[0], "__connect.errors.exception.message")
	if want := `label value is 900000 bytes long, over label.value.max.length 2048`; !strings.Contains(reason, want) || !strings.Contains(reason, `field "sensor_id"`) {
		t.Errorf("dead-letter reason %q, want it to name field sensor_id and say %q", reason, want)
	}
	if len(reason) > 1000 {
		t.Errorf("dead-letter reason of %d bytes: the value should be quoted cut short", len(reason))
	}

	wantNote := fmt.Sprintf(`series.max 2 reached: samples that would add a series, such as %s{sensor_id="s3",place_id="p2"}, are dropped`, metric)
	var st api.ConnectorStatus
	sluicetest.Eventually(t, time.Minute, "the series limit in the task's status", func() (bool, string) {
		st = api.ConnectorStatus{}
		sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateRunning && strings.Contains(st.Tasks[0].Trace, wantNote),
			fmt.Sprintf("%+v", st)
	})

	var groups []api.TargetGroup
	sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/prometheus-targets", nil, &groups)
	if len(groups) != 1 || len(groups[0].Targets) != 1 {
		t.Fatalf("targets %+v", groups)
	}
	resp, err := http.Get("http://" + groups[0].Targets[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`%s{place_id="p1",sensor_id="s1"} 20.5`, metric),
		fmt.Sprintf(`%s{place_id="p1",sensor_id="s2"} 21`, metric),
		`sluice_prometheus_sink_series_dropped_total{connector="` + name + `",task="0"} 1`,
		`sluice_prometheus_sink_bad_records_total{connector="` + name + `",task="0"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(string(body), "xxxx") {
		t.Error("the huge label is served")
	}
}
