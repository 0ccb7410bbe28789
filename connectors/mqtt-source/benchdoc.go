package mqttsource

// benchmarkDoc is the throughput TestBenchmarkAgainstRawSubscriber measured (SLUICE_BENCH=1),
// for the docs page. Update it when the figures change.
const benchmarkDoc = "**Throughput.** MQTT to Kafka through one task (MQTT v5), against a raw paho.golang subscriber " +
	"that only receives, on the same Mosquitto in the same run (100-byte payloads from 4 publishers, " +
	"`payload.format=bytes` with the ByteArrayConverter, each figure the median of 3 rounds of 100,000 messages). " +
	"The test machine has 2 cores, runs Kafka and Mosquitto too, and ran other test suites at the same time " +
	"(load average 5 to 9), so single rounds vary by a factor of two; three runs gave: QoS 1, 17,610, 11,999 and " +
	"22,319 messages/s against 21,963, 9,261 and 21,940 (ratios 0.80, 1.30 and 1.02), every message delivered; " +
	"QoS 0, 53,921, 39,380 and 66,587 messages/s against 76,137, 54,523 and 84,772 (ratios 0.71, 0.72 and 0.79; two " +
	"earlier runs with the same QoS 0 path gave 0.87 twice). At QoS 0 the broker drops messages a subscriber does " +
	"not take in time, and the task also pays for writing to Kafka on the same two cores, which the raw " +
	"subscriber does not. The target is 0.8 of raw. Poll lingers up to 5 ms on an empty buffer to make batches: " +
	"that much added latency at QoS 0, about 1 ms for a quiet stream at QoS 1 and 2."
