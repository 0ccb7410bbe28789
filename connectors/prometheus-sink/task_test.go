package prometheussink

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), nil)
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{"metric.name": "9 bad"},
		{"metric.name": "a", "metric.name.field": "name"},
		{"metric.type": "histogram"},
		{"series.max": "0"},
		{"label.fields": "a.id,b.id"},
		{"label.fields": "__x"},
		{"timestamp.field": "ts"},
		{"listen.path": "metrics"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{"temp": "temp", "9x": "_9x", "a-b.c": "a_b_c", "ns:m": "ns:m", "": "_"} {
		if got := sanitizeName(in, true); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizeName("ns:m", false); got != "ns_m" {
		t.Errorf("label name %q", got)
	}
}

// startTask starts a task on a free port and returns it with its scrape URL.
func startTask(t *testing.T, cfg connect.Config) (*Task, *connecttest.SinkContext, string) {
	t.Helper()
	cfg["listen.address"] = "127.0.0.1:0"
	cfg["topics"] = "iot.metrics"
	task, tc := &Task{}, connecttest.NewSinkContext(t, 0)
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Error(err)
		}
	})
	eps := task.Endpoints()
	if len(eps) != 1 || eps[0].Kind != "prometheus" {
		t.Fatalf("endpoints %+v", eps)
	}
	return task, tc, "http://" + eps[0].Address + eps[0].Path
}

func scrape(t *testing.T, url string, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func rec(v map[string]any) connect.Record {
	return connect.Record{Topic: "iot.metrics", Value: v, Time: time.UnixMilli(1_700_000_000_000)}
}

func TestServesLatestSamplesInBothFormats(t *testing.T) {
	task, tc, url := startTask(t, connect.Config{"metric.name": "iot", "value.fields": "temperature,humidity", "label.fields": "sensor_id,place.id"})
	err := task.Put(t.Context(), []connect.Record{
		rec(map[string]any{"sensor_id": "s1", "place": map[string]any{"id": int64(7)}, "temperature": 20.5, "humidity": int64(40)}),
		rec(map[string]any{"sensor_id": "s1", "place": map[string]any{"id": int64(7)}, "temperature": 21.5, "humidity": "41"}),
		rec(map[string]any{"sensor_id": "s2", "place": map[string]any{"id": int64(7)}, "temperature": true, "humidity": 1.0}),
	})
	if err != nil {
		t.Fatal(err)
	}
	text := scrape(t, url, "")
	for _, want := range []string{
		`iot_temperature{id="7",sensor_id="s1"} 21.5`,
		`iot_humidity{id="7",sensor_id="s1"} 41`,
		`iot_temperature{id="7",sensor_id="s2"} 1`,
		"# TYPE iot_temperature gauge",
		`sluice_prometheus_sink_series{connector="test",task="0"} 4`,
		`sluice_prometheus_sink_samples_total{connector="test",task="0"} 6`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text scrape lacks %q:\n%s", want, text)
		}
	}
	om := scrape(t, url, "application/openmetrics-text; version=1.0.0")
	if !strings.Contains(om, "# EOF") || !strings.Contains(om, `iot_temperature{id="7",sensor_id="s1"} 21.5`) {
		t.Errorf("OpenMetrics scrape:\n%s", om)
	}
	if len(tc.Reported) != 0 {
		t.Errorf("reported %v", tc.Reasons)
	}
}

