package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/sluicehq/sluice/connect"
)

// Converter turns the bytes of a Kafka record's key or value into a connector value and back.
type Converter interface {
	// FromKafka turns a key or value from Kafka into a value and optional schema (nil data ->
	// nil, nil: a tombstone).
	FromKafka(topic string, data []byte) (any, *connect.Schema, error)
	// ToKafka serializes a value (with optional schema) for Kafka (nil -> nil). The result
	// may share memory with the value (a string's bytes, a byte slice): it is read-only, for
	// clients that copy it (confluent-kafka-go's Produce does).
	ToKafka(topic string, value any, schema *connect.Schema) ([]byte, error)
}

// Kafka Connect's class names of the converters, which Names lists.
const (
	JSONClass      = "org.apache.kafka.connect.json.JsonConverter"
	StringClass    = "org.apache.kafka.connect.storage.StringConverter"
	ByteArrayClass = "org.apache.kafka.connect.converters.ByteArrayConverter"
)

// Names returns the canonical class names of the converters, for the plugin list.
func Names() []string { return []string{JSONClass, StringClass, ByteArrayClass} }

// New builds the converter named by class with its settings (already stripped of the
// "key.converter." or "value.converter." prefix), for a key or a value.
//
// The class is a Kafka Connect class name (org.apache.kafka.connect.json.JsonConverter,
// org.apache.kafka.connect.storage.StringConverter,
// org.apache.kafka.connect.converters.ByteArrayConverter), its simple name (JsonConverter) or
// an alias (json, string, bytearray), in any case.
//
// JSON settings: schemas.enable (default true), schemas.cache.size (default 1000),
// replace.null.with.default (default true) and decimal.format (BASE64, the default, or
// NUMERIC). String settings: converter.encoding, serializer.encoding, deserializer.encoding
// (only UTF-8). Other settings are ignored, as Connect does. An error in a setting is a
// *connect.FieldError whose Key is the setting without the prefix; add the prefix to show it
// on the connector's key.
func New(class string, settings map[string]string, isKey bool) (Converter, error) {
	side := "value"
	if isKey {
		side = "key"
	}
	switch alias(class) {
	case "json":
		c, err := newJSON(settings, side)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "string":
		c, err := newString(settings, side)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "bytearray":
		return byteArrayConverter{side: side}, nil
	}
	return nil, fmt.Errorf("unknown converter %q (known: %s)", class, strings.Join(Names(), ", "))
}

func alias(class string) string {
	if i := strings.LastIndexByte(class, '.'); i >= 0 {
		class = class[i+1:]
	}
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(strings.TrimSpace(class)))
	return strings.TrimSuffix(n, "converter")
}

func boolSetting(settings map[string]string, key string, def bool) (bool, error) {
	v, ok := settings[key]
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &connect.FieldError{Key: key, Message: fmt.Sprintf("Invalid value %s for configuration %s: Expected value to be either true or false", v, key)}
}

// --- JSON ---

type jsonConverter struct {
	side            string
	schemas         bool
	replaceNull     bool
	numericDecimals bool

	cacheSize int
	mu        sync.RWMutex
	cache     map[string]*connect.Schema // schema JSON text -> schema
}

func newJSON(settings map[string]string, side string) (*jsonConverter, error) {
	c := &jsonConverter{side: side, cacheSize: 1000}
	var errs []error
	var err error
	if c.schemas, err = boolSetting(settings, "schemas.enable", true); err != nil {
		errs = append(errs, err)
	}
	if c.replaceNull, err = boolSetting(settings, "replace.null.with.default", true); err != nil {
		errs = append(errs, err)
	}
	if v := strings.TrimSpace(settings["schemas.cache.size"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, &connect.FieldError{Key: "schemas.cache.size", Message: fmt.Sprintf("Invalid value %s for configuration schemas.cache.size: not a non-negative integer", v)})
		}
		c.cacheSize = n
	}
	switch v := strings.ToUpper(strings.TrimSpace(settings["decimal.format"])); v {
	case "", "BASE64":
	case "NUMERIC":
		c.numericDecimals = true
	default:
		errs = append(errs, &connect.FieldError{Key: "decimal.format", Message: fmt.Sprintf("Invalid value %s for configuration decimal.format: String must be one of: BASE64, NUMERIC", settings["decimal.format"])})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.cache = make(map[string]*connect.Schema)
	return c, nil
}

