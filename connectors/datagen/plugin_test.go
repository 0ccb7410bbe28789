package datagen

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

func TestExampleConfigStartsTasks(t *testing.T) {
	p := registered(t)
	cfg := p.ExampleConfig()
	if err := p.Spec().Validate(cfg); err != nil {
		t.Fatalf("example %v does not validate: %v", cfg, err)
	}
	c := p.New().(connect.SourceConnector)
	if err := c.Start(t.Context(), cfg, fakeConnectorContext{}); err != nil {
		t.Fatalf("Start with the example: %v", err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()
	tasks, err := c.TaskConfigs(3)
	if err != nil || len(tasks) != 3 {
		t.Fatalf("TaskConfigs(3) = %d configs, %v", len(tasks), err)
	}
	for i, tcfg := range tasks {
		task := c.NewTask()
		if err := task.Start(t.Context(), tcfg, newFakeSourceContext(t, i)); err != nil {
			t.Fatalf("task %d: Start: %v", i, err)
		}
		if err := task.Stop(); err != nil {
			t.Error(err)
		}
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"kafka.topic": "t", "format": "avro"},
		{"kafka.topic": "t", "partitions": "0"},
		{"kafka.topic": "bad topic"},
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
