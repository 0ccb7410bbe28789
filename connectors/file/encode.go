package file

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/sluicehq/sluice/connect"
)

// jsonLine is a record in the json format, its fields in this order.
type jsonLine struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       any    `json:"key"`
	Value     any    `json:"value"`
	Timestamp *int64 `json:"timestamp"` // milliseconds since the epoch
}

// lineEncoder turns records into lines of JSON.
type lineEncoder struct {
	format string
	buf    bytes.Buffer
	enc    *json.Encoder
}

func newLineEncoder(format string) *lineEncoder {
	e := &lineEncoder{format: format}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

// encode returns the record's line, ending in a newline; it is valid until the next call. A
// key or value JSON cannot hold (a NaN, say) is a *connect.DataError naming it.
func (e *lineEncoder) encode(r connect.Record) ([]byte, error) {
	e.buf.Reset()
	var err error
	if e.format == FormatValue {
		if s, ok := jsonValue(r.Value).(string); ok && plainJSON(s) {
			// Nothing to escape: the string in quotes is what encoding/json writes, without
			// its reflection (a tenth of the file sink's time, with StringConverter values).
			e.buf.Grow(len(s) + 3)
			e.buf.WriteByte('"')
			e.buf.WriteString(s)
			e.buf.WriteString("\"\n")
			return e.buf.Bytes(), nil
		}
		err = e.enc.Encode(jsonValue(r.Value))
	} else {
		line := jsonLine{Topic: r.Topic, Partition: r.KafkaPartition, Offset: r.KafkaOffset,
			Key: jsonValue(r.Key), Value: jsonValue(r.Value)}
		if !r.Time.IsZero() {
			ms := r.Time.UnixMilli()
			line.Timestamp = &ms
		}
		err = e.enc.Encode(line)
	}
	if err != nil {
		field, value := "value", r.Value
		if _, keyErr := json.Marshal(r.Key); keyErr != nil {
			field, value = "key", r.Key
		}
		return nil, connect.BadField(field, value, "cannot be written as JSON: %v", err)
	}
	return e.buf.Bytes(), nil
}

// plainJSON says whether s is printable ASCII that JSON writes as it is: no quote, backslash,
// control character or byte beyond ASCII (encoding/json escapes some of those).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// jsonValue writes a byte array as a string when it is UTF-8 text; encoding/json writes other
// byte arrays as base64.
func jsonValue(v any) any {
	if b, ok := v.([]byte); ok && utf8.Valid(b) {
		return string(b)
	}
	return v
}