func (c *jsonConverter) fail(topic string, err error) error {
	return fmt.Errorf("converting %s of topic %q from JSON: %w", c.side, topic, err)
}

// errNoEnvelope is Kafka Connect's message, word for word.
var errNoEnvelope = errors.New(`JsonConverter with schemas.enable requires "schema" and "payload" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.`)

// FromKafka parses JSON. With schemas.enable it reads Connect's envelope
// {"schema":...,"payload":...} and converts the payload to the types its schema names (bytes
// from base64, integers range-checked, logical types to time.Time and decimal strings);
// a null schema leaves the payload schemaless. Empty data is a tombstone, like nil.
func (c *jsonConverter) FromKafka(topic string, data []byte) (any, *connect.Schema, error) {
	if len(data) == 0 {
		return nil, nil, nil
	}
	if !c.schemas {
		v, err := decodeJSON(data)
		if err != nil {
			return nil, nil, c.fail(topic, err)
		}
		return v, nil, nil
	}
	d := getDecoder(data)
	defer putDecoder(d)
	schemaJSON, payload, err := d.envelope()
	if err != nil {
		return nil, nil, c.fail(topic, err)
	}
	if string(schemaJSON) == "null" {
		return payload, nil, nil
	}
	schema, err := c.schemaOf(schemaJSON)
	if err != nil {
		return nil, nil, c.fail(topic, err)
	}
	v, err := c.fromJSON(schema, payload, "")
	if err != nil {
		return nil, nil, c.fail(topic, err)
	}
	return v, schema, nil
}

// envelope parses {"schema":...,"payload":...}: the schema's text, to look it up in the
// cache, and the payload's value.
func (d *decoder) envelope() (schema []byte, payload any, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		if _, err := d.value(); err != nil {
			return nil, nil, err
		}
		if err := d.end(); err != nil {
			return nil, nil, err
		}
		return nil, nil, errNoEnvelope
	}
	d.pos++
	var haveSchema, havePayload, other bool
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
	} else {
		for {
			d.skipSpace()
			if d.pos >= len(d.data) {
				return nil, nil, d.errEOF()
			}
			if d.data[d.pos] != '"' {
				return nil, nil, d.errChar("looking for beginning of object key string")
			}
			k, err := d.key()
			if err != nil {
				return nil, nil, err
			}
			d.skipSpace()
			if d.pos >= len(d.data) {
				return nil, nil, d.errEOF()
			}
			if d.data[d.pos] != ':' {
				return nil, nil, d.errChar("after object key")
			}
			d.pos++
			switch k {
			case "schema":
				d.skipSpace()
				start := d.pos
				if err := d.skipValue(); err != nil {
					return nil, nil, err
				}
				schema, haveSchema = d.data[start:d.pos], true
			case "payload":
				if payload, err = d.value(); err != nil {
					return nil, nil, err
				}
				havePayload = true
			default:
				if err := d.skipValue(); err != nil {
					return nil, nil, err
				}
				other = true
			}
			d.skipSpace()
			if d.pos >= len(d.data) {
				return nil, nil, d.errEOF()
			}
			if d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.data[d.pos] != '}' {
				return nil, nil, d.errChar("after object key:value pair")
			}
			d.pos++
			break
		}
	}
	if err := d.end(); err != nil {
		return nil, nil, err
	}
	if !haveSchema || !havePayload || other {
		return nil, nil, errNoEnvelope
	}
	return schema, payload, nil
}

// schemaOf returns the schema written as text, from the cache when the same text was seen
// before: a topic's records usually all carry the same schema.
func (c *jsonConverter) schemaOf(text []byte) (*connect.Schema, error) {
	c.mu.RLock()
	s, ok := c.cache[string(text)]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	v, err := decodeJSON(text)
	if err != nil {
		return nil, err
	}
	if s, err = c.parseSchema(v, ""); err != nil {
		return nil, err
	}
	if c.cacheSize > 0 {
		c.mu.Lock()
		if len(c.cache) >= c.cacheSize {
			clear(c.cache)
		}
		c.cache[string(text)] = s
		c.mu.Unlock()
	}
	return s, nil
}

