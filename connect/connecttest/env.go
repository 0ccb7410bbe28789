// Package connecttest helps test connectors and the runtime: it finds the real test services
// started by scripts/testenv (Env), stands in for the runtime's contexts (SourceContext,
// SinkContext, ConnectorContext), and holds the checks every connector should pass:
// CheckPlugin and CheckDocs without outside services, and the acceptance checks CheckSink and
// CheckSource, which run a connector against its real test server as the runtime would and
// fail when it loses, changes or repeats a record or leaves a goroutine running after Stop.
package connecttest

import (
	"os"
	"testing"
)

// Environment variables written to .testenv/env by scripts/testenv.
const (
	EnvKafka         = "SLUICE_TEST_KAFKA"
	EnvKafkaBrokers  = "SLUICE_TEST_KAFKA_BROKERS"
	EnvPostgres      = "SLUICE_TEST_POSTGRES"       // a database with the timescaledb extension
	EnvPostgresPlain = "SLUICE_TEST_POSTGRES_PLAIN" // one without it, on the same server
	EnvMQTT          = "SLUICE_TEST_MQTT"
	EnvMQTTTLS       = "SLUICE_TEST_MQTT_TLS"
	EnvMQTTTLSCA     = "SLUICE_TEST_MQTT_TLS_CA"
	EnvMQTTTLSCert   = "SLUICE_TEST_MQTT_TLS_CERT"
	EnvMQTTTLSKey    = "SLUICE_TEST_MQTT_TLS_KEY"
	EnvMongoDB       = "SLUICE_TEST_MONGODB"
	EnvPrometheus    = "SLUICE_TEST_PROMETHEUS"
	EnvPrometheusSD  = "SLUICE_TEST_PROMETHEUS_SD_DIR"
	EnvInfluxDB      = "SLUICE_TEST_INFLUXDB" // InfluxDB 1.8: /write, /api/v2/write, /query
	EnvTestenvDir    = "SLUICE_TEST_ENV_DIR"
	EnvTestenvScript = "SLUICE_TEST_ENV_SCRIPT"
)

// Env returns the value of the named test-service variable, or skips the test, naming the
// variable, when it is not set. Integration tests call it first, so that plain `go test ./...`
// passes anywhere and `make test` runs them against the real services.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("integration test skipped: %s is not set (run `make test`, or `scripts/testenv up` and source .testenv/env)", name)
	}
	return v
}

// Envs is Env for several variables at once, returned in the same order.
func Envs(t testing.TB, names ...string) []string {
	t.Helper()
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = Env(t, n)
	}
	return out
}
