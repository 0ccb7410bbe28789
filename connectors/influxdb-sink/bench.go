package influxdbsink

// benchDoc is what the throughput harness (bench_integration_test.go, run with SLUICE_BENCH=1)
// measured, for the plugin's docs. Update it when the figures move.
const benchDoc = "**Throughput.** Not measured yet."
