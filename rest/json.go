package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
)

// writeJSON answers with v as JSON. HTML characters are not escaped: configs hold URLs with
// "&" in them, and Kafka Connect shows them as they are.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorBody{
			ErrorCode: status,
			Message:   fmt.Sprintf("encoding the response as JSON: %v", err),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decodeOptions tunes decodeBody.
type decodeOptions struct {
	// numbers keeps JSON numbers as json.Number (for free-form maps such as offsets).
	numbers bool
}

// decodeBody decodes the request body (one JSON value, nothing after it) into v. Every failure
// is a 400 whose message names the problem; what describes the body the endpoint takes.
func decodeBody(r *http.Request, v any, what string, opts decodeOptions) error {
	body := requestBody(r)
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; %s %s takes %s", r.Method, r.URL.Path, what)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if opts.numbers {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err, what)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON in the request body: unexpected data after the JSON value")
	}
	return nil
}

// bodyError is a body that is valid JSON but not what the endpoint takes.
type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

// jsonError turns a decoding error into a 400 that says what is wrong with the body.
func jsonError(err error, what string) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		be     *bodyError
	)
	switch {
	case errors.As(err, &be):
		return badRequest("invalid request body: %s", be.msg)
	case errors.As(err, &syntax):
		return badRequest("malformed JSON in the request body at byte %d: %v", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON in the request body: it ends before the JSON value does")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("invalid request body: expected %s, got a JSON %s", what, typ.Value)
		}
		return badRequest("invalid request body: %q must be %s, not a JSON %s", typ.Field, kindName(typ.Type), typ.Value)
	default:
		return badRequest("invalid request body: %v", err)
	}
}

// kindName names the JSON a Go type takes, for messages.
func kindName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "a JSON object"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a value"
	}
}

// configMap is a connector configuration in a request body: a flat JSON object of strings.
// Like Kafka Connect (Jackson) it takes numbers and booleans as their text, so
// {"tasks.max": 2} means "2". JSON null decodes to a nil map; a null value is an error.
type configMap map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (m *configMap) UnmarshalJSON(data []byte) error {
	raw, err := rawObject(data)
	if err != nil || raw == nil {
		*m = nil
		return err
	}
	out := make(configMap, len(raw))
	for k, v := range raw {
		s, null, err := scalarText(k, v)
		if err != nil {
			return err
		}
		if null {
			return &bodyError{fmt.Sprintf("the value of %q is null; a configuration maps names to strings "+
				"(to remove a setting, PATCH /connectors/{connector}/config with a null value)", k)}
		}
		out[k] = s
	}
	*m = out
	return nil
}

// patchMap is the body of PATCH /connectors/{connector}/config: like configMap, but a null
// value (a nil pointer) removes the setting.
type patchMap map[string]*string

// UnmarshalJSON implements json.Unmarshaler.
func (m *patchMap) UnmarshalJSON(data []byte) error {
	raw, err := rawObject(data)
	if err != nil || raw == nil {
		*m = nil
		return err
	}
	out := make(patchMap, len(raw))
	for k, v := range raw {
		s, null, err := scalarText(k, v)
		if err != nil {
			return err
		}
		if null {
			out[k] = nil
			continue
		}
		out[k] = &s
	}
	*m = out
	return nil
}

// rawObject splits a JSON object into its members; JSON null gives a nil map.
func rawObject(data []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, &bodyError{fmt.Sprintf("expected a JSON object of settings, got a JSON %s", typ.Value)}
		}
		return nil, err
	}
	return raw, nil
}

// scalarText is the text of a JSON scalar used as a setting's value: a string as it is, a
// number as written, a boolean as true or false. Objects and arrays are errors.
func scalarText(key string, v json.RawMessage) (text string, null bool, err error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false, &bodyError{fmt.Sprintf("the value of %q is empty", key)}
	}
	switch c := v[0]; {
	case c == '"':
		if err := json.Unmarshal(v, &text); err != nil {
			return "", false, err
		}
		return text, false, nil
	case c == 'n':
		return "", true, nil
	case c == 't', c == 'f', c == '-', c >= '0' && c <= '9':
		return string(v), false, nil
	case c == '{':
		return "", false, &bodyError{fmt.Sprintf("the value of %q must be a string, not a JSON object", key)}
	default:
		return "", false, &bodyError{fmt.Sprintf("the value of %q must be a string, not a JSON array", key)}
	}
}

// plainNumbers replaces the json.Numbers in a decoded value with int64 when the number is an
// integer that fits, float64 otherwise, so offsets such as kafka_offset keep every digit.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
		return x
	default:
		return v
	}
}
