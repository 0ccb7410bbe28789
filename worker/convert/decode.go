package convert

import (
	"fmt"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects, as encoding/json does.
const maxDepth = 10000

// syntaxError is what is wrong with a JSON text and where.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s (at byte %d)", e.msg, e.offset) }

// decoder parses JSON into nil, bool, int64, float64, string, map[string]any and []any without
// reflection. Members and elements are gathered on scratch stacks shared by all nesting levels
// and copied into maps and slices of the exact size, so nothing grows twice.
type decoder struct {
	data  []byte
	pos   int
	depth int
	kvs   []kv
	elems []any
	buf   []byte
	// keys interns object keys: the records of a topic repeat the same few keys, and sharing
	// their strings saves an allocation per key per record.
	keys map[string]string
}

const (
	maxInterned    = 512
	maxInternedLen = 64
)

type kv struct {
	k string
	v any
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func getDecoder(data []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.data, d.pos, d.depth = data, 0, 0
	return d
}

func putDecoder(d *decoder) {
	if cap(d.kvs) > 4096 || cap(d.elems) > 4096 || cap(d.buf) > 1<<16 {
		return // do not keep what one huge message grew
	}
	// popped entries were cleared as objects and arrays closed; an error leaves some
	clear(d.kvs)
	clear(d.elems)
	d.kvs, d.elems, d.data = d.kvs[:0], d.elems[:0], nil
	decoders.Put(d)
}

// decodeJSON parses one JSON text.
func decodeJSON(data []byte) (any, error) {
	d := getDecoder(data)
	defer putDecoder(d)
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}

func (d *decoder) end() error {
	d.skipSpace()
	if d.pos < len(d.data) {
		return d.errChar("after top-level value")
	}
	return nil
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) errEOF() error {
	return &syntaxError{"unexpected end of JSON input", len(d.data)}
}

func (d *decoder) errChar(context string) error {
	if d.pos >= len(d.data) {
		return d.errEOF()
	}
	return &syntaxError{"invalid character " + quoteChar(d.data[d.pos]) + " " + context, d.pos}
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	if c >= utf8.RuneSelf {
		s = fmt.Sprintf(`"\x%02x"`, c)
	}
	return "'" + s[1:len(s)-1] + "'"
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.errEOF()
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.str()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.number()
		}
		return nil, d.errChar("looking for beginning of value")
	}
}

func (d *decoder) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.data) {
			return d.errEOF()
		}
		if d.data[d.pos] != word[i] {
			return d.errChar("in literal " + word + " (expecting " + quoteChar(word[i]) + ")")
		}
		d.pos++
	}
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return &syntaxError{"exceeded max depth", d.pos}
	}
	return nil
}

// open steps into the object or array whose opening bracket is at pos and reports whether it
// is empty: then its closing bracket was consumed too, and the depth restored.
func (d *decoder) open(closing byte) (empty bool, err error) {
	if err := d.enter(); err != nil {
		return false, err
	}
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == closing {
		d.pos++
		d.depth--
		return true, nil
	}
	return false, nil
}

// emptyOr is the empty value of an empty object or array, or nil with err.
func emptyOr(empty any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return empty, nil
}

// memberKey checks that an object key starts at the next non-space byte; inlined when no
// space comes before it.
func (d *decoder) memberKey() error {
	if d.pos < len(d.data) && d.data[d.pos] == '"' {
		return nil
	}
	return d.expectAfterSpace('"', "looking for beginning of object key string")
}

// colon consumes the ':' after an object key; inlined when no space comes before it.
func (d *decoder) colon() error {
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		if err := d.expectAfterSpace(':', "after object key"); err != nil {
			return err
		}
	}
	d.pos++
	return nil
}

// expectAfterSpace skips space and checks that c comes next, without consuming it; where is
// the place for the error message.
func (d *decoder) expectAfterSpace(c byte, where string) error {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return d.errEOF()
	}
	if d.data[d.pos] != c {
		return d.errChar(where)
	}
	return nil
}

