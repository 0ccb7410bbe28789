package timescalesink

// benchDoc is what the throughput harness (bench_integration_test.go, run with SLUICE_BENCH=1)
// measured, for the plugin's docs. Update it when the figures move.
const benchDoc = "**Throughput.** `SLUICE_BENCH=1 go test -run TestThroughputVsRawCopy ./connectors/timescale-sink/` " +
	"puts 200,000 readings (time, device, sequence and two nested values, as the JSON converter hands them over) in " +
	"batches of 500 and compares the task with raw pgx doing the same work on the same rows in the same run: " +
	"`CopyFrom` per batch for append, COPY into a temporary table and `INSERT ... ON CONFLICT` in a transaction per " +
	"batch for upsert; each figure is the median of 3 rounds, on a hypertable (TimescaleDB 2.28.3, default chunk " +
	"interval) and on a plain table. Against PostgreSQL 15 on loopback, on a shared 2-core machine, three runs gave, " +
	"on a hypertable: append 300,000-345,000 rows/s against 385,000-392,000 for raw `CopyFrom`, a ratio of 0.79 to " +
	"0.88; upsert 101,000-107,000 rows/s against 104,000-113,000, 0.93 to 0.97; append with `exactly.once` " +
	"256,000-269,000 rows/s, 0.66 to 0.67, its transaction and offsets statement costing two more round trips per " +
	"batch. On a plain table: append 0.80 to 0.83 (380,000-433,000 rows/s), upsert 1.17 to 1.21 (109,000-122,000), " +
	"append with `exactly.once` 0.64 to 0.69. The task maps large batches on two goroutines; most of the rest is the " +
	"database's own work."
