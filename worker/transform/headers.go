package transform

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// --- DropHeaders ---

// dropHeaders removes every header with one of the given names.
type dropHeaders struct{ names []string }

func newDropHeaders(s *settings) Transform { return &dropHeaders{names: s.requiredList("headers")} }

func (t *dropHeaders) Apply(r *connect.Record) (*connect.Record, error) {
	drop := func(h connect.Header) bool { return slices.Contains(t.names, h.Key) }
	if !slices.ContainsFunc(r.Headers, drop) {
		return r, nil
	}
	out := *r
	out.Headers = slices.DeleteFunc(slices.Clone(r.Headers), drop)
	return &out, nil
}

// --- InsertHeader ---

// insertHeader adds a header with a literal value.
type insertHeader struct {
	header string
	value  []byte
}

func newInsertHeader(s *settings) Transform {
	t := &insertHeader{header: s.required("header")}
	if _, ok := s.cfg[s.prefix+"value.literal"]; !ok {
		s.missing("value.literal")
	}
	t.value = []byte(s.cfg[s.prefix+"value.literal"])
	return t
}

func (t *insertHeader) Apply(r *connect.Record) (*connect.Record, error) {
	out := *r
	out.Headers = append(slices.Clip(r.Headers), connect.Header{Key: t.header, Value: t.value})
	return &out, nil
}

// --- HeaderFrom ---

// headerFrom copies or moves fields of the key or value into headers. A header's value is
// the field's text: strings and bytes as they are, numbers and booleans as text, time as
// RFC 3339, maps and lists as JSON.
type headerFrom struct {
	side            side
	fields, headers []string
	move            bool
	cache           schemaCache
}

func newHeaderFrom(s *settings, key bool) Transform {
	t := &headerFrom{side: side(key), fields: s.requiredList("fields"), headers: s.requiredList("headers")}
	if len(t.fields) != len(t.headers) && len(t.fields) > 0 && len(t.headers) > 0 {
		s.fail("headers", "'fields' config must have the same number of elements as 'headers' config")
	}
	if !s.has("operation") {
		s.missing("operation")
	} else {
		t.move = s.oneOf("operation", "copy", "copy", "move") == "move"
	}
	return t
}

func (t *headerFrom) Apply(r *connect.Record) (*connect.Record, error) {
	m, s, ok, err := structOf(t.side, r, "HeaderFrom")
	if !ok {
		return r, err
	}
	out := *r
	out.Headers = slices.Grow(slices.Clip(r.Headers), len(t.fields))
	for i, f := range t.fields {
		b, err := headerBytes(m[f])
		if err != nil {
			return nil, connect.BadField(f, m[f], "HeaderFrom cannot write it as a header: %v", err)
		}
		out.Headers = append(out.Headers, connect.Header{Key: t.headers[i], Value: b})
	}
	if !t.move {
		return &out, nil
	}
	nm := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(t.fields, k) {
			nm[k] = v
		}
	}
	var ns *connect.Schema
	if s != nil {
		ns, _ = t.cache.get(s, func() (*connect.Schema, error) {
			ns := copyStruct(s)
			for _, f := range s.Fields {
				if !slices.Contains(t.fields, f.Name) {
					ns.Fields = append(ns.Fields, f)
				}
			}
			return ns, nil
		})
	}
	return t.side.with(&out, nm, ns), nil
}

// --- RegexRouter ---

// regexRouter renames the topic when the regex matches all of it, replacing the first match
// with the replacement, where $1 and ${name} refer to groups as in Java.
type regexRouter struct {
	full, first *regexp.Regexp
	template    string
}

func newRegexRouter(s *settings) Transform {
	t := &regexRouter{}
	re := s.required("regex")
	if !s.has("replacement") {
		s.missing("replacement")
	}
	if re == "" {
		return t
	}
	var err error
	if t.first, err = regexp.Compile(re); err != nil {
		s.fail("regex", "Invalid regex %q: %v (the syntax is RE2's: no lookaround or backreferences)", re, err)
		return t
	}
	t.full = regexp.MustCompile(`^(?:` + re + `)$`)
	if t.template, err = javaReplacement(s.raw("replacement", ""), t.first); err != nil {
		s.fail("replacement", "%v", err)
	}
	return t
}