// next consumes what follows a member or element: a ',' (more follows) or the closing
// bracket, which also restores the depth. after names the place for the error message. The
// common case, no space before the separator, is small enough to be inlined.
func (d *decoder) next(closing byte, after string) (more bool, err error) {
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			return true, nil
		case closing:
			d.pos++
			d.depth--
			return false, nil
		}
	}
	return d.nextAfterSpace(closing, after)
}

func (d *decoder) nextAfterSpace(closing byte, after string) (more bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, d.errEOF()
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		return true, nil
	case closing:
		d.pos++
		d.depth--
		return false, nil
	}
	return false, d.errChar(after)
}

func (d *decoder) object() (any, error) {
	empty, err := d.open('}')
	if err != nil || empty {
		return emptyOr(map[string]any{}, err)
	}
	base := len(d.kvs)
	for more := true; more; {
		if err := d.memberKey(); err != nil {
			return nil, err
		}
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		if err := d.colon(); err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.kvs = append(d.kvs, kv{k, v})
		if more, err = d.next('}', "after object key:value pair"); err != nil {
			return nil, err
		}
	}
	m := make(map[string]any, len(d.kvs)-base)
	for _, e := range d.kvs[base:] {
		m[e.k] = e.v // a repeated key: the last one wins, as in encoding/json
	}
	clear(d.kvs[base:])
	d.kvs = d.kvs[:base]
	return m, nil
}

func (d *decoder) array() (any, error) {
	empty, err := d.open(']')
	if err != nil || empty {
		return emptyOr([]any{}, err)
	}
	base := len(d.elems)
	for more := true; more; {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.elems = append(d.elems, v)
		if more, err = d.next(']', "after array element"); err != nil {
			return nil, err
		}
	}
	a := make([]any, len(d.elems)-base)
	copy(a, d.elems[base:])
	clear(d.elems[base:])
	d.elems = d.elems[:base]
	return a, nil
}

