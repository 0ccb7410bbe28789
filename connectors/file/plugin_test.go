package file

import (
	"log/slog"
	"path/filepath"
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
	if p.Type != connect.SinkType || p.Doc == "" {
		t.Errorf("plugin type %q doc %q: want a documented sink", p.Type, p.Doc)
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
	cfg["file"] = filepath.Join(t.TempDir(), filepath.Base(cfg["file"])) // keep the example's {task}
	c := p.New().(connect.SinkConnector)
	if err := c.Start(t.Context(), cfg, fakeConnectorContext{}); err != nil {
		t.Fatalf("Start with the example: %v", err)
	}
	defer c.Stop()
	tasks, err := c.TaskConfigs(2)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("TaskConfigs(2) = %d configs, %v", len(tasks), err)
	}
	for i, tcfg := range tasks {
		task := c.NewTask()
		if err := task.Start(t.Context(), tcfg, newFakeSinkContext(t, i)); err != nil {
			t.Fatalf("task %d: Start: %v", i, err)
		}
		if err := task.Stop(); err != nil {
			t.Errorf("task %d: Stop: %v", i, err)
		}
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"file": "/tmp/x", "format": "csv"},
		{"file": "/tmp/x", "fsync": "sometimes"},
		{"file": "/tmp/x", "buffer.bytes": "-1"},
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
