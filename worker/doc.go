// Package runtime is the Sluice worker: it runs source and sink connectors with Kafka
// Connect's semantics, keeps configs, offsets and statuses in compacted Kafka topics, owns
// batching, retries, offset commits, the error policy and the dead-letter queue, and exports
// metrics. The rest package drives it over HTTP.
package worker
