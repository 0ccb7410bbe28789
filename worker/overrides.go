package worker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/connect"
)

// Client config overrides: a connector may give its Kafka clients settings of their own with
// producer.override., consumer.override. and admin.override., as far as the worker's
// connector.client.config.override.policy lets it, with Kafka Connect's three policies:
//
//   - None: no overrides.
//   - Principal: only the settings that say who the client is (security.protocol and the
//     SASL mechanism and credentials), so that each connector can act as a principal of its
//     own on the worker's cluster.
//   - All: any client setting.
//
// The default is None: with the others, a connector could point the worker's clients at
// another cluster (bootstrap.servers), or lower their security.protocol, and have the worker
// send its own credentials there. Settings that make the client run a program or load a library
// on the worker are refused under every policy: they are the worker's to give.

// Override policies.
const (
	OverrideNone      = "None"
	OverridePrincipal = "Principal"
	OverrideAll       = "All"
)

// overridePrefixes are the prefixes of client overrides in a connector's config.
var overridePrefixes = []string{"producer.override.", "consumer.override.", "admin.override."}

// principalSettings are the client settings the Principal policy allows: Kafka Connect's
// (security.protocol, sasl.mechanism, sasl.jaas.config) and librdkafka's names for the same.
var principalSettings = []string{"security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.jaas.config", "sasl.username", "sasl.password"}

// overrideErrors checks a connector config's client overrides against the policy and returns
// the refusals by key.
func overrideErrors(policy string, config map[string]string) map[string][]string {
	out := map[string][]string{}
	for k := range config {
		for _, prefix := range overridePrefixes {
			setting, ok := strings.CutPrefix(k, prefix)
			if !ok {
				continue
			}
			if msg := refuseOverride(policy, setting); msg != "" {
				out[k] = append(out[k], msg)
			}
		}
	}
	return out
}

// refuseOverride says why the policy refuses a client setting, or "".
func refuseOverride(policy, setting string) string {
	switch {
	case connect.WorkerOnlyClientSetting(setting):
		return fmt.Sprintf("%s runs a program or loads code on the worker: connectors may not set it under any connector.client.config.override.policy; set it in the worker's configuration", setting)
	case policy == OverrideAll:
		return ""
	case policy == OverridePrincipal && slices.Contains(principalSettings, setting):
		return ""
	case policy == OverridePrincipal:
		return fmt.Sprintf("the worker's connector.client.config.override.policy is Principal, which allows overriding only %s", strings.Join(principalSettings, ", "))
	default:
		return "the worker's connector.client.config.override.policy is None: connectors may not override client settings (a worker may allow them with Principal or All)"
	}
}

// overrideError is overrideErrors as one error, for a task whose stored config the policy
// refuses (written before the policy changed): nil when there is nothing to refuse.
func overrideError(policy string, config map[string]string) error {
	return refusals("client config overrides refused", overrideErrors(policy, config))
}

// refusals joins settings refused by key into one error; nil when there are none.
func refusals(what string, refused map[string][]string) error {
	if len(refused) == 0 {
		return nil
	}
	var lines []string
	for _, k := range sortedKeys(refused) {
		lines = append(lines, k+": "+strings.Join(refused[k], "; "))
	}
	return fmt.Errorf("%s: %s", what, strings.Join(lines, "; "))
}