func TestBadRecordsGoToTheErrorPolicy(t *testing.T) {
	task, tc, url := startTask(t, connect.Config{"metric.name.field": "name", "label.fields": "sensor_id", "value.fields": "v"})
	good := rec(map[string]any{"name": "room temp", "sensor_id": "s1", "v": 3.0})
	bad := []connect.Record{
		rec(map[string]any{"name": "x", "sensor_id": "s1"}),                                      // no value
		rec(map[string]any{"name": "x", "sensor_id": "s1", "v": "warm"}),                         // not numeric
		rec(map[string]any{"name": "x", "v": 1.0}),                                               // no label
		rec(map[string]any{"sensor_id": "s1", "v": 1.0}),                                         // no name
		rec(map[string]any{"name": "sluice_prometheus_sink_series", "sensor_id": "s", "v": 1.0}), // reserved
		{Topic: "iot.metrics", Value: "21.5"},                                                    // not an object
	}
	if err := task.Put(t.Context(), append([]connect.Record{good}, bad...)); err != nil {
		t.Fatal(err)
	}
	if len(tc.Reported) != len(bad) {
		t.Fatalf("reported %d records (%v), want %d", len(tc.Reported), tc.Reasons, len(bad))
	}
	var de *connect.DataError
	if !errors.As(tc.Reasons[1], &de) || de.Field != "v" || de.Value != "warm" {
		t.Errorf("reason %v does not name field v and its value", tc.Reasons[1])
	}
	text := scrape(t, url, "")
	if !strings.Contains(text, `room_temp{sensor_id="s1"} 3`) || strings.Contains(text, "\nx{") {
		t.Errorf("scrape:\n%s", text)
	}
	if !strings.Contains(text, `sluice_prometheus_sink_bad_records_total{connector="test",task="0"} 6`) {
		t.Errorf("bad records not counted:\n%s", text)
	}

	// A policy that does not tolerate the record fails Put.
	tc.ReportErr = errors.New("tolerance exceeded")
	if err := task.Put(t.Context(), bad[:1]); !errors.Is(err, tc.ReportErr) {
		t.Errorf("Put = %v, want the policy's error", err)
	}
}

func TestSeriesLimitAndTTL(t *testing.T) {
	task, _, url := startTask(t, connect.Config{"metric.name": "m", "label.fields": "id", "series.max": "2", "series.ttl": "1h"})
	now := time.Unix(1000, 0)
	task.store.mu.Lock()
	task.store.now = func() time.Time { return now }
	task.store.mu.Unlock()
	put := func(ids ...string) {
		for _, id := range ids {
			if err := task.Put(t.Context(), []connect.Record{rec(map[string]any{"id": id, "value": 1.0})}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("a", "b", "c", "a")
	text := scrape(t, url, "")
	for _, want := range []string{`m{id="a"} 1`, `m{id="b"} 1`, `sluice_prometheus_sink_series_dropped_total{connector="test",task="0"} 1`, `sluice_prometheus_sink_series{connector="test",task="0"} 2`} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `m{id="c"}`) {
		t.Errorf("series beyond the limit served:\n%s", text)
	}
	now = now.Add(40 * time.Minute)
	put("a")
	now = now.Add(40 * time.Minute) // b is 80 min old, a 40
	text = scrape(t, url, "")
	if strings.Contains(text, `m{id="b"}`) || !strings.Contains(text, `m{id="a"} 1`) ||
		!strings.Contains(text, `sluice_prometheus_sink_series_expired_total{connector="test",task="0"} 1`) {
		t.Errorf("after the TTL:\n%s", text)
	}
	put("c") // room again
	if text = scrape(t, url, ""); !strings.Contains(text, `m{id="c"} 1`) {
		t.Errorf("new series after expiry not served:\n%s", text)
	}
}

func TestTimestampsAndCounters(t *testing.T) {
	task, _, url := startTask(t, connect.Config{"metric.name": "events_total", "metric.type": "counter", "timestamps.enable": "true"})
	if err := task.Put(t.Context(), []connect.Record{rec(map[string]any{"value": int64(5)})}); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, url, "")
	if !strings.Contains(text, "# TYPE events_total counter") || !strings.Contains(text, "events_total 5 1700000000000") {
		t.Errorf("scrape:\n%s", text)
	}
}

func TestTaskAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		id   int
		want string
	}{{"0.0.0.0:9400", 2, "0.0.0.0:9402"}, {"127.0.0.1:0", 3, "127.0.0.1:0"}, {":9400", 0, ":9400"}} {
		if got, err := taskAddress(c.in, c.id); err != nil || got != c.want {
			t.Errorf("taskAddress(%q, %d) = %q, %v", c.in, c.id, got, err)
		}
	}
	if _, err := taskAddress("0.0.0.0:65535", 1); err == nil {
		t.Error("port beyond 65535 accepted")
	}
}
