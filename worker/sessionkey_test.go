package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

func TestVerifySignature(t *testing.T) {
	body := []byte(`[{"task.class":"x"}]`)
	cur := sessionKey{key: []byte("0123456789abcdef0123456789abcdef"), created: time.Now()}
	prev := sessionKey{key: []byte("fedcba9876543210fedcba9876543210"), created: time.Now().Add(-time.Hour)}
	other := []byte("an attacker's guess at the key!!")
	for _, tt := range []struct {
		name string
		sig  InternalSignature
		keys []sessionKey
		want error // nil for accepted
	}{
		{"signed with the current key", InternalSignature{signatureAlgorithm, sign(cur.key, body), body}, []sessionKey{cur, prev}, nil},
		{"signed with the previous key", InternalSignature{signatureAlgorithm, sign(prev.key, body), body}, []sessionKey{cur, prev}, nil},
		{"no signature", InternalSignature{Body: body}, []sessionKey{cur, prev}, api.ErrBadRequest},
		{"another algorithm", InternalSignature{"HmacSHA1", sign(cur.key, body), body}, []sessionKey{cur, prev}, api.ErrBadRequest},
		{"a forged signature", InternalSignature{signatureAlgorithm, sign(other, body), body}, []sessionKey{cur, prev}, api.ErrForbidden},
		{"a signature of another body", InternalSignature{signatureAlgorithm, sign(cur.key, []byte("[]")), body}, []sessionKey{cur, prev}, api.ErrForbidden},
		{"not base64", InternalSignature{signatureAlgorithm, "%%%", body}, []sessionKey{cur, prev}, api.ErrForbidden},
		{"no key known yet", InternalSignature{signatureAlgorithm, sign(cur.key, body), body}, []sessionKey{{}, {}}, api.ErrRebalance},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := verifySignature(tt.sig, tt.keys...)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("verifySignature = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSessionKeyRecordsRoundTrip(t *testing.T) {
	k, ok := parseSessionKey([]byte(`{"key":"c2VjcmV0LWtleS1ieXRlcw==","algorithm":"HmacSHA256","creation-timestamp":1764720000000}`))
	if !ok || string(k.key) != "secret-key-bytes" || k.created.UnixMilli() != 1764720000000 {
		t.Fatalf("parsed %+v, %v", k, ok)
	}
	if _, ok := parseSessionKey([]byte(`{"key":"c2VjcmV0","algorithm":"HmacMD5","creation-timestamp":1}`)); ok {
		t.Error("a key for an algorithm this worker does not verify was taken")
	}
}
