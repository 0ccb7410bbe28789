package transform

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/num"
)

// --- Filter ---

// filter drops every record it is applied to; give it a predicate to choose which.
type filter struct{}

func (filter) Apply(*connect.Record) (*connect.Record, error) { return nil, nil }

// --- Cast ---

// cast changes the type of fields (spec "f1:int32,f2:string") or of the whole key or value
// (spec "int64"). Integers stay int64 and float32 stays float64 in the value (range-checked
// and rounded); the schema names the new type.
type cast struct {
	side   side
	whole  connect.SchemaType
	fields map[string]connect.SchemaType
	cache  schemaCache
}

var castTypes = map[string]connect.SchemaType{
	"int8": connect.Int8, "int16": connect.Int16, "int32": connect.Int32, "int64": connect.Int64,
	"float32": connect.Float32, "float64": connect.Float64, "float": connect.Float32, "double": connect.Float64,
	"boolean": connect.Boolean, "string": connect.String,
}

func newCast(s *settings, key bool) Transform {
	t := &cast{side: side(key), fields: map[string]connect.SchemaType{}}
	for _, e := range s.requiredList("spec") {
		field, typ, hasField := strings.Cut(e, ":")
		if !hasField {
			typ, field = field, ""
		}
		st, ok := castTypes[strings.ToLower(strings.TrimSpace(typ))]
		switch {
		case !ok:
			s.fail("spec", "invalid cast %q: unknown type %q (valid: int8, int16, int32, int64, float32, float64, boolean, string)", e, typ)
		case !hasField && t.whole != "":
			s.fail("spec", "the whole %s can be cast only once", side(key))
		case !hasField:
			t.whole = st
		case strings.TrimSpace(field) == "":
			s.fail("spec", "invalid cast %q: no field name", e)
		default:
			t.fields[strings.TrimSpace(field)] = st
		}
	}
	if t.whole != "" && len(t.fields) > 0 {
		s.fail("spec", "Cast transformations that specify a type to cast the entire value to may not specify additional field casts")
	}
	return t
}

func (t *cast) Apply(r *connect.Record) (*connect.Record, error) {
	v, s := t.side.value(r), t.side.schema(r)
	if t.whole != "" {
		nv, err := castValue(v, t.whole, "")
		if err != nil {
			return nil, err
		}
		var ns *connect.Schema
		if s != nil {
			if ns, err = t.cache.get(s, func() (*connect.Schema, error) { return castSchema(s, t.whole, "") }); err != nil {
				return nil, err
			}
		}
		return t.side.with(r, nv, ns), nil
	}
	m, s, ok, err := structOf(t.side, r, "Cast")
	if !ok {
		return r, err
	}
	out := copyMap(m, 0)
	for f, to := range t.fields {
		fv, present := m[f]
		if !present {
			continue
		}
		if out[f], err = castValue(fv, to, f); err != nil {
			return nil, err
		}
	}
	if s == nil {
		return t.side.with(r, out, nil), nil
	}
	ns, err := t.cache.get(s, func() (*connect.Schema, error) {
		ns := copyStruct(s)
		for _, f := range s.Fields {
			if to, ok := t.fields[f.Name]; ok {
				fs, err := castSchema(f.Schema, to, f.Name)
				if err != nil {
					return nil, err
				}
				f = connect.Field{Name: f.Name, Schema: fs}
			}
			ns.Fields = append(ns.Fields, f)
		}
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	return t.side.with(r, out, ns), nil
}

// castSchema is the schema of a value of schema s cast to type to.
func castSchema(s *connect.Schema, to connect.SchemaType, field string) (*connect.Schema, error) {
	if s == nil {
		return &connect.Schema{Type: to, Optional: true}, nil
	}
	switch s.Type {
	case connect.Struct, connect.Array, connect.Map:
		if to != connect.String {
			return nil, connect.BadField(field, nil, "Cast cannot cast a %s to %s", s.Type, to)
		}
	}
	ns := &connect.Schema{Type: to, Optional: s.Optional}
	if s.Default != nil {
		d, err := castValue(s.Default, to, field)
		if err != nil {
			return nil, err
		}
		ns.Default = d
	}
	return ns, nil
}

var intBits = map[connect.SchemaType]int{connect.Int8: 8, connect.Int16: 16, connect.Int32: 32, connect.Int64: 64}

// castValue casts one value. Unlike Java's narrowing casts, a number out of range for the
// target type is an error rather than wrapped around, and a string must spell a boolean
// ("true", "false", "1", "0", ...) to become one.
func castValue(v any, to connect.SchemaType, field string) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		return connect.BadField(field, v, "cannot cast %T to %s: "+format, append([]any{v, to}, args...)...)
	}
	switch to {
	case connect.Int8, connect.Int16, connect.Int32, connect.Int64:
		bits := intBits[to]
		var n int64
		switch x := v.(type) {
		case bool:
			if x {
				n = 1
			}
		case float64, float32:
			f := toFloat(x)
			if math.IsNaN(f) || f < -(1<<63) || f >= 1<<63 {
				return nil, bad("out of range")
			}
			n = int64(f) // truncates toward zero, as Java does
		case string:
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(x), 10, bits); err != nil {
				if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
					return nil, bad("out of range")
				}
				return nil, bad("not an integer")
			}
		case time.Time:
			n = x.UnixMilli()
		default:
			var ok bool
			if n, ok = num.Int(v); !ok {
				return nil, bad("not a number")
			}
		}
		if bits < 64 && (n < -(1<<(bits-1)) || n >= 1<<(bits-1)) {
			return nil, bad("out of range")
		}
		return n, nil
	case connect.Float32, connect.Float64:
		var f float64
		switch x := v.(type) {
		case bool:
			if x {
				f = 1
			}
		case float64, float32:
			f = toFloat(x)
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
				return nil, bad("not a number")
			}
		case time.Time:
			f = float64(x.UnixMilli())
		default:
			n, ok := num.Int(v)
			if !ok {
				return nil, bad("not a number")
			}
			f = float64(n)
		}
		if to == connect.Float32 {
			f32 := float32(f)
			if math.IsInf(float64(f32), 0) && !math.IsInf(f, 0) {
				return nil, bad("out of range")
			}
			f = float64(f32)
		}
		return f, nil
	case connect.Boolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, bad("not a boolean")
			}
			return b, nil
		case float64, float32:
			return toFloat(x) != 0, nil
		}
		if n, ok := num.Int(v); ok {
			return n != 0, nil
		}
		return nil, bad("not a boolean")
	case connect.String:
		s, err := toText(v)
		if err != nil {
			return nil, bad("%v", err)
		}
		return s, nil
	}
	return nil, bad("unsupported type")
}

