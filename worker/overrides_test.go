package worker

import (
	"strings"
	"testing"
)

func TestOverridePolicies(t *testing.T) {
	config := map[string]string{
		"connector.class":                     "datagen",
		"producer.override.bootstrap.servers": "attacker:9092",
		"producer.override.security.protocol": "SASL_PLAINTEXT",
		"consumer.override.sasl.username":     "tenant-a",
		"admin.override.plugin.library.paths": "/tmp/evil.so",
		"producer.override.linger.ms":         "5",
	}
	for _, tt := range []struct {
		policy  string
		refused []string
	}{
		{OverrideNone, []string{"admin.override.plugin.library.paths", "consumer.override.sasl.username", "producer.override.bootstrap.servers", "producer.override.linger.ms", "producer.override.security.protocol"}},
		{OverridePrincipal, []string{"admin.override.plugin.library.paths", "producer.override.bootstrap.servers", "producer.override.linger.ms"}},
		{OverrideAll, []string{"admin.override.plugin.library.paths"}},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			got := overrideErrors(tt.policy, config)
			if keys := sortedKeys(got); strings.Join(keys, ",") != strings.Join(tt.refused, ",") {
				t.Errorf("refused %v, want %v", keys, tt.refused)
			}
			for k, msgs := range got {
				if !strings.Contains(msgs[0], "connector.client.config.override.policy") {
					t.Errorf("%s: %q does not name the policy setting", k, msgs[0])
				}
			}
			err := overrideError(tt.policy, config)
			if err == nil || !strings.Contains(err.Error(), "admin.override.plugin.library.paths") {
				t.Errorf("overrideError = %v, want it to name the refused key", err)
			}
		})
	}
	if err := overrideError(OverrideNone, map[string]string{"connector.class": "datagen", "tasks.max": "2"}); err != nil {
		t.Errorf("a config without overrides: %v", err)
	}
}
