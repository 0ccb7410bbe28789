package influxdbsink

import (
	"testing"

	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), nil)
}

func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, connecttest.Registered(t, Name), "../../docs/connectors")
}
