package connecttest

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

var update = flag.Bool("update", false, "rewrite docs/connectors/<name>.md from each plugin's config declaration")

// Registered returns the plugin registered under name in the default registry.
func Registered(t testing.TB, name string) connect.Plugin {
	t.Helper()
	p, ok := connect.Default().Lookup(name)
	if !ok || p.Name != name {
		t.Fatalf("plugin %q is not registered", name)
	}
	return p
}

// CheckPlugin is the part of the conformance suite every connector passes without outside
// services: the plugin has a description and documents every setting; its example
// configuration validates; the connector starts with it and returns at most tasks.max task
// configurations; and each task starts and stops. adjust may change the example first (point
// a path at t.TempDir(), say).
func CheckPlugin(t *testing.T, p connect.Plugin, adjust func(connect.Config)) {
	t.Helper()
	if p.Doc == "" {
		t.Errorf("plugin %s has no description", p.Name)
	}
	for _, k := range p.Spec().Keys() {
		if k.Doc == "" {
			t.Errorf("plugin %s: setting %q has no documentation", p.Name, k.Name)
		}
	}
	checkTagLengths(t, p.Name, reflect.TypeOf(p.Config))
	cfg := p.ExampleConfig()
	if err := p.Spec().Validate(cfg); err != nil {
		t.Fatalf("plugin %s: example %v does not validate: %v", p.Name, cfg, err)
	}
	if adjust != nil {
		adjust(cfg)
	}
	conn := p.New()
	if err := conn.Start(t.Context(), cfg, &ConnectorContext{T: t}); err != nil {
		t.Fatalf("plugin %s: Start with the example: %v", p.Name, err)
	}
	defer func() {
		if err := conn.Stop(); err != nil {
			t.Errorf("plugin %s: Stop: %v", p.Name, err)
		}
	}()
	const maxTasks = 2
	tasks, err := conn.TaskConfigs(maxTasks)
	if err != nil || len(tasks) == 0 || len(tasks) > maxTasks {
		t.Fatalf("plugin %s: TaskConfigs(%d) = %d configs, %v", p.Name, maxTasks, len(tasks), err)
	}
	for i, tc := range tasks {
		switch c := conn.(type) {
		case connect.SourceConnector:
			task := c.NewTask()
			if err := task.Start(t.Context(), tc, NewSourceContext(t, i)); err != nil {
				t.Fatalf("plugin %s: task %d: Start: %v", p.Name, i, err)
			}
			if err := task.Stop(); err != nil {
				t.Errorf("plugin %s: task %d: Stop: %v", p.Name, i, err)
			}
		case connect.SinkConnector:
			task := c.NewTask()
			if err := task.Start(t.Context(), tc, NewSinkContext(t, i)); err != nil {
				t.Fatalf("plugin %s: task %d: Start: %v", p.Name, i, err)
			}
			if err := task.Stop(); err != nil {
				t.Errorf("plugin %s: task %d: Stop: %v", p.Name, i, err)
			}
		}
	}
}

// CheckDocs keeps docs/connectors/<name>.md (docsDir is the path to docs/connectors from the
// test's package) what the plugin's config declaration generates; `go test ./connectors/...
// -update` rewrites the pages.
func CheckDocs(t *testing.T, p connect.Plugin, docsDir string) {
	t.Helper()
	path := filepath.Join(docsDir, p.Name+".md")
	want := p.Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s is not what the config declaration generates (%v); run `go test ./connectors/... -update`", path, err)
	}
}

// maxTagDoc is the longest doc a config tag may hold; longer text goes in the struct's Docs
// method, where it can be read (see connect.SpecOf).
const maxTagDoc = 160

// checkTagLengths fails for a doc tag of the config struct t, or of a struct in it, longer than
// maxTagDoc.
func checkTagLengths(t *testing.T, plugin string, typ reflect.Type) {
	t.Helper()
	for typ != nil && typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == nil || typ.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if doc := f.Tag.Get("doc"); len(doc) > maxTagDoc {
			t.Errorf("plugin %s: the doc tag of %s.%s is %d characters; move it to %s's Docs method", plugin, typ, f.Name, len(doc), typ)
		}
		checkTagLengths(t, plugin, f.Type)
	}
}
