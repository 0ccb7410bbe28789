package worker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/sluicehq/sluice/worker/api"
)

// Signed internal requests, as Kafka Connect signs them (KIP-507): the worker that runs a
// connector hands its task configurations to the leader over the internal
// POST /connectors/{name}/tasks, which anyone who reaches a worker's port could call too. The
// leader keeps a session key in the config topic (record session-key), a new one every
// inter.worker.key.ttl.ms; the sender signs the request body with an HMAC under the key, in
// the X-Connect-Authorization header (algorithm in X-Connect-Request-Signature-Algorithm), and
// the leader refuses a request without a signature (400) or with a wrong one (403). The key
// before the current one is still accepted, for requests signed just before a rotation.

// Header names and the one algorithm, Kafka Connect's.
const (
	SignatureHeader          = "X-Connect-Authorization"
	SignatureAlgorithmHeader = "X-Connect-Request-Signature-Algorithm"
	signatureAlgorithm       = "HmacSHA256"
	sessionKeyRecord         = "session-key"
	sessionKeyBytes          = 32
)

// InternalSignature is what an internal request carries to prove a worker of the cluster sent
// it: its signature headers and the body they sign.
type InternalSignature struct {
	Algorithm string
	Signature string
	Body      []byte
}

// sessionKey is a session key as the config topic holds it.
type sessionKey struct {
	key     []byte
	created time.Time
}

type sessionKeyValue struct {
	Key       string `json:"key"`
	Algorithm string `json:"algorithm"`
	Created   int64  `json:"creation-timestamp"`
}

// parseSessionKey reads a session-key record; ok is false for one this worker cannot use.
func parseSessionKey(value []byte) (sessionKey, bool) {
	var v sessionKeyValue
	if json.Unmarshal(value, &v) != nil || v.Algorithm != signatureAlgorithm {
		return sessionKey{}, false
	}
	k, err := base64.StdEncoding.DecodeString(v.Key)
	if err != nil || len(k) == 0 {
		return sessionKey{}, false
	}
	return sessionKey{key: k, created: time.UnixMilli(v.Created)}, true
}

// sign is the signature of body under key.
func sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// verifySignature checks an internal request against the current and the previous key.
func verifySignature(sig InternalSignature, keys ...sessionKey) error {
	if sig.Signature == "" {
		return api.Errorf(api.ErrBadRequest, "Internal request missing required signature (%s)", SignatureHeader)
	}
	if sig.Algorithm != signatureAlgorithm {
		return api.Errorf(api.ErrBadRequest, "Internal request signed with %q; this worker verifies %s", sig.Algorithm, signatureAlgorithm)
	}
	got, err := base64.StdEncoding.DecodeString(sig.Signature)
	if err != nil {
		return api.Errorf(api.ErrForbidden, "Internal request contained invalid signature.")
	}
	usable := false
	for _, k := range keys {
		if len(k.key) == 0 {
			continue
		}
		usable = true
		mac := hmac.New(sha256.New, k.key)
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
