package transform

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/connect"
)

// Transform changes a record. Apply returns the record itself when nothing changes, a new
// record when something does, and nil to drop the record. It must not modify rec or what rec
// references.
type Transform interface {
	Apply(rec *connect.Record) (*connect.Record, error)
}

// Predicate tells whether a transform applies to a record.
type Predicate interface {
	Test(rec *connect.Record) bool
}

// Chain is a connector's transforms in order, each with its optional predicate.
type Chain struct {
	stages []stage
}

type stage struct {
	alias, class string
	t            Transform
	pred         Predicate
	negate       bool
}

const (
	transformPrefix = "org.apache.kafka.connect.transforms."
	predicatePrefix = "org.apache.kafka.connect.transforms.predicates."
)

// transformKind is a built-in transform: a constructor and whether Connect has $Key and
// $Value variants of it.
type transformKind struct {
	name  string
	keyed bool
	build func(s *settings, key bool) Transform
}

var transformKinds = []transformKind{
	{"Cast", true, newCast},
	{"DropHeaders", false, func(s *settings, _ bool) Transform { return newDropHeaders(s) }},
	{"ExtractField", true, newExtractField},
	{"Filter", false, func(*settings, bool) Transform { return filter{} }},
	{"Flatten", true, newFlatten},
	{"HeaderFrom", true, newHeaderFrom},
	{"HoistField", true, newHoistField},
	{"InsertField", true, newInsertField},
	{"InsertHeader", false, func(s *settings, _ bool) Transform { return newInsertHeader(s) }},
	{"MaskField", true, newMaskField},
	{"RegexRouter", false, func(s *settings, _ bool) Transform { return newRegexRouter(s) }},
	{"ReplaceField", true, newReplaceField},
	{"SetSchemaMetadata", true, newSetSchemaMetadata},
	{"TimestampConverter", true, newTimestampConverter},
	{"TimestampRouter", false, func(s *settings, _ bool) Transform { return newTimestampRouter(s) }},
	{"ValueToKey", false, func(s *settings, _ bool) Transform { return newValueToKey(s) }},
}

type predicateKind struct {
	name  string
	build func(s *settings) Predicate
}

var predicateKinds = []predicateKind{
	{"HasHeaderKey", newHasHeaderKey},
	{"RecordIsTombstone", func(*settings) Predicate { return recordIsTombstone{} }},
	{"TopicNameMatches", newTopicNameMatches},
}

// TransformNames returns the Kafka Connect class names of the built-in transforms, with the
// $Key and $Value variants where Connect has them, for the plugin list.
func TransformNames() []string {
	var names []string
	for _, k := range transformKinds {
		if k.keyed {
			names = append(names, transformPrefix+k.name+"$Key", transformPrefix+k.name+"$Value")
		} else {
			names = append(names, transformPrefix+k.name)
		}
	}
	return names
}

// PredicateNames returns the Kafka Connect class names of the built-in predicates.
func PredicateNames() []string {
	var names []string
	for _, k := range predicateKinds {
		names = append(names, predicatePrefix+k.name)
	}
	return names
}

// lookupTransform finds a transform by class name or alias and returns its canonical class
// name and whether it works on the key.
func lookupTransform(class string) (transformKind, string, bool, bool) {
	name := strings.TrimSpace(class)
	if len(name) > len(transformPrefix) && strings.EqualFold(name[:len(transformPrefix)], transformPrefix) {
		name = name[len(transformPrefix):]
	}
	name, variant, hasVariant := strings.Cut(name, "$")
	for _, k := range transformKinds {
		if !strings.EqualFold(k.name, name) {
			continue
		}
		switch {
		case !k.keyed && !hasVariant:
			return k, transformPrefix + k.name, false, true
		case k.keyed && (!hasVariant || strings.EqualFold(variant, "Value")):
			return k, transformPrefix + k.name + "$Value", false, true
		case k.keyed && strings.EqualFold(variant, "Key"):
			return k, transformPrefix + k.name + "$Key", true, true
		}
	}
	return transformKind{}, "", false, false
}

func lookupPredicate(class string) (predicateKind, string, bool) {
	name := strings.TrimSpace(class)
	for _, prefix := range []string{predicatePrefix, transformPrefix} {
		if len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			name = name[len(prefix):]
			break
		}
	}
	for _, k := range predicateKinds {
		if strings.EqualFold(k.name, name) {
			return k, predicatePrefix + k.name, true
		}
	}
	return predicateKind{}, "", false
}

