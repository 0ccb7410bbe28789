package mqttsource

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/eclipse/paho.golang/autopaho"
)

// connectError is a failed connection attempt explained for the user: which server, what
// happened in words, and whether trying again could help.
type connectError struct {
	server    string
	reason    string
	permanent bool // a refusal that trying again will not change
	err       error
	// versionRefused: the broker refused MQTT v5 (set only when trying v5 with
	// mqtt.protocol.version=auto, to fall back to 3.1.1)
	versionRefused bool
}

func (e *connectError) Error() string {
	return fmt.Sprintf("cannot connect to the MQTT broker at %s: %s", e.server, e.reason)
}

func (e *connectError) Unwrap() error { return e.err }

// explain turns a connection error from the network, TLS or the broker's CONNACK into a
// sentence that says what to fix. cfg says what the task tried (a client certificate or not).
func explain(server string, err error, cfg *Config, tls bool) *connectError {
	ce := &connectError{server: server, err: err}
	msg := err.Error()
	var connack *autopaho.ConnackError
	var refused3 *connackError3
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	hasCert := cfg.TLSCert != ""
	switch {
	case errors.As(err, &connack):
		ce.reason, ce.permanent = connackReason(connack.ReasonCode, connack.Reason)
		if connack.ReasonCode == 0x84 {
			ce.reason += "; set mqtt.protocol.version to 3.1.1 or auto"
		}
	case errors.As(err, &refused3):
		ce.reason, ce.permanent = connackReason(refused3.v5Code(), "")
		if refused3.code == 1 {
			ce.reason = "the broker does not support MQTT 3.1.1 (unacceptable protocol version)"
		}
	case errors.As(err, &unknownCA):
		ce.reason, ce.permanent = "the broker's certificate is not signed by a CA this task trusts; set mqtt.tls.ca to the PEM file of the CA that signed it", true
	case errors.As(err, &hostname):
		ce.reason, ce.permanent = fmt.Sprintf("the broker's certificate is not valid for this host (%v); connect by a name the certificate lists, or set mqtt.tls.server.name", hostname.Error()), true
	case errors.As(err, &invalid):
		ce.reason, ce.permanent = fmt.Sprintf("the broker's certificate is not valid: %v", invalid.Error()), true
	case tls && containsAny(msg, "certificate required", "bad certificate", "unknown certificate authority", "handshake failure", "certificate unknown", "access denied"):
		ce.permanent = true
		if hasCert {
			ce.reason = fmt.Sprintf("the broker refused the client certificate %s during the TLS handshake (%s); it must be signed by a CA the broker trusts, unexpired, and made for client authentication", cfg.TLSCert, tlsAlert(msg))
		} else {
			ce.reason = fmt.Sprintf("the broker requires a client certificate (mutual TLS) and refused the connection because the task presented none (%s); set mqtt.tls.cert and mqtt.tls.key", tlsAlert(msg))
		}
	case tls && !hasCert && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		// Some brokers close the connection without an alert when a certificate is missing.
		ce.reason = "the broker closed the connection during the TLS handshake; it may require a client certificate (mutual TLS): set mqtt.tls.cert and mqtt.tls.key"
	case containsAny(msg, "first record does not look like a TLS handshake", "tls: "):
		ce.reason, ce.permanent = fmt.Sprintf("the TLS handshake failed (%s); is this a TLS listener (ssl://) or a plain one (tcp://)?", msg), true
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.reason = "nothing accepts connections there (connection refused); is the broker running, and are host and port right?"
	case !tls && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		ce.reason = "the broker closed the connection before answering the MQTT CONNECT; is this a TLS listener that needs ssl://, or does the broker speak only MQTT 3.1.1 (then set mqtt.protocol.version to 3.1.1 or auto)?"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		ce.reason = "no answer in time (timed out); is the address right and the broker reachable?"
	case containsAny(msg, "no such host"):
		ce.reason = fmt.Sprintf("the host name does not resolve (%s)", msg)
	default:
		ce.reason = msg
	}
	return ce
}

