package file

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/connect"
)

// The value format writes plain strings without encoding/json; every line must still be what
// encoding/json writes.
func TestValueLinesAreWhatEncodingJSONWrites(t *testing.T) {
	for _, v := range []any{
		"", "plain text 123", `{"raw":true}`, `back\slash`, "tab\there", "new\nline", "del\x7f",
		"<html> & more", "żółć", "line\u2028sep", "bad utf8 \xff", []byte("bytes"), []byte{0xff, 0},
		int64(7), nil, map[string]any{"seq": 1},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(jsonValue(v)); err != nil {
			t.Fatal(err)
		}
		got, err := newLineEncoder(FormatValue).encode(connect.Record{Value: v})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%q: line %q, encoding/json writes %q", v, got, want.Bytes())
		}
	}
}
