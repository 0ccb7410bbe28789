package mongodbsink

import (
	"testing"

	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, connecttest.Registered(t, Name), "../../docs/connectors")
}
