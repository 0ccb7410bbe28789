package datagen

import (
	"testing"

	"github.com/sluicehq/sluice/connect/connecttest"
)

// TestDocsAreCurrent keeps docs/connectors/datagen.md what connect.Plugin.Markdown makes of the
// registered plugin; `go test ./connectors/... -update` rewrites it.
func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, registered(t), "../../docs/connectors")
}
