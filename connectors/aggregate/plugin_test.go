package aggregate_test

import (
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/connectors/aggregate"
)

func TestPlugin(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, aggregate.Name), nil)
}

func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, connecttest.Registered(t, aggregate.Name), "../../docs/connectors")
}

func TestConfigRejectsBadSettings(t *testing.T) {
	base := func(extra connect.Config) connect.Config {
		c := connect.Config{"kafka.bootstrap.servers": "k:9092", "source.topic": "raw", "output.topic": "agg"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	spec := connecttest.Registered(t, aggregate.Name).Spec()
	if err := spec.Validate(base(nil)); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  connect.Config
		key  string
	}{
		{"no bootstrap", connect.Config{"source.topic": "raw", "output.topic": "agg"}, "kafka.bootstrap.servers"},
		{"unknown aggregation", base(connect.Config{"aggregations": "avg,median"}), "aggregations"},
		{"advance above size", base(connect.Config{"window.size": "1m", "window.advance": "2m"}), "window.advance"},
		{"output is source", base(connect.Config{"output.topic": "raw"}), "output.topic"},
		{"late is source", base(connect.Config{"late.topic": "raw"}), "late.topic"},
		{"bad partitioning", base(connect.Config{"partitioning": "random"}), "partitioning"},
		{"sub-millisecond window", base(connect.Config{"window.size": "1500us"}), "window.size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			byKey, other := connect.FieldErrors(spec.Validate(tc.cfg))
			if len(byKey[tc.key]) == 0 {
				t.Errorf("Validate(%v): no error on %s; got %v %v", tc.cfg, tc.key, byKey, other)
			}
		})
	}
}

func TestGlobalPartitioningHasOneTask(t *testing.T) {
	c := &aggregate.Connector{}
	cfg := connect.Config{"kafka.bootstrap.servers": "k:9092", "source.topic": "raw", "output.topic": "agg", "partitioning": "global"}
	if err := c.Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err != nil {
		t.Fatal(err)
	}
	if tasks, err := c.TaskConfigs(4); err != nil || len(tasks) != 1 {
		t.Errorf("TaskConfigs(4) = %d, %v; want 1", len(tasks), err)
	}
	cfg["partitioning"] = "aligned"
	if err := c.Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err != nil {
		t.Fatal(err)
	}
	if tasks, err := c.TaskConfigs(4); err != nil || len(tasks) != 4 {
		t.Errorf("TaskConfigs(4) = %d, %v; want 4", len(tasks), err)
	}
}