// key parses an object key, interning short plain ones.
func (d *decoder) key() (string, error) {
	start := d.pos + 1
	for i := start; i < len(d.data) && i-start <= maxInternedLen; i++ {
		c := d.data[i]
		if c == '"' {
			if k, ok := d.keys[string(d.data[start:i])]; ok {
				d.pos = i + 1
				return k, nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	k, err := d.str()
	if err != nil || len(k) > maxInternedLen {
		return k, err
	}
	if d.keys == nil {
		d.keys = make(map[string]string)
	}
	if len(d.keys) >= maxInterned {
		clear(d.keys)
	}
	d.keys[k] = k
	return k, nil
}

// str parses a string literal at d.pos (which holds '"').
func (d *decoder) str() (string, error) {
	start := d.pos + 1
	i := start
	var high byte
	for i < len(d.data) {
		c := d.data[i]
		if c == '"' {
			if high >= utf8.RuneSelf && !utf8.Valid(d.data[start:i]) {
				break // replace invalid bytes on the slow path
			}
			d.pos = i + 1
			return string(d.data[start:i]), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		high |= c
		i++
	}
	return d.strSlow(start)
}

// strSlow unquotes a string with escapes or invalid UTF-8, which becomes U+FFFD as in
// encoding/json.
func (d *decoder) strSlow(start int) (string, error) {
	b := d.buf[:0]
	i := start
	for {
		if i >= len(d.data) {
			d.pos = i
			return "", d.errEOF()
		}
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = b
			return string(b), nil
		case c < 0x20:
			d.pos = i
			return "", d.errChar("in string literal")
		case c == '\\':
			i++
			if i >= len(d.data) {
				d.pos = i
				return "", d.errEOF()
			}
			switch e := d.data[i]; e {
			case '"', '\\', '/':
				b = append(b, e)
				i++
			case 'b':
				b = append(b, '\b')
				i++
			case 'f':
				b = append(b, '\f')
				i++
			case 'n':
				b = append(b, '\n')
				i++
			case 'r':
				b = append(b, '\r')
				i++
			case 't':
				b = append(b, '\t')
				i++
			case 'u':
				r, n, err := d.hex4(i + 1)
				if err != nil {
					return "", err
				}
				i += 1 + n
				if utf16.IsSurrogate(r) {
					if i+1 < len(d.data) && d.data[i] == '\\' && d.data[i+1] == 'u' {
						if r2, n2, err := d.hex4(i + 2); err == nil {
							if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
								r = dec
								i += 2 + n2
								b = utf8.AppendRune(b, r)
								continue
							}
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
			default:
				d.pos = i
				return "", d.errChar("in string escape code")
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, d.data[i:i+size]...)
			}
			i += size
		}
	}
}

// hex4 reads the four hex digits of a \u escape starting at i.
func (d *decoder) hex4(i int) (rune, int, error) {
	var r rune
	for n := 0; n < 4; n++ {
		if i+n >= len(d.data) {
			d.pos = i + n
			return 0, 0, d.errEOF()
		}
		c := d.data[i+n]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			d.pos = i + n
			return 0, 0, d.errChar("in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
	}
	return r, 4, nil
}

// number parses a number: int64 when it is an integer that fits, float64 otherwise.
func (d *decoder) number() (any, error) {
	start := d.pos
	i := d.pos
	neg := false
	if d.data[i] == '-' {
		neg = true
		i++
	}
	if i >= len(d.data) {
		d.pos = i
		return nil, d.errEOF()
	}
	var u uint64
	overflow := false
	switch c := d.data[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			dig := uint64(d.data[i] - '0')
			if u > (1<<64-1-dig)/10 {
				overflow = true
			}
			u = u*10 + dig
			i++
		}
	default:
		d.pos = i
		return nil, d.errChar("in numeric literal")
	}
	isFloat := false
	if i < len(d.data) && d.data[i] == '.' {
		isFloat = true
		i++
		if i >= len(d.data) {
			d.pos = i
			return nil, d.errEOF()
		}
		if d.data[i] < '0' || d.data[i] > '9' {
			d.pos = i
			return nil, d.errChar("after decimal point in numeric literal")
		}
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		isFloat = true
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if i >= len(d.data) {
			d.pos = i
			return nil, d.errEOF()
		}
		if d.data[i] < '0' || d.data[i] > '9' {
			d.pos = i
			return nil, d.errChar("in exponent of numeric literal")
		}
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	if !isFloat && !overflow {
		if !neg && u <= 1<<63-1 {
			return int64(u), nil
		}
		if neg && u <= 1<<63 {
			return -int64(u), nil // -1<<63 wraps to itself
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:i]), 64)
	if err != nil {
		return nil, &syntaxError{"number " + string(d.data[start:i]) + " is out of range", start}
	}
	return f, nil
}

// skipValue checks and steps over one value without building it, for the schema part of an
// envelope whose schema is already cached.
func (d *decoder) skipValue() error {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return d.errEOF()
	}
	switch c := d.data[d.pos]; c {
	case '{':
		empty, err := d.open('}')
		for more := !empty; err == nil && more; {
			if err = d.memberKey(); err != nil {
				break
			}
			if err = d.skipString(); err != nil {
				break
			}
			if err = d.colon(); err != nil {
				break
			}
			if err = d.skipValue(); err != nil {
				break
			}
			more, err = d.next('}', "after object key:value pair")
		}
		return err
	case '[':
		empty, err := d.open(']')
		for more := !empty; err == nil && more; {
			if err = d.skipValue(); err != nil {
				break
			}
			more, err = d.next(']', "after array element")
		}
		return err
	case '"':
		return d.skipString()
	default:
		_, err := d.value() // literals and numbers do not allocate
		return err
	}
}

func (d *decoder) skipString() error {
	i := d.pos + 1
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return nil
		case c < 0x20, c == '\\':
			_, err := d.strSlow(d.pos + 1)
			return err
		}
		i++
	}
	d.pos = i
	return d.errEOF()
}
