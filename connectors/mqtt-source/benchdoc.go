package mqttsource

// benchmarkDoc is the throughput TestBenchmarkAgainstRawSubscriber measured (SLUICE_BENCH=1),
// for the docs page. Update it when the figures change.
const benchmarkDoc = "**Throughput.** MQTT to Kafka through one task, against a raw paho.golang subscriber that only " +
	"receives, on the same Mosquitto in the same run (100-byte payloads from 4 publishers, " +
	"`payload.format=bytes` with the ByteArrayConverter, medians of 3 rounds of 100,000 messages, a shared " +
	"2-core test machine that also runs Kafka and Mosquitto): QoS 1, 9,834 messages/s against 12,386 (ratio " +
	"0.79), every message delivered; QoS 0, 32,213 messages/s against 48,340 (ratio 0.67), where the broker " +
	"drops QoS 0 messages a slower subscriber cannot take (the task received 48 to 69% of them, the raw " +
	"subscriber 75 to 100%). The target is 0.8 of raw."