func toFloat(v any) float64 {
	if f, ok := v.(float32); ok {
		return float64(f)
	}
	return v.(float64)
}

// --- ExtractField ---

// extractField replaces the key or value with one of its fields. With
// field.syntax.version=V2 the field may be a dotted path into nested structs.
type extractField struct {
	side  side
	field string
	path  []string
}

func newExtractField(s *settings, key bool) Transform {
	t := &extractField{side: side(key), field: s.required("field")}
	t.path = []string{t.field}
	if s.oneOf("field.syntax.version", "V1", "V1", "V2") == "V2" && t.field != "" {
		p, err := fieldPath(t.field)
		if err != nil {
			s.fail("field", "%v", err)
		}
		t.path = p
	}
	return t
}

func (t *extractField) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "ExtractField")
	if err != nil {
		return nil, connect.BadField(t.field, t.side.value(r), "ExtractField needs a map (struct) %s to extract the field from", t.side)
	}
	if !ok { // a tombstone stays one
		var fs *connect.Schema
		if s != nil && s.Type == connect.Struct {
			if f := fieldAt(s, t.path); f != nil {
				fs = f
			}
		}
		return t.side.with(r, nil, fs), nil
	}
	var fs *connect.Schema
	if s != nil {
		if fs = fieldAt(s, t.path); fs == nil {
			return nil, connect.BadField(t.field, m, "unknown field in the %s schema", t.side)
		}
	}
	var v any = m
	for i, name := range t.path {
		cur, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				break
			}
			return nil, connect.BadField(strings.Join(t.path[:i], "."), v, "ExtractField needs a map (struct) here")
		}
		v = cur[name]
	}
	return t.side.with(r, v, fs), nil
}

// fieldAt returns the schema of the field at path in a struct schema, or nil.
func fieldAt(s *connect.Schema, path []string) *connect.Schema {
	for _, name := range path {
		if s == nil || s.Type != connect.Struct {
			return nil
		}
		f := s.Field(name)
		if f == nil {
			return nil
		}
		s = f.Schema
	}
	return s
}

// --- Flatten ---

// flatten turns nested maps (structs) into one level, joining names with the delimiter.
// Arrays stay as they are.
type flatten struct {
	side  side
	delim string
	cache schemaCache
}