// ToKafka writes JSON. With schemas.enable it writes Connect's envelope, with "schema":null
// when the value has no schema; without, the plain payload. A nil value is a tombstone.
func (c *jsonConverter) ToKafka(topic string, value any, schema *connect.Schema) ([]byte, error) {
	if value == nil {
		return nil, nil
	}
	out, err := encode(func(b []byte) ([]byte, error) {
		if !c.schemas {
			return c.appendPayload(b, schema, value)
		}
		b = append(b, `{"schema":`...)
		var err error
		if schema == nil {
			b = append(b, "null"...)
		} else if b, err = appendSchema(b, schema, "", c.numericDecimals); err != nil {
			return b, err
		}
		b = append(b, `,"payload":`...)
		if b, err = c.appendPayload(b, schema, value); err != nil {
			return b, err
		}
		return append(b, '}'), nil
	})
	if err != nil {
		return nil, fmt.Errorf("converting %s for topic %q to JSON: %w", c.side, topic, err)
	}
	return out, nil
}

func (c *jsonConverter) appendPayload(b []byte, schema *connect.Schema, value any) ([]byte, error) {
	return appendWithSchema(b, schema, value, "", c.numericDecimals)
}

// --- string ---

type stringConverter struct{ side string }

func newString(settings map[string]string, side string) (stringConverter, error) {
	var errs []error
	for _, key := range []string{"converter.encoding", "encoding", "serializer.encoding", "deserializer.encoding"} {
		v, ok := settings[key]
		if !ok {
			continue
		}
		switch strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(v), "-", "")) {
		case "", "UTF8":
		default:
			errs = append(errs, &connect.FieldError{Key: key, Message: fmt.Sprintf("encoding %q is not supported: only UTF-8 is", v)})
		}
	}
	return stringConverter{side: side}, errors.Join(errs...)
}

// FromKafka returns the data as a string with Connect's optional string schema; invalid
// UTF-8 becomes U+FFFD, as Java's decoder does.
func (c stringConverter) FromKafka(_ string, data []byte) (any, *connect.Schema, error) {
	if data == nil {
		return nil, nil, nil
	}
	if !utf8.Valid(data) {
		return strings.ToValidUTF8(string(data), "\uFFFD"), optionalString, nil
	}
	return string(data), optionalString, nil
}

var (
	optionalString = &connect.Schema{Type: connect.String, Optional: true}
	optionalBytes  = &connect.Schema{Type: connect.Bytes, Optional: true}
)

// ToKafka writes a string or []byte as is. Where Connect calls toString, this writes numbers
// and booleans as their JSON text, time.Time as RFC 3339, and maps and slices as JSON, which
// is more useful than Java's toString.
func (c stringConverter) ToKafka(topic string, value any, _ *connect.Schema) ([]byte, error) {
	switch v := value.(type) {
	case nil:
		return nil, nil
	case string:
		return readOnlyBytes(v), nil
	case []byte:
		return v, nil
	case json.Number:
		return readOnlyBytes(string(v)), nil
	}
	out, err := encode(func(b []byte) ([]byte, error) {
		b, err := appendWithSchema(b, nil, value, "", false)
		if err == nil && len(b) > 1 && b[0] == '"' { // time.Time and the like: no quotes
			var s string
			if json.Unmarshal(b, &s) == nil {
				return append(b[:0], s...), nil
			}
		}
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("converting %s for topic %q to a string: %w", c.side, topic, err)
	}
	return out, nil
}

// --- byte array ---

type byteArrayConverter struct{ side string }

// FromKafka returns the data as is, with Connect's optional bytes schema.
func (c byteArrayConverter) FromKafka(_ string, data []byte) (any, *connect.Schema, error) {
	if data == nil {
		return nil, nil, nil
	}
	return data, optionalBytes, nil
}

// ToKafka accepts []byte, string and nil.
func (c byteArrayConverter) ToKafka(topic string, value any, schema *connect.Schema) ([]byte, error) {
	if schema != nil && schema.Type != connect.Bytes && schema.Type != connect.String {
		return nil, fmt.Errorf("converting %s for topic %q: invalid schema type for ByteArrayConverter: %s", c.side, topic, schema.Type)
	}
	switch v := value.(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("converting %s for topic %q: ByteArrayConverter is not compatible with objects of type %T", c.side, topic, value)
}

// readOnlyBytes is the bytes of s without a copy; they must never be written.
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
