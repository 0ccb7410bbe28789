package filesource

import (
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), nil)
}

func TestOneTaskWhateverTasksMax(t *testing.T) {
	c := &Connector{}
	cfg := connecttest.Registered(t, Name).ExampleConfig()
	if err := c.Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()
	tasks, err := c.TaskConfigs(4)
	if err != nil || len(tasks) != 1 || tasks[0]["file"] != cfg["file"] {
		t.Fatalf("TaskConfigs(4) = %v, %v; want one task with the configuration", tasks, err)
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"file": "/tmp/x"},
		{"file": "/tmp/x", "kafka.topic": "t", "poll.interval": "1ms"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}