func newFlatten(s *settings, key bool) Transform {
	return &flatten{side: side(key), delim: s.raw("delimiter", ".")}
}

func (t *flatten) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "Flatten")
	if !ok {
		return r, err
	}
	out := make(map[string]any, len(m))
	if s == nil {
		t.flattenMap(out, "", m)
		return t.side.with(r, out, nil), nil
	}
	ns, err := t.cache.get(s, func() (*connect.Schema, error) {
		ns := copyStruct(s)
		t.flattenSchema(ns, "", s, false)
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	if err := t.flattenStruct(out, "", s, m); err != nil {
		return nil, err
	}
	return t.side.with(r, out, ns), nil
}

func (t *flatten) name(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + t.delim + field
}

func (t *flatten) flattenMap(out map[string]any, prefix string, m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			t.flattenMap(out, t.name(prefix, k), sub)
			continue
		}
		out[t.name(prefix, k)] = v
	}
}

func (t *flatten) flattenSchema(out *connect.Schema, prefix string, s *connect.Schema, optional bool) {
	for _, f := range s.Fields {
		name := t.name(prefix, f.Name)
		if f.Schema != nil && f.Schema.Type == connect.Struct {
			t.flattenSchema(out, name, f.Schema, optional || f.Schema.Optional)
			continue
		}
		fs := f.Schema
		if optional && fs != nil && !fs.Optional {
			c := *fs
			c.Optional = true
			fs = &c
		}
		out.Fields = append(out.Fields, connect.Field{Name: name, Schema: fs})
	}
}

func (t *flatten) flattenStruct(out map[string]any, prefix string, s *connect.Schema, m map[string]any) error {
	for _, f := range s.Fields {
		name := t.name(prefix, f.Name)
		v := m[f.Name]
		if f.Schema != nil && f.Schema.Type == connect.Struct {
			sub, ok := v.(map[string]any) // nil for a null struct: its fields are null
			if !ok && v != nil {
				return connect.BadField(name, v, "Flatten: the schema says struct, but it is a %T", v)
			}
			if err := t.flattenStruct(out, name, f.Schema, sub); err != nil {
				return err
			}
			continue
		}
		out[name] = v
	}
	return nil
}

// --- HoistField ---

// hoistField wraps the key or value in a struct with one field.
type hoistField struct {
	side  side
	field string
	cache schemaCache
}

func newHoistField(s *settings, key bool) Transform {
	return &hoistField{side: side(key), field: s.required("field")}
}

func (t *hoistField) Apply(r *connect.Record) (*connect.Record, error) {
	v, s := t.side.value(r), t.side.schema(r)
	out := map[string]any{t.field: v}
	if s == nil {
		return t.side.with(r, out, nil), nil
	}
	ns, _ := t.cache.get(s, func() (*connect.Schema, error) {
		return &connect.Schema{Type: connect.Struct, Fields: []connect.Field{{Name: t.field, Schema: s}}}, nil
	})
	return t.side.with(r, out, ns), nil
}

// --- InsertField ---

// insertField adds the record's topic, partition, offset, timestamp or a static value as
// fields. A name ending in "!" makes the field required in the schema, "?" (the default)
// optional.
type insertField struct {
	side                                        side
	topic, partition, offset, timestamp, static insertSpec
	staticValue                                 string
	cache                                       schemaCache
}

type insertSpec struct {
	name     string
	required bool
}

func parseInsertSpec(s *settings, key string) insertSpec {
	v := s.str(key, "")
	switch {
	case strings.HasSuffix(v, "!"):
		return insertSpec{strings.TrimSuffix(v, "!"), true}
	case strings.HasSuffix(v, "?"):
		return insertSpec{strings.TrimSuffix(v, "?"), false}
	}
	return insertSpec{v, false}
}

func newInsertField(s *settings, key bool) Transform {
	t := &insertField{side: side(key),
		topic:       parseInsertSpec(s, "topic.field"),
		partition:   parseInsertSpec(s, "partition.field"),
		offset:      parseInsertSpec(s, "offset.field"),
		timestamp:   parseInsertSpec(s, "timestamp.field"),
		static:      parseInsertSpec(s, "static.field"),
		staticValue: s.raw("static.value", ""),
	}
	if t.static.name != "" && !s.has("static.value") {
		s.fail("static.value", "static.value is required with static.field")
	}
	return t
}

