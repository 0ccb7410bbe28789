package worker_test

import (
	"testing"

	_ "github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// newCluster is a test cluster whose workers also run the test plugins of plugins_test.go.
func newCluster(t *testing.T) *sluicetest.Cluster {
	t.Helper()
	c := sluicetest.NewCluster(t)
	registerTestPlugins(c.Registry)
	return c
}
