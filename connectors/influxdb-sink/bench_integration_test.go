package influxdbsink

import (
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/sluicehq/sluice/connect"
)

// The throughput harness compares the task with influxdb-client-go's own blocking write API
// sending the same points to the same server in the same run. The records are what the
// runtime hands a task after the JSON converter (maps), 500 per Put (the runtime's
// consumer.max.batch.records default); the task writes 5,000 points per request (batch.size);
// the raw side builds the same points by hand with write.NewPoint and writes 5,000 per
// WritePoint call. Both gzip, as the sink does by default. Each side writes a measurement of
// its own; the sides take turns going first. It runs only with SLUICE_BENCH=1.

const (
	benchRecords = 200_000
	benchPut     = 500
	benchWrite   = 5000
	benchRounds  = 3
)

func benchBatch() []connect.Record {
	recs := make([]connect.Record, benchRecords)
	for i := range recs {
		recs[i] = connect.Record{Topic: "bench", KafkaPartition: int32(i % 3), KafkaOffset: int64(i / 3), Value: map[string]any{
			"device_id": fmt.Sprintf("dev-%03d", i%200), "place_id": fmt.Sprintf("place-%02d", i%20), "seq": int64(i),
			"ts":      time.UnixMicro(1714564800000000 + int64(i)).UTC().Format(time.RFC3339Nano),
			"reading": map[string]any{"temp": 20 + float64(i%100)/10, "hum": 40 + float64(i%50)/10},
		}}
	}
	return recs
}

func TestThroughputVsClientWrite(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("throughput harness skipped: set SLUICE_BENCH=1 to run it")
	}
	base, db := testDatabase(t)
	recs := benchBatch()
	var sluice, raw []float64
	for round := range benchRounds {
		connector := func() {
			task, _ := startTask(t, base, "influxdb.bucket", db, "measurement.name", fmt.Sprint("sluice_", round), "tags", "device_id,place_id",
				"time.field", "ts", "batch.size", fmt.Sprint(benchWrite), "batch.linger", "10m")
			start := time.Now()
			for i := 0; i < len(recs); i += benchPut {
				if err := task.Put(t.Context(), recs[i:min(i+benchPut, len(recs))]); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := task.PreCommit(t.Context(), connect.Offsets{}); err != nil {
				t.Fatal(err)
			}
			sluice = append(sluice, float64(len(recs))/time.Since(start).Seconds())
		}
		rawSide := func() {
			client := influxdb2.NewClientWithOptions(base, "", influxdb2.DefaultOptions().SetUseGZip(true).SetPrecision(time.Nanosecond))
			defer client.Close()
			w := client.WriteAPIBlocking("", db)
			m := fmt.Sprint("raw_", round)
			start := time.Now()
			points := make([]*write.Point, 0, benchWrite)
			for i := range recs {
				v := recs[i].Value.(map[string]any)
				r := v["reading"].(map[string]any)
				ts, err := time.Parse(time.RFC3339Nano, v["ts"].(string))
				if err != nil {
					t.Fatal(err)
				}
				points = append(points, write.NewPoint(m, map[string]string{"device_id": v["device_id"].(string), "place_id": v["place_id"].(string)},
					map[string]any{"seq": float64(v["seq"].(int64)), "reading_temp": r["temp"], "reading_hum": r["hum"]}, ts))
				if len(points) == benchWrite || i == len(recs)-1 {
					if err := w.WritePoint(t.Context(), points...); err != nil {
						t.Fatal(err)
					}
					points = points[:0]
				}
			}
			raw = append(raw, float64(len(recs))/time.Since(start).Seconds())
		}
		if round%2 == 0 {
			connector()
			rawSide()
		} else {
			rawSide()
			connector()
		}
		for _, m := range []string{fmt.Sprint("sluice_", round), fmt.Sprint("raw_", round)} {
			if got := influxQL(t, base, db, "SELECT count(reading_temp) FROM "+m); len(got) != 1 || got[0] != fmt.Sprintf("0|%d", benchRecords) {
				t.Fatalf("%s holds %v, want %d points", m, got, benchRecords)
			}
		}
	}
	s, r := median(sluice), median(raw)
	t.Logf("connector %.0f points/s, influxdb-client-go %.0f points/s, ratio %.2f (rounds: %.0f vs %.0f)", s, r, s/r, sluice, raw)
	fmt.Printf("BENCH influxdb sluice=%.0f raw=%.0f ratio=%.2f\n", s, r, s/r)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
