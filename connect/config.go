package connect

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Setting types, with Kafka Connect's names as the REST API shows them.
const (
	TypeBoolean  = "BOOLEAN"
	TypeString   = "STRING"
	TypeInt      = "INT"
	TypeLong     = "LONG"
	TypeDouble   = "DOUBLE"
	TypeList     = "LIST"
	TypePassword = "PASSWORD"
)

// ConfigKey declares one setting. Connectors do not build these by hand: they come from the
// tags of the connector's config struct (see SpecOf).
type ConfigKey struct {
	Name       string
	Type       string
	Doc        string
	Default    string
	HasDefault bool
	Required   bool
	Secret     bool
	// Endpoint marks a setting that says where the connector connects (a server, a URL): the
	// runtime keeps a stored secret across a change of an endpoint only when the secret is
	// sent again, so that whoever may change a config cannot send a stored password elsewhere.
	Endpoint bool
	// Path marks a setting that names a file on the worker: the runtime refuses one outside
	// the directories the worker allows connectors (connector.file.allowed.paths).
	Path        bool
	Importance  string // HIGH, MEDIUM or LOW
	Group       string
	Order       int
	DisplayName string
	// Enum lists the allowed values; empty allows any.
	Enum []string
	// Min and Max bound numeric settings; nil means unbounded.
	Min, Max *float64
	// Pattern, when set, must match the whole value of a STRING setting.
	Pattern *regexp.Regexp
	// Check, when set, is one more test of a value that is present.
	Check func(value string) error

	index []int // field path in the config struct; nil for keys declared by hand
	kind  reflect.Type
}

// Spec is a set of settings: a connector's, built from its config struct by SpecOf, or the
// runtime's common ones.
type Spec struct {
	keys  []ConfigKey
	typ   reflect.Type // the config struct; nil for specs declared by hand
	index map[string]int
}

var specCache sync.Map // reflect.Type -> *Spec

// SpecOf builds the Spec of a config struct from its field tags, once per type:
//
//	type Config struct {
//		URI       string        `config:"connection.uri" required:"true" secret:"true" doc:"MongoDB connection string."`
//		BatchSize int           `config:"batch.size" default:"1000" min:"1" doc:"Records per bulk write."`
//		Mode      string        `config:"write.mode" default:"upsert" enum:"insert,upsert,update" doc:"..."`
//		Timeout   time.Duration `config:"timeout" default:"30s" doc:"..."`
//		TLS       TLSConfig     `config:"tls"` // nested struct: its keys get the prefix "tls."
//	}
//
// Tags: config (the key; "-" skips the field), doc, default, required, secret, endpoint, path, enum
// (comma-separated), min, max, pattern, group, importance (high, medium, low; default medium
// for optional and high for required keys), display. Field types: string, bool, int, int32,
// int64, float64, time.Duration, []string (a comma-separated list), and nested structs.
//
// A time.Duration setting takes a Go duration ("500ms", "30s", "5m") or a number of
// milliseconds. Its min and max carry their unit (min:"10ms", max:"1h"; "0" is zero). The
// REST API reports its type as LONG when the key ends in ".ms", as Kafka Connect's duration
// settings are (offset.flush.interval.ms), and as STRING otherwise (commit.interval: "60s").
//
// Documentation too long for a tag goes in a method Docs() map[string]string on the config
// struct, by key (full names, prefixes of nested structs included); a key has its doc in one
// place or the other. A config struct may also have a method Validate() error for rules
// across fields; return *FieldError values to point at keys.
//
// SpecOf panics on a malformed declaration: that is a programming error, and the registry's
// test of every plugin catches it.
func SpecOf(prototype any) *Spec {
	t := reflect.TypeOf(prototype)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("connect.SpecOf: %T is not a struct", prototype))
	}
	if s, ok := specCache.Load(t); ok {
		return s.(*Spec)
	}
	s := &Spec{typ: t}
	collectKeys(t, "", nil, &s.keys)
	s.buildIndex()
	specCache.Store(t, s)
	return s
}

