package connect

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// workerOnlyClientSettings are Kafka client (librdkafka) settings that make a client run a
// program or load a library on the worker. Whoever may create a connector could run code on
// the worker with them, so no connector setting may pass them to a client: only the worker's
// own configuration gives them.
var workerOnlyClientSettings = []string{"plugin.library.paths", "sasl.kerberos.kinit.cmd", "ssl.engine.location", "ssl.engine.id"}

// WorkerOnlyClientSetting reports whether a Kafka client setting is one that runs a program or
// loads code on the worker, which connectors may not give their clients.
func WorkerOnlyClientSetting(name string) bool {
	return slices.Contains(workerOnlyClientSettings, name)
}

// CheckClientSettings refuses the settings of cfg that pass a worker-only client setting to a
// Kafka client through prefix (a connector's kafka.<property> settings, say): one FieldError
// per such key.
func CheckClientSettings(cfg Config, prefix string) error {
	var keys []string
	for k := range cfg {
		if name, ok := strings.CutPrefix(k, prefix); ok && WorkerOnlyClientSetting(name) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		errs = append(errs, &FieldError{Key: k, Message: fmt.Sprintf("%s runs a program or loads code on the worker: connectors may not set it; set it in the worker's configuration", strings.TrimPrefix(k, prefix))})
	}
	return errors.Join(errs...)
}
