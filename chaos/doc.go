// Package chaos is Sluice's chaos suite (issue "Nothing lost, nothing stuck", items 0 and 17):
// three worker processes on a three-broker Kafka run mqtt-source (two tasks on one MQTT shared
// subscription, QoS 1, writing to a topic that does not exist yet and that topic.creation makes
// with six partitions) into timescale-sink, mongodb-sink and iceberg-sink, while the simulator
// publishes frames over MQTT QoS 1, starting as soon as both source tasks have subscribed. During
// the run a worker is SIGKILLed and restarted every 20 s, one Kafka broker is stopped and started
// again, and PostgreSQL and MongoDB are each restarted once. An independent checker
// (package chaos/check, which imports no Sluice code) then looks for every frame the simulator
// sent in each store and prints, as BENCH chaos lines, the frames sent, found, lost and
// duplicated per store, the kills and restarts, and the longest time any task was not RUNNING.
//
// `make chaos` runs the full suite (5 minutes at 2,000 frames/s); `make test` runs a shortened
// run in its three-broker phase. The duration, rate and kill period come from
// SLUICE_CHAOS_DURATION, SLUICE_CHAOS_RATE and SLUICE_CHAOS_KILL_EVERY. The package has no
// code of its own besides the checker: the suite is its test, which skips unless the test
// services run with three Kafka brokers.
package chaos