// versionRefused decides, from a failed MQTT v5 connection attempt, whether the broker does
// not speak v5, so that mqtt.protocol.version=auto falls back to 3.1.1. It is a refusal when
//   - a v5 broker answered with CONNACK reason 0x84, Unsupported Protocol Version;
//   - a 3.1.1 broker answered with its CONNACK return code 1, unacceptable protocol version
//     (paho.golang reads that 2-byte CONNACK as one cut short: EOF while reading its
//     properties), or the code reached us as a reason code;
//   - the broker closed the connection after the CONNECT without answering, as 3.1.1 brokers
//     may do with a protocol level they do not know [MQTT-3.1.2-2] (EOF or reset).
//
// Not a refusal: any other CONNACK (bad credentials, not authorized, ...), and failures
// before the broker saw the CONNECT: connection refused, timeouts, names that do not
// resolve, TLS errors (a TLS alert named in the error, as a broker requiring a client
// certificate sends).
func versionRefused(err error) bool {
	if err == nil {
		return false
	}
	var connack *autopaho.ConnackError
	if errors.As(err, &connack) {
		return connack.ReasonCode == 0x84 || connack.ReasonCode == 0x01
	}
	if strings.Contains(err.Error(), "tls: ") {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// connackError3 is an MQTT 3.1.1 CONNACK refusal (return codes 1 to 5).
type connackError3 struct {
	code byte
	err  error
}

func (e *connackError3) Error() string {
	return fmt.Sprintf("the broker refused the connection: %v (return code %d)", e.err, e.code)
}

func (e *connackError3) Unwrap() error { return e.err }

// v5Code is the MQTT v5 reason code that means the same.
func (e *connackError3) v5Code() byte {
	switch e.code {
	case 1:
		return 0x84
	case 2:
		return 0x85
	case 3:
		return 0x88
	case 4:
		return 0x86
	case 5:
		return 0x87
	}
	return 0x80
}

// connackReason explains an MQTT v5 CONNACK refusal.
func connackReason(code byte, text string) (string, bool) {
	reason := ""
	permanent := true
	switch code {
	case 0x84:
		reason = "the broker does not support MQTT v5 (unsupported protocol version)"
	case 0x85:
		reason = "the broker rejected the client id (client identifier not valid); change mqtt.client.id.prefix"
	case 0x86:
		reason = "the broker rejected the user name or password (bad user name or password); check mqtt.username and mqtt.password"
	case 0x87:
		reason = "the broker did not authorize this client to connect (not authorized); check the credentials and the broker's access rules"
	case 0x8A:
		reason = "the broker has banned this client (banned)"
	case 0x8C:
		reason = "the broker does not support the authentication method (bad authentication method)"
	case 0x88:
		reason, permanent = "the broker is unavailable (server unavailable)", false
	case 0x89:
		reason, permanent = "the broker is busy (server busy)", false
	case 0x97:
		reason, permanent = "the broker refused the connection for now (quota exceeded)", false
	case 0x9F:
		reason, permanent = "the broker refused the connection: clients connect too often (connection rate exceeded)", false
	case 0x95:
		reason = "the broker refused the connection (packet too large)"
	case 0x9C, 0x9D:
		reason, permanent = "the broker sent the client to another server (use another server)", false
	default:
		reason, permanent = fmt.Sprintf("the broker refused the connection (reason code 0x%02X)", code), code == 0x80 || code >= 0x81 && code <= 0x87
	}
	if text != "" {
		reason += ": " + text
	}
	return reason, permanent
}

// subackReason explains a SUBACK failure code for one filter.
func subackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized: the broker's access rules do not let this client subscribe to it"
	case 0x8F:
		return "the broker finds the topic filter invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x9E:
		return "the broker does not support shared subscriptions; set mqtt.shared.subscription=never and run one task"
	case 0xA1:
		return "the broker does not support subscription identifiers"
	case 0xA2:
		return "the broker does not support wildcard subscriptions"
	}
	return fmt.Sprintf("reason code 0x%02X", code)
}

// disconnectReason explains a DISCONNECT the broker sent.
func disconnectReason(code byte, text string) string {
	var reason string
	switch code {
	case 0x8E:
		reason = "another client connected with this task's client id, and the broker handed it the session (session taken over); is the same connector running twice, or another client using the id?"
	case 0x8B:
		reason = "the broker is shutting down"
	case 0x87:
		reason = "not authorized"
	case 0x8D:
		reason = "keep-alive timeout"
	case 0x97:
		reason = "quota exceeded"
	case 0x98:
		reason = "administrative action"
	default:
		reason = fmt.Sprintf("reason code 0x%02X", code)
	}
	if text != "" {
		reason += ": " + text
	}
	return reason
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// tlsAlert picks the TLS alert out of an error message ("remote error: tls: certificate
// required" becomes "TLS alert: certificate required").
func tlsAlert(msg string) string {
	if i := strings.LastIndex(msg, "tls: "); i >= 0 {
		return "TLS alert: " + msg[i+len("tls: "):]
	}
	return msg
}
