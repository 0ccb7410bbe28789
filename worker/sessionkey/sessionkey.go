// Package sessionkey signs and verifies requests between workers.
//
// Internal requests are signed as Kafka Connect signs them (KIP-507): the worker that runs a
// connector hands its task configurations to the leader over the internal
// POST /connectors/{name}/tasks, which anyone who reaches a worker's port could call too. The
// leader keeps a session key in the config topic (record session-key), a new one every
// inter.worker.key.ttl.ms; the sender signs the request body with an HMAC under the key, in
// the X-Connect-Authorization header (algorithm in X-Connect-Request-Signature-Algorithm), and
// the leader refuses a request without a signature (400) or with a wrong one (403). The key
// before the current one is still accepted, for requests signed just before a rotation.
package sessionkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

// Header names and the one algorithm, Kafka Connect's.
const (
	Header          = "X-Connect-Authorization"
	AlgorithmHeader = "X-Connect-Request-Signature-Algorithm"
	Algorithm       = "HmacSHA256"
	Record          = "session-key"
	Bytes           = 32
)

// Signature is what an internal request carries to prove a worker of the cluster sent
// it: its signature headers and the body they sign.
type Signature struct {
	Algorithm string
	Signature string
	Body      []byte
}

// Key is a session key as the config topic holds it.
type Key struct {
	Key     []byte
	Created time.Time
}

type Value struct {
	Key       string `json:"key"`
	Algorithm string `json:"algorithm"`
	Created   int64  `json:"creation-timestamp"`
}

// Parse reads a session-key record; ok is false for one this worker cannot use.
func Parse(value []byte) (Key, bool) {
	var v Value
	if json.Unmarshal(value, &v) != nil || v.Algorithm != Algorithm {
		return Key{}, false
	}
	k, err := base64.StdEncoding.DecodeString(v.Key)
	if err != nil || len(k) == 0 {
		return Key{}, false
	}
	return Key{Key: k, Created: time.UnixMilli(v.Created)}, true
}

// Sign is the signature of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks an internal request against the current and the previous key.
func Verify(sig Signature, keys ...Key) error {
	if sig.Signature == "" {
		return api.Errorf(api.ErrBadRequest, "Internal request missing required signature (%s)", Header)
	}
	if sig.Algorithm != Algorithm {
		return api.Errorf(api.ErrBadRequest, "Internal request signed with %q; this worker verifies %s", sig.Algorithm, Algorithm)
	}
	got, err := base64.StdEncoding.DecodeString(sig.Signature)
	if err != nil {
		return api.Errorf(api.ErrForbidden, "Internal request contained invalid signature.")
	}
	usable := false
	for _, k := range keys {
		if len(k.Key) == 0 {
			continue
		}
		usable = true
		mac := hmac.New(sha256.New, k.Key)
		mac.Write(sig.Body)
		if hmac.Equal(got, mac.Sum(nil)) {
			return nil
		}
	}
	if !usable {
		return api.Errorf(api.ErrRebalance, "This worker has no session key yet to verify internal requests with; retry shortly")
	}
	return api.Errorf(api.ErrForbidden, "Internal request contained invalid signature.")
}