// NewChain builds the chain a connector configuration declares: transforms=a,b;
// transforms.a.type=...; transforms.a.<setting>=...; transforms.a.predicate=p;
// transforms.a.negate=true; predicates=p; predicates.p.type=...; predicates.p.<setting>=....
// Every problem is a *connect.FieldError naming the key; several are joined.
func NewChain(cfg map[string]string) (*Chain, error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &connect.FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}

	preds := map[string]Predicate{}
	for _, alias := range aliases(cfg, "predicates", fail) {
		typeKey := "predicates." + alias + ".type"
		class := strings.TrimSpace(cfg[typeKey])
		if class == "" {
			fail(typeKey, "Missing required configuration %q which has no default value.", typeKey)
			continue
		}
		kind, _, ok := lookupPredicate(class)
		if !ok {
			fail(typeKey, "unknown predicate %q (known: %s)", class, strings.Join(PredicateNames(), ", "))
			continue
		}
		s := &settings{cfg: cfg, prefix: "predicates." + alias + "."}
		p := kind.build(s)
		if len(s.errs) > 0 {
			errs = append(errs, s.errs...)
			continue
		}
		preds[alias] = p
	}

	c := &Chain{}
	for _, alias := range aliases(cfg, "transforms", fail) {
		prefix := "transforms." + alias + "."
		typeKey := prefix + "type"
		class := strings.TrimSpace(cfg[typeKey])
		if class == "" {
			fail(typeKey, "Missing required configuration %q which has no default value.", typeKey)
			continue
		}
		kind, canonical, key, ok := lookupTransform(class)
		if !ok {
			fail(typeKey, "unknown transform %q (known: %s)", class, strings.Join(TransformNames(), ", "))
			continue
		}
		s := &settings{cfg: cfg, prefix: prefix}
		st := stage{alias: alias, class: canonical, t: kind.build(s, key)}
		predName := strings.TrimSpace(cfg[prefix+"predicate"])
		if predName != "" {
			p, ok := preds[predName]
			// a declared predicate that failed to build has its own error already
			if !ok && !slices.Contains(splitList(cfg["predicates"]), predName) {
				s.fail("predicate", "predicate %q is not declared in predicates", predName)
			}
			st.pred = p
		}
		if v, ok := cfg[prefix+"negate"]; ok && strings.TrimSpace(v) != "" {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			switch {
			case err != nil:
				s.fail("negate", "Invalid value %s for configuration %snegate: Expected value to be either true or false", v, prefix)
			case b && predName == "":
				s.fail("negate", "negate needs a predicate (%spredicate)", prefix)
			}
			st.negate = b
		}
		if len(s.errs) > 0 {
			errs = append(errs, s.errs...)
			continue
		}
		c.stages = append(c.stages, st)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// aliases reads the list under key and checks that no alias repeats.
func aliases(cfg map[string]string, key string, fail func(key, format string, args ...any)) []string {
	list := splitList(cfg[key])
	seen := map[string]bool{}
	out := list[:0]
	for _, a := range list {
		if seen[a] {
			fail(key, "alias %q is listed twice", a)
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Apply runs the record through the chain in order. A transform whose predicate does not hold
// (or holds, with negate) is skipped. The result is nil when a transform dropped the record.
// A transform's error is wrapped with its alias and class.
func (c *Chain) Apply(rec *connect.Record) (*connect.Record, error) {
	if c == nil {
		return rec, nil
	}
	for i := range c.stages {
		st := &c.stages[i]
		if st.pred != nil && st.pred.Test(rec) == st.negate {
			continue
		}
		out, err := st.t.Apply(rec)
		if err != nil {
			return nil, fmt.Errorf("transform %q (%s): %w", st.alias, st.class, err)
		}
		if out == nil {
			return nil, nil
		}
		rec = out
	}
	return rec, nil
}

// Len is the number of transforms in the chain.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.stages)
}

// settings reads one transform's or predicate's settings and collects what is wrong with them.
type settings struct {
	cfg    map[string]string
	prefix string
	errs   []error
}

func (s *settings) fail(key, format string, args ...any) {
	s.errs = append(s.errs, &connect.FieldError{Key: s.prefix + key, Message: fmt.Sprintf(format, args...)})
}

func (s *settings) has(key string) bool {
	v, ok := s.cfg[s.prefix+key]
	return ok && strings.TrimSpace(v) != ""
}

// raw returns a setting untrimmed (for literals such as a replacement or a delimiter).
func (s *settings) raw(key, def string) string {
	if v, ok := s.cfg[s.prefix+key]; ok && v != "" {
		return v
	}
	return def
}

func (s *settings) str(key, def string) string {
	if v := strings.TrimSpace(s.cfg[s.prefix+key]); v != "" {
		return v
	}
	return def
}

func (s *settings) required(key string) string {
	v := strings.TrimSpace(s.cfg[s.prefix+key])
	if v == "" {
		s.missing(key)
	}
	return v
}

func (s *settings) missing(key string) {
	s.fail(key, "Missing required configuration %q which has no default value.", s.prefix+key)
}

func (s *settings) list(key string) []string { return splitList(s.cfg[s.prefix+key]) }

func (s *settings) requiredList(key string) []string {
	l := s.list(key)
	if len(l) == 0 {
		s.missing(key)
	}
	return l
}

// oneOf returns the allowed value the setting names, ignoring case.
func (s *settings) oneOf(key, def string, allowed ...string) string {
	v := s.str(key, def)
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a
		}
	}
	s.fail(key, "Invalid value %s for configuration %s%s: String must be one of: %s", v, s.prefix, key, strings.Join(allowed, ", "))
	return def
}
