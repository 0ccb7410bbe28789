package timescalesink

// benchDoc is what the throughput harness (bench_integration_test.go, run with SLUICE_BENCH=1)
// measured, for the plugin's docs. Update it when the figures move.
const benchDoc = "**Throughput.** `SLUICE_BENCH=1 go test -run TestThroughputVsRawCopy ./connectors/timescale-sink/` " +
	"puts 200,000 readings (time, device, sequence and two nested values, as the JSON converter hands them over) in " +
	"batches of 500 and compares the task with raw pgx doing the same work on the same rows in the same run: " +
	"`CopyFrom` per batch for append, COPY into a temporary table and `INSERT ... ON CONFLICT` in a transaction per " +
	"batch for upsert; each figure is the median of 3 rounds. Against PostgreSQL 15 on loopback, on a shared 2-core " +
	"machine, six runs gave: append about 280,000 rows/s against 350,000 for raw `CopyFrom`, a ratio of 0.74 to 0.90 " +
	"(median 0.83); upsert about 80,000 rows/s against 75,000, 0.90 to 1.22 (median 1.03); append with `exactly.once` " +
	"about 245,000 rows/s against 355,000, 0.69 to 0.75, its transaction and offsets statement costing two more round " +
	"trips per batch. The task maps large batches on two goroutines; most of the rest is the database's own work."