// NewSpec declares a Spec by hand; the runtime uses it for the settings every connector has.
func NewSpec(keys ...ConfigKey) *Spec {
	s := &Spec{keys: slices.Clone(keys)}
	s.buildIndex()
	return s
}

func (s *Spec) buildIndex() {
	s.index = make(map[string]int, len(s.keys))
	for i, k := range s.keys {
		if _, dup := s.index[k.Name]; dup {
			panic(fmt.Sprintf("connect: setting %q declared twice", k.Name))
		}
		s.index[k.Name] = i
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

// documented is implemented by config structs that keep long documentation out of their tags.
type documented interface{ Docs() map[string]string }

// docsOf returns the Docs of a config struct type, by the struct's own key names.
func docsOf(t reflect.Type) map[string]string {
	if d, ok := reflect.New(t).Interface().(documented); ok {
		return d.Docs()
	}
	return nil
}

func collectKeys(t reflect.Type, prefix string, path []int, out *[]ConfigKey) {
	docs := docsOf(t)
	used := map[string]bool{}
	defer func() {
		for name := range docs {
			if !used[name] {
				panic(fmt.Sprintf("connect: %s.Docs documents %q, which the struct does not declare", t, name))
			}
		}
	}()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, tagged := f.Tag.Lookup("config")
		if name == "-" || !f.IsExported() {
			continue
		}
		fieldPath := append(slices.Clone(path), i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			p := prefix
			if name != "" {
				p = prefix + name + "."
			} else if !f.Anonymous {
				continue
			} else if docsOf(f.Type) != nil {
				// Its Docs would be promoted to the embedding struct, and read there too.
				panic(fmt.Sprintf("connect: embedded config struct %s has Docs; put them in %s", f.Type, t))
			}
			collectKeys(f.Type, p, fieldPath, out)
			continue
		}
		if !tagged || name == "" {
			continue
		}
		k := ConfigKey{
			Name:        prefix + name,
			Doc:         f.Tag.Get("doc"),
			DisplayName: f.Tag.Get("display"),
			Group:       f.Tag.Get("group"),
			Required:    f.Tag.Get("required") == "true",
			Secret:      f.Tag.Get("secret") == "true",
			Endpoint:    f.Tag.Get("endpoint") == "true",
			Path:        f.Tag.Get("path") == "true",
			Order:       len(*out) + 1,
			index:       fieldPath,
			kind:        f.Type,
		}
		if d, ok := docs[name]; ok {
			if k.Doc != "" {
				panic(fmt.Sprintf("connect: setting %q is documented both in its tag and in Docs", k.Name))
			}
			k.Doc, used[name] = d, true
		}
		k.Default, k.HasDefault = f.Tag.Lookup("default")
		if e := f.Tag.Get("enum"); e != "" {
			k.Enum = strings.Split(e, ",")
		}
		k.Min = parseBound(k.Name, "min", f.Tag.Get("min"), f.Type == durationType)
		k.Max = parseBound(k.Name, "max", f.Tag.Get("max"), f.Type == durationType)
		if p := f.Tag.Get("pattern"); p != "" {
			k.Pattern = regexp.MustCompile("^(?:" + p + ")$")
		}
		k.Importance = strings.ToUpper(f.Tag.Get("importance"))
		if k.Importance == "" {
			k.Importance = "MEDIUM"
			if k.Required {
				k.Importance = "HIGH"
			}
		}
		switch f.Type.Kind() {
		case reflect.String:
			k.Type = TypeString
			if k.Secret {
				k.Type = TypePassword
			}
		case reflect.Bool:
			k.Type = TypeBoolean
		case reflect.Int, reflect.Int32:
			k.Type = TypeInt
		case reflect.Int64:
			k.Type = TypeLong
			if f.Type == durationType && !strings.HasSuffix(k.Name, ".ms") {
				k.Type = TypeString
			}
		case reflect.Float64, reflect.Float32:
			k.Type = TypeDouble
		case reflect.Slice:
			if f.Type.Elem().Kind() != reflect.String {
				panic(fmt.Sprintf("connect: setting %q: unsupported type %s", k.Name, f.Type))
			}
			k.Type = TypeList
		default:
			panic(fmt.Sprintf("connect: setting %q: unsupported type %s", k.Name, f.Type))
		}
		if k.HasDefault {
			if _, err := parseValue(k, k.Default); err != nil {
				panic(fmt.Sprintf("connect: setting %q: bad default: %v", k.Name, err))
			}
		}
		*out = append(*out, k)
	}
}

// parseBound reads a min or max tag. A duration's bound is a Go duration with its unit
// ("10ms", "1s", "1h"), or "0", and is kept in milliseconds; a bare number there would leave
// the reader to guess the unit, so it is refused.
func parseBound(key, tag, v string, duration bool) *float64 {
	if v == "" {
		return nil
	}
	if duration {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(fmt.Sprintf("connect: setting %q: %s %q of a duration needs a unit, such as %sms or %ss", key, tag, v, v, v))
		}
		ms := float64(d) / float64(time.Millisecond)
		return &ms
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		panic(fmt.Sprintf("connect: setting %q: bad %s %q", key, tag, v))
	}
	return &f
}

