package file

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), func(cfg connect.Config) {
		cfg["file"] = filepath.Join(t.TempDir(), filepath.Base(cfg["file"])) // keep the example's {task}
	})
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"file": "/tmp/x", "format": "csv"},
		{"file": "/tmp/x", "fsync": "sometimes"},
		{"file": "/tmp/x", "buffer.bytes": "-1"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}
