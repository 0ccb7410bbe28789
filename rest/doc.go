// Package rest is Sluice's HTTP API: Kafka Connect's REST API, same paths, bodies and status
// codes, so tools written for Kafka Connect work unchanged. It reaches the worker through the
// small interface it defines itself.
package rest
