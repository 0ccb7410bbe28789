package filesource

import (
	"log/slog"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

func registered(t *testing.T) connect.Plugin {
	t.Helper()
	p, ok := connect.Default().Lookup(Name)
	if !ok {
		t.Fatalf("plugin %q is not registered", Name)
	}
	return p
}

func TestPluginIsDocumented(t *testing.T) {
	p := registered(t)
	if p.Type != connect.SourceType || p.Doc == "" {
		t.Errorf("plugin type %q doc %q: want a documented source", p.Type, p.Doc)
	}
	for _, k := range p.Spec().Keys() {
		if k.Doc == "" {
			t.Errorf("setting %q has no documentation", k.Name)
		}
	}
}

func TestExampleConfigPlansOneTask(t *testing.T) {
	p := registered(t)
	cfg := p.ExampleConfig()
	if err := p.Spec().Validate(cfg); err != nil {
		t.Fatalf("example %v does not validate: %v", cfg, err)
	}
	c := p.New().(connect.SourceConnector)
	if err := c.Start(t.Context(), cfg, fakeConnectorContext{}); err != nil {
		t.Fatalf("Start with the example: %v", err)
	}
	defer c.Stop()
	tasks, err := c.TaskConfigs(4)
	if err != nil || len(tasks) != 1 || tasks[0]["file"] != cfg["file"] {
		t.Fatalf("TaskConfigs(4) = %v, %v; want one task with the configuration", tasks, err)
	}
	task := c.NewTask()
	if err := task.Start(t.Context(), tasks[0], newFakeSourceContext(t, 0)); err != nil {
		t.Fatalf("task Start: %v", err)
	}
	if err := task.Stop(); err != nil {
		t.Errorf("task Stop: %v", err)
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"file": "/tmp/x"},
		{"file": "/tmp/x", "kafka.topic": "t", "poll.interval": "1ms"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, fakeConnectorContext{}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}

type fakeConnectorContext struct{}

func (fakeConnectorContext) RequestTaskReconfiguration() {}
func (fakeConnectorContext) RaiseError(error)            {}
func (fakeConnectorContext) Logger() *slog.Logger        { return slog.Default() }