// javaReplacement turns a java.util.regex replacement ($1, ${name}, \ escapes) into a
// template for regexp.Expand.
func javaReplacement(repl string, re *regexp.Regexp) (string, error) {
	var b strings.Builder
	groups := re.NumSubexp()
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		switch c {
		case '\\':
			i++
			if i >= len(repl) {
				return "", fmt.Errorf("character to be escaped is missing in %q", repl)
			}
			if repl[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(repl[i])
			}
		case '$':
			i++
			if i >= len(repl) {
				return "", fmt.Errorf("illegal group reference in %q: group index is missing", repl)
			}
			if repl[i] == '{' {
				end := strings.IndexByte(repl[i:], '}')
				if end < 0 {
					return "", fmt.Errorf("named capturing group is missing trailing '}' in %q", repl)
				}
				name := repl[i+1 : i+end]
				if re.SubexpIndex(name) < 0 {
					return "", fmt.Errorf("no group with name {%s} in the regex", name)
				}
				b.WriteString("${" + name + "}")
				i += end
				continue
			}
			if repl[i] < '0' || repl[i] > '9' {
				return "", fmt.Errorf("illegal group reference in %q", repl)
			}
			// As Java does: the first digit, then more digits while the group exists.
			n := int(repl[i] - '0')
			if n > groups {
				return "", fmt.Errorf("no group %d in the regex", n)
			}
			for i+1 < len(repl) && repl[i+1] >= '0' && repl[i+1] <= '9' {
				next := n*10 + int(repl[i+1]-'0')
				if next > groups {
					break
				}
				n = next
				i++
			}
			b.WriteString("${" + strconv.Itoa(n) + "}")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func (t *regexRouter) Apply(r *connect.Record) (*connect.Record, error) {
	if !t.full.MatchString(r.Topic) {
		return r, nil
	}
	m := t.first.FindStringSubmatchIndex(r.Topic)
	topic := r.Topic[:m[0]] + string(t.first.ExpandString(nil, t.template, r.Topic, m)) + r.Topic[m[1]:]
	if topic == r.Topic {
		return r, nil
	}
	out := *r
	out.Topic = topic
	return &out, nil
}

// --- TimestampRouter ---

// timestampRouter renames the topic after the record's timestamp: topic.format with ${topic}
// and ${timestamp}, the latter formatted with timestamp.format (a Java SimpleDateFormat
// pattern) in UTC. A record without a timestamp uses the current time.
type timestampRouter struct {
	format string
	layout string
	now    func() time.Time
}

func newTimestampRouter(s *settings) Transform {
	t := &timestampRouter{format: s.raw("topic.format", "${topic}-${timestamp}"), now: time.Now}
	pattern := s.raw("timestamp.format", "yyyyMMdd")
	var err error
	if t.layout, err = goLayout(pattern); err != nil {
		s.fail("timestamp.format", "%v", err)
	}
	return t
}

func (t *timestampRouter) Apply(r *connect.Record) (*connect.Record, error) {
	ts := r.Time
	if ts.IsZero() {
		ts = t.now()
	}
	topic := strings.ReplaceAll(t.format, "${topic}", r.Topic)
	topic = strings.ReplaceAll(topic, "${timestamp}", ts.UTC().Format(t.layout))
	out := *r
	out.Topic = topic
	return &out, nil
}

// --- predicates ---

// topicNameMatches holds when the regex pattern matches all of the topic name.
type topicNameMatches struct{ re *regexp.Regexp }

func newTopicNameMatches(s *settings) Predicate {
	p := &topicNameMatches{}
	pattern := s.required("pattern")
	if pattern == "" {
		return p
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		s.fail("pattern", "Invalid regex %q: %v (the syntax is RE2's: no lookaround or backreferences)", pattern, err)
	}
	p.re = re
	return p
}

func (p *topicNameMatches) Test(r *connect.Record) bool { return p.re.MatchString(r.Topic) }

// hasHeaderKey holds when the record has at least one header with the name.
type hasHeaderKey struct{ name string }

func newHasHeaderKey(s *settings) Predicate { return &hasHeaderKey{name: s.required("name")} }

func (p *hasHeaderKey) Test(r *connect.Record) bool {
	_, ok := r.Header(p.name)
	return ok
}

// recordIsTombstone holds when the record's value is nil.
type recordIsTombstone struct{}

func (recordIsTombstone) Test(r *connect.Record) bool { return r.Value == nil }