// Keys returns the declared settings in declaration order.
func (s *Spec) Keys() []ConfigKey { return slices.Clone(s.keys) }

// Key returns the declaration of one setting.
func (s *Spec) Key(name string) (ConfigKey, bool) {
	i, ok := s.index[name]
	if !ok {
		return ConfigKey{}, false
	}
	return s.keys[i], true
}

// Merge returns a Spec with the keys of s followed by those of other that s does not have.
// The result lists and checks keys one by one; the config structs' own Validate rules are not
// part of it, so validate with each Spec for those.
func (s *Spec) Merge(other *Spec) *Spec {
	keys := slices.Clone(s.keys)
	for _, k := range other.keys {
		if _, ok := s.index[k.Name]; !ok {
			keys = append(keys, k)
		}
	}
	return NewSpec(keys...)
}

// Validate checks cfg against the declaration: required keys present, values of the right type,
// within their bounds and allowed values, and the config struct's own Validate rules. It
// returns nil or the errors joined, each a *FieldError naming its key.
func (s *Spec) Validate(cfg Config) error {
	var errs []error
	for _, k := range s.keys {
		v, ok := cfg[k.Name]
		if !ok || v == "" {
			if k.Required && !(k.HasDefault && k.Default != "") {
				errs = append(errs, &FieldError{Key: k.Name, Message: "Missing required configuration \"" + k.Name + "\" which has no default value."})
			}
			continue
		}
		if _, err := parseValue(k, v); err != nil {
			errs = append(errs, &FieldError{Key: k.Name, Message: err.Error()})
		}
	}
	if len(errs) > 0 || s.typ == nil {
		return errors.Join(errs...)
	}
	// Cross-field rules need a decoded value.
	dst := reflect.New(s.typ)
	if err := s.decodeInto(cfg, dst.Elem()); err != nil {
		return err
	}
	if v, ok := dst.Interface().(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// Decode validates cfg and fills dst, a pointer to the config struct the Spec was built from,
// applying defaults for settings that are absent or empty.
func (s *Spec) Decode(cfg Config, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Type() != s.typ {
		return fmt.Errorf("connect: Decode into %T, want *%s", dst, s.typ)
	}
	if err := s.Validate(cfg); err != nil {
		return err
	}
	return s.decodeInto(cfg, rv.Elem())
}

func (s *Spec) decodeInto(cfg Config, dst reflect.Value) error {
	for _, k := range s.keys {
		if k.index == nil {
			continue
		}
		v, ok := cfg[k.Name]
		if !ok || v == "" {
			if !k.HasDefault {
				continue
			}
			v = k.Default
		}
		parsed, err := parseValue(k, v)
		if err != nil {
			return &FieldError{Key: k.Name, Message: err.Error()}
		}
		dst.FieldByIndex(k.index).Set(reflect.ValueOf(parsed).Convert(k.kind))
	}
	return nil
}

// Decode builds the Spec of T and decodes cfg into a new T. Connectors call it in Start.
func Decode[T any](cfg Config) (T, error) {
	var v T
	err := SpecOf(v).Decode(cfg, &v)
	return v, err
}

// parseValue turns a setting's text into its Go value and checks its bounds.
func parseValue(k ConfigKey, v string) (any, error) {
	var out any
	var num float64
	isNum := false
	switch k.Type {
	case TypeString, TypePassword:
		out = v
		if k.kind == durationType {
			d, err := parseDuration(v)
			if err != nil {
				return nil, err
			}
			out, num, isNum = d, float64(d.Milliseconds()), true
		}
	case TypeBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("Invalid value %q: must be true or false", v)
		}
		out = b
	case TypeInt, TypeLong:
		if k.kind == durationType {
			d, err := parseDuration(v)
			if err != nil {
				return nil, err
			}
			out, num, isNum = d, float64(d.Milliseconds()), true
			break
		}
		bits := 64
		if k.Type == TypeInt {
			bits = 32
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("Invalid value %q: must be a whole number", v)
		}
		out, num, isNum = n, float64(n), true
	case TypeDouble:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("Invalid value %q: must be a number", v)
		}
		out, num, isNum = f, f, true
	case TypeList:
		var items []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		out = items
		for _, item := range items {
			if len(k.Enum) > 0 && !slices.Contains(k.Enum, item) {
				return nil, fmt.Errorf("Invalid value %q: must be one of %s", item, strings.Join(k.Enum, ", "))
			}
		}
	default:
		out = v
	}
	if k.Type != TypeList && len(k.Enum) > 0 && !slices.Contains(k.Enum, v) {
		return nil, fmt.Errorf("Invalid value %q: must be one of %s", v, strings.Join(k.Enum, ", "))
	}
	if isNum && k.Min != nil && num < *k.Min {
		return nil, fmt.Errorf("Invalid value %s: must be at least %s", v, boundText(k, *k.Min))
	}
	if isNum && k.Max != nil && num > *k.Max {
		return nil, fmt.Errorf("Invalid value %s: must be at most %s", v, boundText(k, *k.Max))
	}
	if k.Pattern != nil && !k.Pattern.MatchString(v) {
		return nil, fmt.Errorf("Invalid value %q: must match %s", v, k.Pattern)
	}
	if k.Check != nil {
		if err := k.Check(v); err != nil {
			return nil, fmt.Errorf("Invalid value %q: %v", v, err)
		}
	}
	return out, nil
}