func (t *insertField) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "InsertField")
	if !ok {
		return r, err
	}
	source := r.SourcePartition != nil || r.SourceOffset != nil
	values := [5]any{r.Topic, nil, nil, nil, t.staticValue}
	if !source {
		values[1], values[2] = int64(r.KafkaPartition), r.KafkaOffset
	}
	if !r.Time.IsZero() {
		values[3] = r.Time.UTC()
	}
	specs := [5]insertSpec{t.topic, t.partition, t.offset, t.timestamp, t.static}
	out := copyMap(m, 5)
	for i, sp := range specs {
		if sp.name == "" {
			continue
		}
		if values[i] == nil && sp.required && s != nil {
			return nil, connect.BadField(sp.name, nil, "InsertField: the record has no value for this required field")
		}
		out[sp.name] = values[i]
	}
	if s == nil {
		return t.side.with(r, out, nil), nil
	}
	ns, _ := t.cache.get(s, func() (*connect.Schema, error) {
		ns := copyStruct(s)
		types := [5]connect.Schema{
			{Type: connect.String}, {Type: connect.Int32}, {Type: connect.Int64},
			{Type: connect.Int64, Name: timestampName, Version: 1}, {Type: connect.String},
		}
		added := map[string]bool{}
		for _, sp := range specs {
			added[sp.name] = sp.name != ""
		}
		for _, f := range s.Fields {
			if !added[f.Name] {
				ns.Fields = append(ns.Fields, f)
			}
		}
		for i, sp := range specs {
			if sp.name == "" {
				continue
			}
			fs := types[i]
			fs.Optional = !sp.required
			ns.Fields = append(ns.Fields, connect.Field{Name: sp.name, Schema: &fs})
		}
		return ns, nil
	})
	return t.side.with(r, out, ns), nil
}

// --- MaskField ---

// maskField replaces fields with their type's empty value (false, 0, "", an empty map or
// list, the epoch), or with replacement, parsed to the field's type.
type maskField struct {
	side        side
	fields      []string
	replacement string
	hasRepl     bool
}

func newMaskField(s *settings, key bool) Transform {
	t := &maskField{side: side(key), fields: s.requiredList("fields")}
	if v, ok := s.cfg[s.prefix+"replacement"]; ok {
		if v == "" {
			s.fail("replacement", "Field replacement cannot be empty")
		}
		t.replacement, t.hasRepl = v, true
	}
	return t
}

func (t *maskField) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "MaskField")
	if !ok {
		return r, err
	}
	out := copyMap(m, 0)
	for _, f := range t.fields {
		v, present := m[f]
		var fs *connect.Schema
		if s != nil {
			if field := s.Field(f); field != nil {
				fs = field.Schema
			}
		}
		if !present {
			continue
		}
		if out[f], err = t.mask(f, v, fs); err != nil {
			return nil, err
		}
	}
	return t.side.with(r, out, s), nil
}

func (t *maskField) mask(field string, v any, fs *connect.Schema) (any, error) {
	if v == nil {
		return nil, nil
	}
	decimal := fs != nil && fs.Name == decimalName
	if !t.hasRepl {
		if decimal {
			return "0", nil
		}
		switch x := v.(type) {
		case bool:
			return false, nil
		case string:
			return "", nil
		case float64:
			return 0.0, nil
		case float32:
			return float32(0), nil
		case []byte:
			return []byte{}, nil
		case time.Time:
			return time.UnixMilli(0).UTC(), nil
		case map[string]any:
			return map[string]any{}, nil
		case map[any]any:
			return map[any]any{}, nil
		case []any:
			return []any{}, nil
		default:
			if _, ok := num.Int(x); ok {
				return int64(0), nil
			}
		}
		return nil, connect.BadField(field, v, "MaskField cannot mask a %T", v)
	}
	repl := t.replacement
	bad := func(what string) error {
		return connect.BadField(field, v, "MaskField replacement %q is not %s", repl, what)
	}
	switch x := v.(type) {
	case string:
		if decimal {
			if _, err := strconv.ParseFloat(repl, 64); err != nil {
				return nil, bad("a decimal")
			}
		}
		return repl, nil
	case bool:
		b, err := strconv.ParseBool(repl)
		if err != nil {
			return nil, bad("a boolean")
		}
		return b, nil
	case float64, float32:
		f, err := strconv.ParseFloat(repl, 64)
		if err != nil {
			return nil, bad("a number")
		}
		return f, nil
	default:
		if _, ok := num.Int(x); ok {
			n, err := strconv.ParseInt(repl, 10, 64)
			if err != nil {
				return nil, bad("an integer")
			}
			return n, nil
		}
	}
	return nil, connect.BadField(field, v, "MaskField cannot mask a %T with a replacement", v)
}

