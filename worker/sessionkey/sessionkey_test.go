package sessionkey

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

func TestVerifySignature(t *testing.T) {
	body := []byte(`[{"task.class":"x"}]`)
	cur := Key{Key: []byte("0123456789abcdef0123456789abcdef"), Created: time.Now()}
	prev := Key{Key: []byte("fedcba9876543210fedcba9876543210"), Created: time.Now().Add(-time.Hour)}
	other := []byte("an attacker's guess at the key!!")
	for _, tt := range []struct {
		name string
		sig  Signature
		keys []Key
		want error // nil for accepted
	}{
		{"signed with the current key", Signature{Algorithm, Sign(cur.Key, body), body}, []Key{cur, prev}, nil},
		{"signed with the previous key", Signature{Algorithm, Sign(prev.Key, body), body}, []Key{cur, prev}, nil},
		{"no signature", Signature{Body: body}, []Key{cur, prev}, api.ErrBadRequest},
		{"another algorithm", Signature{"HmacSHA1", Sign(cur.Key, body), body}, []Key{cur, prev}, api.ErrBadRequest},
		{"a forged signature", Signature{Algorithm, Sign(other, body), body}, []Key{cur, prev}, api.ErrForbidden},
		{"a signature of another body", Signature{Algorithm, Sign(cur.Key, []byte("[]")), body}, []Key{cur, prev}, api.ErrForbidden},
		{"not base64", Signature{Algorithm, "%%%", body}, []Key{cur, prev}, api.ErrForbidden},
		{"no key known yet", Signature{Algorithm, Sign(cur.Key, body), body}, []Key{{}, {}}, api.ErrRebalance},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.sig, tt.keys...)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("verifySignature = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSessionKeyRecordsRoundTrip(t *testing.T) {
	k, ok := Parse([]byte(`{"key":"c2VjcmV0LWtleS1ieXRlcw==","algorithm":"HmacSHA256","creation-timestamp":1764720000000}`))
	if !ok || string(k.Key) != "secret-key-bytes" || k.Created.UnixMilli() != 1764720000000 {
		t.Fatalf("parsed %+v, %v", k, ok)
	}
	if _, ok := Parse([]byte(`{"key":"c2VjcmV0","algorithm":"HmacMD5","creation-timestamp":1}`)); ok {
		t.Error("a key for an algorithm this worker does not verify was taken")
	}
}
