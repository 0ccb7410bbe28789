package prometheussink

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/connect"
)

// TestBenchmark measures, when SLUICE_BENCH=1, records/s through Put against setting the same
// gauges directly with client_golang in the same run, and the time to serve a scrape of
// 100,000 series. Each figure is the median of 3 rounds; the results are BENCH lines.
func TestBenchmark(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") != "1" {
		t.Skip("set SLUICE_BENCH=1 to run the benchmark")
	}
	const records, sensors, batch = 500_000, 1000, 500
	recs := make([]connect.Record, records)
	for i := range recs {
		s := i % sensors
		recs[i] = connect.Record{Value: map[string]any{"sensor_id": "s" + strconv.Itoa(s), "place_id": "p" + strconv.Itoa(s%50), "temperature": float64(i)}}
	}
	median := func(f func() time.Duration) time.Duration {
		var d []time.Duration
		for range 3 {
			d = append(d, f())
		}
		slices.Sort(d)
		return d[1]
	}
	sink := median(func() time.Duration {
		task, _, _ := startTask(t, connect.Config{"metric.name": "iot_temperature", "value.fields": "temperature", "label.fields": "sensor_id,place_id"})
		start := time.Now()
		for i := 0; i < records; i += batch {
			if err := task.Put(t.Context(), recs[i:i+batch]); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	})
	direct := median(func() time.Duration {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iot_temperature", Help: "h"}, []string{"sensor_id", "place_id"})
		start := time.Now()
		for _, r := range recs {
			v := r.Value.(map[string]any)
			g.WithLabelValues(v["sensor_id"].(string), v["place_id"].(string)).Set(v["temperature"].(float64))
		}
		return time.Since(start)
	})
	rate := func(d time.Duration) float64 { return float64(records) / d.Seconds() }
	fmt.Printf("BENCH prometheus-sink put: %.0f records/s (1 value, 2 labels, %d series, batches of %d)\n", rate(sink), sensors, batch)
	fmt.Printf("BENCH client_golang GaugeVec.Set: %.0f records/s\n", rate(direct))
	fmt.Printf("BENCH ratio sink/direct: %.2f\n", rate(sink)/rate(direct))

	const many = 100_000
	task, _, url := startTask(t, connect.Config{"metric.name": "iot_temperature", "label.fields": "sensor_id,place_id", "series.max": "200000"})
	big := make([]connect.Record, many)
	for i := range big {
		big[i] = connect.Record{Value: map[string]any{"sensor_id": "s" + strconv.Itoa(i), "place_id": "p" + strconv.Itoa(i%50), "value": float64(i)}}
	}
	if err := task.Put(t.Context(), big); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, format := range []string{"text/plain", "application/openmetrics-text; version=1.0.0"} {
		d := median(func() time.Duration {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Accept", format)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			size, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return time.Since(start)
		})
		fmt.Printf("BENCH scrape of %d series (%s): %v, %d bytes\n", many, format, d.Round(time.Millisecond), size)
	}
}
