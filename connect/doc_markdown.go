package connect

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exampler is implemented by config structs that can show a small working configuration of
// their connector (its own settings only). Plugin.ExampleConfig builds on it, the generated
// docs print it, and a connector's tests should check that it validates.
type Exampler interface {
	Example() Config
}

// ExampleConfig returns a configuration that creates the plugin: connector.class, tasks.max
// and, for a sink, topics, then the config struct's Example when it has one, or else a
// "<setting>" placeholder for every required setting without a default.
func (p Plugin) ExampleConfig() Config {
	cfg := Config{"connector.class": p.Name, "tasks.max": "1"}
	if p.pluginType() == SinkType {
		cfg["topics"] = "<topics>"
	}
	if ex, ok := p.Config.(Exampler); ok {
		for k, v := range ex.Example() {
			cfg[k] = v
		}
		return cfg
	}
	for _, k := range p.Spec().Keys() {
		if k.Required && !(k.HasDefault && k.Default != "") {
			cfg[k.Name] = "<" + k.Name + ">"
		}
	}
	return cfg
}

// Markdown returns the plugin's reference page: its name, type and Doc, an example
// configuration as the REST API takes it, and a table of its settings (type, whether required,
// default, valid values, importance, documentation, and whether secret when any is), with a
// heading per group when settings declare groups. The page depends only on the plugin's
// declaration, so tests can compare it with the committed docs.
func (p Plugin) Markdown() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from the connector's config declaration by connect.Plugin.Markdown. Do not edit by hand. -->\n\n")
	fmt.Fprintf(&b, "# %s\n\n", p.Name)
	fmt.Fprintf(&b, "%s, `\"connector.class\": %q`", typeLabel(p.pluginType()), p.Name)
	if p.Version != "" {
		fmt.Fprintf(&b, ", version %s", p.Version)
	}
	b.WriteString(".\n\n")
	if doc := strings.TrimSpace(p.Doc); doc != "" {
		b.WriteString(doc + "\n\n")
	}

	b.WriteString("## Example\n\nCreate the connector with `POST /connectors`:\n\n```json\n")
	b.WriteString(exampleRequest(p))
	b.WriteString("```\n\n")

	b.WriteString("## Settings\n\n")
	b.WriteString("Besides these, the connector takes the runtime's common settings (`connector.class`, `tasks.max`")
	if p.pluginType() == SinkType {
		b.WriteString(", `topics`")
	}
	b.WriteString(", converters, transforms and error handling).\n")
	keys := p.Spec().Keys()
	if len(keys) == 0 {
		b.WriteString("\nThe connector has no settings of its own.\n")
		return b.String()
	}
	withSecret := slices.ContainsFunc(keys, func(k ConfigKey) bool { return k.Secret })
	var groups []string
	for _, k := range keys {
		if !slices.Contains(groups, k.Group) {
			groups = append(groups, k.Group)
		}
	}
	slices.SortStableFunc(groups, func(a, b string) int { // ungrouped settings first
		switch {
		case a == "" && b != "":
			return -1
		case a != "" && b == "":
			return 1
		}
		return 0
	})
	for _, g := range groups {
		if g != "" {
			fmt.Fprintf(&b, "\n### %s\n", g)
		}
		b.WriteString("\n")
		writeSettingsTable(&b, keys, g, withSecret)
	}
	return b.String()
}

func writeSettingsTable(b *strings.Builder, keys []ConfigKey, group string, withSecret bool) {
	header := []string{"Setting", "Type", "Required", "Default", "Valid values", "Importance"}
	if withSecret {
		header = append(header, "Secret")
	}
	header = append(header, "Description")
	writeRow(b, header)
	rule := make([]string, len(header))
	for i := range rule {
		rule[i] = "---"
	}
	writeRow(b, rule)
	for _, k := range keys {
		if k.Group != group {
			continue
		}
		row := []string{code(k.Name), k.Type, yesNo(k.Required), defaultText(k), validValues(k), k.Importance}
		if withSecret {
			row = append(row, yesNo(k.Secret))
		}
		row = append(row, k.Doc)
		writeRow(b, row)
	}
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		c = strings.ReplaceAll(c, "|", `\|`)
		c = strings.ReplaceAll(strings.TrimSpace(c), "\n", "<br>")
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}

func defaultText(k ConfigKey) string {
	switch {
	case !k.HasDefault:
		return ""
	case k.Default == "":
		return code(`""`)
	}
	return code(k.Default)
}

// validValues describes a setting's allowed values: its enum, bounds, pattern, and the form
// a duration takes.
func validValues(k ConfigKey) string {
	var parts []string
	isDuration := k.kind == durationType
	if isDuration {
		parts = append(parts, "a duration such as `500ms` or `30s`, or milliseconds")
	}
	if len(k.Enum) > 0 {
		vals := make([]string, len(k.Enum))
		for i, e := range k.Enum {
			vals[i] = code(e)
		}
		prefix := "one of "
		if k.Type == TypeList {
			prefix = "any of "
		}
		parts = append(parts, prefix+strings.Join(vals, ", "))
	}
	bound := func(f float64) string {
		if isDuration {
			return code(shortDuration(time.Duration(f) * time.Millisecond))
		}
		return code(strconv.FormatFloat(f, 'f', -1, 64))
	}
	switch {
	case k.Min != nil && k.Max != nil:
		parts = append(parts, bound(*k.Min)+" to "+bound(*k.Max))
	case k.Min != nil:
		parts = append(parts, "at least "+bound(*k.Min))
	case k.Max != nil:
		parts = append(parts, "at most "+bound(*k.Max))
	}
	if k.Pattern != nil {
		p := strings.TrimSuffix(strings.TrimPrefix(k.Pattern.String(), "^(?:"), ")$")
		parts = append(parts, "matches "+code(p))
	}
	return strings.Join(parts, "; ")
}

// exampleRequest renders the body of POST /connectors for the plugin's example configuration,
// with the common settings first and the connector's own in declaration order.
func exampleRequest(p Plugin) string {
	cfg := p.ExampleConfig()
	order := []string{"connector.class", "tasks.max", "topics"}
	for _, k := range p.Spec().Keys() {
		order = append(order, k.Name)
	}
	var rest []string
	for k := range cfg {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	order = append(order, rest...)

	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"name\": %s,\n  \"config\": {\n", quoteJSON("my-"+p.Name))
	var lines []string
	for _, k := range order {
		if v, ok := cfg[k]; ok {
			lines = append(lines, fmt.Sprintf("    %s: %s", quoteJSON(k), quoteJSON(v)))
		}
	}
	b.WriteString(strings.Join(lines, ",\n"))
	b.WriteString("\n  }\n}\n")
	return b.String()
}

func quoteJSON(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep "<topics>" readable
	_ = enc.Encode(s)        // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// pluginType is p.Type, or derived from New for a plugin that was never registered.
func (p Plugin) pluginType() PluginType {
	if p.Type != "" || p.New == nil {
		return p.Type
	}
	switch p.New().(type) {
	case SourceConnector:
		return SourceType
	case SinkConnector:
		return SinkType
	}
	return ""
}

// code formats s as a Markdown code span, choosing a fence the text does not contain.
func code(s string) string {
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if fence != "`" || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// shortDuration writes d as time.Duration does, without zero minutes and seconds: 1h, 2m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func typeLabel(t PluginType) string {
	switch t {
	case SourceType:
		return "Source connector"
	case SinkType:
		return "Sink connector"
	}
	return "Connector"
}
