package mqttsource

import (
	"testing"
	"time"
)

// ShortenTidyDelays makes the connectors of in-process workers end unused sessions in quick
// passes, for the rest of the test. Call it before starting workers.
func ShortenTidyDelays(t testing.TB) {
	old, oldSettle := tidyDelays, deletedSettle
	tidyDelays, deletedSettle = []time.Duration{0, 300 * time.Millisecond, time.Second}, 300*time.Millisecond
	t.Cleanup(func() { tidyDelays, deletedSettle = old, oldSettle }) // registered first: runs after the workers stopped
}
