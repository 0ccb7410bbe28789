package icebergsink

import (
	"path/filepath"
	"slices"
	"testing"

	icebergio "github.com/apache/iceberg-go/io"

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

// The warehouse schemes the configuration accepts each have a file IO linked in: the sink
// imports only iceberg-go's S3 registration (GCS and Azure, not offered, would add 22 MB of
// code to the binary), and dropping that import would fail s3:// warehouses at run time only.
func TestWarehouseSchemesHaveFileIO(t *testing.T) {
	registered := icebergio.GetRegisteredSchemes()
	for _, scheme := range []string{"file", "s3", "s3a", "s3n"} {
		if !slices.Contains(registered, scheme) {
			t.Errorf("no iceberg-go file IO for %s:// warehouses (registered: %v)", scheme, registered)
		}
	}
}
