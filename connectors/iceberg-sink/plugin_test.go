package icebergsink

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), func(cfg connect.Config) {
		dir := t.TempDir()
		cfg["catalog.uri"] = "sqlite://" + filepath.Join(dir, "catalog.db")
		cfg["warehouse"] = "file://" + filepath.Join(dir, "warehouse")
	})
}

func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, connecttest.Registered(t, Name), "../../docs/connectors")
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	base := func(kv ...string) connect.Config {
		c := connect.Config{"catalog.uri": "sqlite://" + filepath.Join(t.TempDir(), "c.db"), "warehouse": "file:///tmp/wh"}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i]] = kv[i+1]
		}
		return c
	}
	for _, cfg := range []connect.Config{
		{},
		base("catalog.type", "hive"),
		base("table.route", "static"),
		base("table.route", "field"),
		base("table.partition.by", "week(event_time)"),
		base("warehouse", "gs://bucket/x"),
		base("commit.interval", "0"),
		base("catalog.uri", "postgres://nobody@127.0.0.1:1/none"),
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}
