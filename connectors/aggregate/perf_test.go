package aggregate

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkParseAndAdd measures the per-frame work of a task without Kafka: parsing a frame
// and adding it to its window.
func BenchmarkParseAndAdd(b *testing.B) {
	p := parser{groupBy: []string{"device_id"}, fields: []string{"temperature", "humidity", "pressure", "luminosity"}, timeField: "ts", idField: "frame_id"}
	a := newAggregator(windowSpec{size: 10_000, advance: 10_000, outOfOrder: 5000, lateness: 60_000, dedupe: true})
	frames := make([][]byte, 10_000)
	for i := range frames {
		frames[i], _ = json.Marshal(map[string]any{"frame_id": fmt.Sprintf("f%d", i), "device_id": fmt.Sprintf("d%d", i%100),
			"ts": time.UnixMilli(int64(i/100) * 100).UTC().Format(time.RFC3339Nano), "temperature": 21.5, "humidity": 40.0, "pressure": 1000.0, "luminosity": 300.0})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := p.parse(frames[i%len(frames)], 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.time += int64(i/len(frames)) * 1000 * 100
		f.id += fmt.Sprint(i / len(frames))
		if _, err := a.add(0, 0, f); err != nil {
			b.Fatal(err)
		}
		if i%50_000 == 0 {
			a.advance(0)
			puts, _, _ := a.changes(0)
			for _, w := range puts {
				_, _ = json.Marshal(w)
			}
		}
	}
}