// --- ReplaceField ---

// replaceField keeps (include) or drops (exclude) fields and renames them ("old:new").
type replaceField struct {
	side             side
	include, exclude map[string]bool
	renames          map[string]string
	cache            schemaCache
}

func newReplaceField(s *settings, key bool) Transform {
	set := func(keys ...string) map[string]bool {
		m := map[string]bool{}
		for _, k := range keys {
			for _, f := range s.list(k) {
				m[f] = true
			}
		}
		return m
	}
	t := &replaceField{side: side(key), include: set("include", "whitelist"), exclude: set("exclude", "blacklist"), renames: map[string]string{}}
	for _, e := range s.list("renames") {
		from, to, ok := strings.Cut(e, ":")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			s.fail("renames", "Invalid rename mapping: %s", e)
			continue
		}
		t.renames[from] = to
	}
	return t
}

func (t *replaceField) keep(f string) bool {
	return !t.exclude[f] && (len(t.include) == 0 || t.include[f])
}

func (t *replaceField) rename(f string) string {
	if n, ok := t.renames[f]; ok {
		return n
	}
	return f
}

func (t *replaceField) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "ReplaceField")
	if !ok {
		return r, err
	}
	out := make(map[string]any, len(m))
	if s == nil {
		for k, v := range m {
			if t.keep(k) {
				out[t.rename(k)] = v
			}
		}
		return t.side.with(r, out, nil), nil
	}
	ns, _ := t.cache.get(s, func() (*connect.Schema, error) {
		ns := copyStruct(s)
		for _, f := range s.Fields {
			if t.keep(f.Name) {
				ns.Fields = append(ns.Fields, connect.Field{Name: t.rename(f.Name), Schema: f.Schema})
			}
		}
		return ns, nil
	})
	for _, f := range s.Fields {
		if t.keep(f.Name) {
			out[t.rename(f.Name)] = m[f.Name]
		}
	}
	return t.side.with(r, out, ns), nil
}

// --- SetSchemaMetadata ---

// setSchemaMetadata sets the name and/or version of the key or value schema.
type setSchemaMetadata struct {
	side    side
	name    string
	version int
	cache   schemaCache
}

func newSetSchemaMetadata(s *settings, key bool) Transform {
	t := &setSchemaMetadata{side: side(key), name: s.str("schema.name", "")}
	if v := s.str("schema.version", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.fail("schema.version", "Invalid value %s for configuration %sschema.version: Not a number of type INT", v, s.prefix)
		}
		t.version = n
	}
	if t.name == "" && !s.has("schema.version") {
		s.fail("schema.name", "Neither schema name nor version configured")
	}
	return t
}

func (t *setSchemaMetadata) Apply(r *connect.Record) (*connect.Record, error) {
	v, s := t.side.value(r), t.side.schema(r)
	if s == nil {
		if v == nil {
			return r, nil
		}
		return nil, connect.BadField("", v, "SetSchemaMetadata needs a %s with a schema", t.side)
	}
	ns, _ := t.cache.get(s, func() (*connect.Schema, error) {
		c := *s
		if t.name != "" {
			c.Name = t.name
		}
		if t.version != 0 {
			c.Version = t.version
		}
		return &c, nil
	})
	return t.side.with(r, v, ns), nil
}

// --- ValueToKey ---

// valueToKey replaces the key with a struct of fields of the value.
type valueToKey struct {
	fields []string
	cache  schemaCache
}

func newValueToKey(s *settings) Transform {
	return &valueToKey{fields: s.requiredList("fields")}
}

func (t *valueToKey) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(onValue, r, "ValueToKey")
	if !ok {
		return r, err // a tombstone keeps its key
	}
	key := make(map[string]any, len(t.fields))
	for _, f := range t.fields {
		key[f] = m[f]
	}
	out := *r
	out.Key, out.KeySchema = key, nil
	if s == nil {
		return &out, nil
	}
	ks, err := t.cache.get(s, func() (*connect.Schema, error) {
		ks := &connect.Schema{Type: connect.Struct}
		for _, f := range t.fields {
			field := s.Field(f)
			if field == nil {
				return nil, connect.BadField(f, nil, "ValueToKey: the value schema has no such field (it has %s)", fieldNames(s))
			}
			ks.Fields = append(ks.Fields, *field)
		}
		return ks, nil
	})
	if err != nil {
		return nil, err
	}
	out.KeySchema = ks
	return &out, nil
}

func fieldNames(s *connect.Schema) string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return strings.Join(slices.Clip(names), ", ")
}
