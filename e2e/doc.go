// Package e2e holds Sluice's end-to-end pipeline test (issue 11): simulated sensors publish
// over MQTT to the test Mosquitto, mqtt-source writes the frames to Kafka, two aggregate
// connectors turn them into per-device and per-place windows, and sinks write raw frames and
// aggregates to MongoDB, PostgreSQL (the timescale-sink; TimescaleDB itself is not in the test
// environment), an Iceberg lake and a Prometheus scrape endpoint that the test Prometheus
// scrapes. All of it runs in real worker processes on the real test services
// (scripts/testenv), once as is and once with a worker killed mid-stream, and the test checks
// every store against what the simulator reports it sent.
//
// The package has no code of its own: everything is in its tests, which skip when the test
// services are not running.
package e2e
