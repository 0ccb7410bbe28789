package connect

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// PluginType says which way a connector moves data.
type PluginType string

// The plugin types, as the REST API names them.
const (
	SourceType PluginType = "source"
	SinkType   PluginType = "sink"
)

// Plugin is a registered connector.
type Plugin struct {
	// Name is what connector.class takes: the connector's folder name, like "mqtt-source".
	Name string
	// Version of the connector; the runtime shows the Sluice version when empty.
	Version string
	// Doc says in a sentence or two what the connector does.
	Doc string
	// Config is a zero value of the connector's config struct; its tags declare the settings.
	Config any
	// New returns a new SourceConnector or SinkConnector.
	New func() Connector
	// Type is derived from what New returns.
	Type PluginType
}

// Spec returns the plugin's declared settings.
func (p Plugin) Spec() *Spec { return SpecOf(p.Config) }

// Registry holds plugins by name. The package-level functions use the default registry that
// connectors register themselves in; tests may build their own with NewRegistry.
type Registry struct {
	mu      sync.RWMutex
	plugins map[string]Plugin
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{plugins: map[string]Plugin{}} }

var defaultRegistry = NewRegistry()

// Default returns the registry connectors register themselves in.
func Default() *Registry { return defaultRegistry }

// Register adds a plugin to the default registry. Call it from the connector package's init.
func Register(p Plugin) { defaultRegistry.Register(p) }

// Register adds a plugin. It panics when the name is empty or taken, New is missing, New
// returns neither a SourceConnector nor a SinkConnector, or the config declaration is malformed.
func (r *Registry) Register(p Plugin) {
	if p.Name == "" || p.New == nil || p.Config == nil {
		panic(fmt.Sprintf("connect: Register needs a Name, New and Config: %+v", p))
	}
	switch p.New().(type) {
	case SourceConnector:
		p.Type = SourceType
	case SinkConnector:
		p.Type = SinkType
	default:
		panic(fmt.Sprintf("connect: plugin %q: New returns neither a SourceConnector nor a SinkConnector", p.Name))
	}
	p.Spec() // panics on a malformed declaration
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.plugins[p.Name]; dup {
		panic(fmt.Sprintf("connect: plugin %q registered twice", p.Name))
	}
	r.plugins[p.Name] = p
}

// Lookup finds a plugin by its name, also answering, as Kafka Connect's aliases do, to the
// name with a "Connector" suffix added or dropped, ignoring case, dashes and dots: mqtt-source,
// MqttSource and MqttSourceConnector all find the same plugin.
func (r *Registry) Lookup(name string) (Plugin, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if p, ok := r.plugins[name]; ok {
		return p, true
	}
	want := aliasOf(name)
	for n, p := range r.plugins {
		if aliasOf(n) == want {
			return p, true
		}
	}
	return Plugin{}, false
}

func aliasOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 { // a Java-style class name
		name = name[i+1:]
	}
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(name))
	return strings.TrimSuffix(n, "connector")
}

// Plugins returns every registered plugin sorted by name.
func (r *Registry) Plugins() []Plugin {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Plugin, 0, len(r.plugins))
	for _, p := range r.plugins {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
