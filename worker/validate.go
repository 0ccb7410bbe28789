package worker

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/redact"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/task"
	"github.com/sluicehq/sluice/worker/transform"
)

// validateConnector checks a connector configuration against its plugin: the common settings,
// the plugin's declaration, converters and transformations, and the connector's own Validate.
// It returns the plugin, the errors by key, and errors that belong to no key.
func (w *Worker) validateConnector(ctx context.Context, config map[string]string) (connect.Plugin, map[string][]string, error) {
	class := config["connector.class"]
	if class == "" {
		return connect.Plugin{}, nil, api.Errorf(api.ErrBadRequest, "Connector config %v contains no connector type (connector.class)", keysOf(config))
	}
	p, ok := w.registry.Lookup(class)
	if !ok {
		return connect.Plugin{}, nil, api.Errorf(api.ErrBadRequest, "Failed to find any class that implements Connector and which name matches %s; available connectors are: %s", class, strings.Join(w.pluginNames(), ", "))
	}
	res, err := w.cfg.Providers.resolve(config)
	byKey := map[string][]string{}
	add := func(err error) {
		fields, other := connect.FieldErrors(err)
		for k, msgs := range fields {
			if connect.HasPlaceholder(config[k]) {
				// The messages speak of the resolved value, in words that scrubbing may
				// miss (quoted, escaped, cut short): say what was wrong without it.
				msgs = []string{placeholderInvalid(config[k], k)}
			}
			for _, m := range msgs {
				byKey[k] = append(byKey[k], redact.Scrub(m, res.secrets))
			}
		}
		for _, o := range other {
			byKey["connector.class"] = append(byKey["connector.class"], redact.Scrub(o.Error(), res.secrets))
		}
	}
	if err != nil {
		add(err)
	}
	cfg := res.config
	if p.Type == connect.SinkType {
		add(task.SinkCommonSpec.Validate(cfg))
	} else {
		add(task.SourceCommonSpec.Validate(cfg))
	}
	add(p.Spec().Validate(cfg))
	for k, msgs := range overrideErrors(w.cfg.OverridePolicy, config) {
		byKey[k] = append(byKey[k], msgs...)
	}
	for k, msgs := range pathErrors(p.Spec(), cfg, w.cfg.FileAllowedPaths) {
		if connect.HasPlaceholder(config[k]) {
			msgs = []string{placeholderInvalid(config[k], k)}
		}
		byKey[k] = append(byKey[k], msgs...)
	}
	for _, which := range []string{"key.converter", "value.converter"} {
		if cfg[which] != "" {
			if _, err := task.ConverterFor(which, cfg, nil); err != nil {
				add(err)
			}
		}
	}
	if len(splitList(cfg["transforms"])) > 0 || len(splitList(cfg["predicates"])) > 0 {
		if _, err := transform.NewChain(cfg); err != nil {
			add(err)
		}
	}
	if v, ok := p.New().(connect.Validator); ok && len(byKey) == 0 {
		add(v.Validate(ctx, connect.Config(cfg)))
	}
	return p, byKey, nil
}

// placeholderInvalid is the message for a setting whose placeholder resolved to a value the
// setting does not take: the placeholder, never the value.
func placeholderInvalid(raw, key string) string {
	return fmt.Sprintf("Invalid value %s for configuration %s: the value it resolves to is not valid for this setting (not shown: it comes from a config provider)", raw, key)
}

// configInfos renders a validation as Kafka Connect's ConfigInfos.
func configInfos(p connect.Plugin, config map[string]string, byKey map[string][]string) api.ConfigInfos {
	spec := task.ConnectorSpec(p)
	out := api.ConfigInfos{Name: p.Name, Groups: []string{}, Configs: []api.ConfigInfo{}}
	seenGroup := map[string]bool{}
	count := 0
	for _, k := range spec.Keys() {
		if k.Group != "" && !seenGroup[k.Group] {
			seenGroup[k.Group] = true
			out.Groups = append(out.Groups, k.Group)
		}
		var value *string
		if v, ok := config[k.Name]; ok {
			if k.Secret && v != "" && !connect.HasPlaceholder(v) {
				v = connect.Redacted
			}
			value = &v
		} else if k.HasDefault {
			d := k.Default
			value = &d
		}
		errs := byKey[k.Name]
		if errs == nil {
			errs = []string{}
		}
		count += len(errs)
		out.Configs = append(out.Configs, api.ConfigInfo{
			Definition: keyInfo(k),
			Value:      api.ConfigValueInfo{Name: k.Name, Value: value, RecommendedValues: nonNil(k.Enum), Errors: errs, Visible: true},
		})
	}
	// Errors on keys the spec does not declare (transforms.x.type, ...).
	var extra []string
	for k := range byKey {
		if _, ok := spec.Key(k); !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		v := config[k]
		count += len(byKey[k])
		out.Configs = append(out.Configs, api.ConfigInfo{
			Definition: api.ConfigKeyInfo{Name: k, Type: connect.TypeString, Importance: "HIGH", Width: "NONE", DisplayName: k, Dependents: []string{}},
			Value:      api.ConfigValueInfo{Name: k, Value: &v, RecommendedValues: []string{}, Errors: byKey[k], Visible: true},
		})
	}
	out.ErrorCount = count
	return out
}

func keyInfo(k connect.ConfigKey) api.ConfigKeyInfo {
	var def *string
	if k.HasDefault {
		d := k.Default
		def = &d
	}
	var group *string
	if k.Group != "" {
		g := k.Group
		group = &g
	}
	display := k.DisplayName
	if display == "" {
		display = k.Name
	}
	return api.ConfigKeyInfo{Name: k.Name, Type: k.Type, Required: k.Required && !k.HasDefault, DefaultValue: def, Importance: k.Importance,
		Documentation: k.Doc, Group: group, OrderInGroup: k.Order, Width: "NONE", DisplayName: display, Dependents: []string{}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// invalidConfigError joins every error of a validation into one message, as Kafka Connect's
// 400 answer does, each prefixed with its key.
func invalidConfigError(plugin string, byKey map[string][]string) error {
	var lines []string
	for _, k := range sortedKeys(byKey) {
		for _, m := range byKey[k] {
			lines = append(lines, k+": "+m)
		}
	}
	return api.Errorf(api.ErrBadRequest, "Connector configuration is invalid and contains the following %d error(s):\n%s\nYou can also find the above list of errors at the endpoint `/connector-plugins/%s/config/validate`",
		len(lines), strings.Join(lines, "\n"), plugin)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedTaskIDs returns the map's task ids by connector, then task number.
func sortedTaskIDs[V any](m map[api.TaskID]V) []api.TaskID {
	return slices.SortedFunc(maps.Keys(m), func(a, b api.TaskID) int {
		return cmp.Or(strings.Compare(a.Connector, b.Connector), cmp.Compare(a.Task, b.Task))
	})
}

func keysOf(m map[string]string) string { return fmt.Sprint(sortedKeys(m)) }

func (w *Worker) pluginNames() []string {
	var out []string
	for _, p := range w.registry.Plugins() {
		out = append(out, p.Name)
	}
	return out
}