// boundText writes a bound as its setting takes it: a duration with its unit, else a number.
func boundText(k ConfigKey, b float64) string {
	if k.kind == durationType {
		return shortDuration(time.Duration(b * float64(time.Millisecond)))
	}
	return strconv.FormatFloat(b, 'f', -1, 64)
}

func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("Invalid value %q: must be a duration such as 500ms, 30s or 5m, or a number of milliseconds", v)
	}
	return d, nil
}

// Redacted is what the runtime shows in place of a secret given literally.
const Redacted = "[hidden]"

// HasPlaceholder reports whether v holds a config-provider placeholder such as ${env:NAME} or
// ${file:/path:key}. A secret setting written with one (mongodb://app:${env:PW}@db) keeps its
// secret out of the configuration, so the raw value can be shown.
func HasPlaceholder(v string) bool { return placeholder.MatchString(v) }

var placeholder = regexp.MustCompile(`\$\{[a-zA-Z]+:[^}]*\}`)

// Redact returns a copy of cfg in which every secret setting given literally, without a
// placeholder, reads Redacted.
func (s *Spec) Redact(cfg Config) Config {
	out := make(Config, len(cfg))
	for k, v := range cfg {
		if key, ok := s.Key(k); ok && key.Secret && v != "" && !HasPlaceholder(v) {
			v = Redacted
		}
		out[k] = v
	}
	return out
}
