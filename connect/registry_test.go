package connect

import (
	"context"
	"testing"
)

type nopSource struct{ Base }

func (*nopSource) NewTask() SourceTask { return nil }

type nopSink struct{ Base }

func (*nopSink) NewTask() SinkTask { return nil }

type notAConnector struct{ Base }

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	r.Register(Plugin{Name: "mqtt-source", Config: testConfig{}, New: func() Connector { return &nopSource{} }})
	r.Register(Plugin{Name: "file", Config: tlsConfig{}, New: func() Connector { return &nopSink{} }})

	for _, name := range []string{"mqtt-source", "MqttSource", "MqttSourceConnector", "io.sluice.MqttSourceConnector"} {
		p, ok := r.Lookup(name)
		if !ok || p.Name != "mqtt-source" || p.Type != SourceType {
			t.Errorf("Lookup(%q) = %v %v", name, p.Name, ok)
		}
	}
	if p, _ := r.Lookup("FileConnector"); p.Type != SinkType {
		t.Errorf("file is %q, want sink", p.Type)
	}
	if _, ok := r.Lookup("mqtt"); ok {
		t.Error("a prefix must not match")
	}
	if ps := r.Plugins(); len(ps) != 2 || ps[0].Name != "file" {
		t.Errorf("Plugins() = %v, want sorted", ps)
	}

	mustPanic := func(name string, p Plugin) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: Register did not panic", name)
			}
		}()
		r.Register(p)
	}
	mustPanic("duplicate", Plugin{Name: "file", Config: tlsConfig{}, New: func() Connector { return &nopSink{} }})
	mustPanic("no name", Plugin{Config: tlsConfig{}, New: func() Connector { return &nopSink{} }})
	mustPanic("neither source nor sink", Plugin{Name: "x", Config: tlsConfig{}, New: func() Connector { return &notAConnector{} }})
}

func TestBaseReplicatesConfig(t *testing.T) {
	var b Base
	if err := b.Start(context.Background(), Config{"a": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	cfgs, _ := b.TaskConfigs(3)
	cfgs[0]["a"] = "changed"
	if len(cfgs) != 3 || cfgs[1]["a"] != "1" {
		t.Fatalf("TaskConfigs(3) = %v: want 3 independent copies", cfgs)
	}
}
