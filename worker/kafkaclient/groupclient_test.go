package kafkaclient

import (
	"strings"
	"testing"
)

func TestGroupClientOptionsFollowTheSecuritySettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
		opts     int
		err      string
	}{
		{"plaintext by default", nil, 0, ""},
		{"plaintext", map[string]string{"security.protocol": "plaintext"}, 0, ""},
		{"sasl plain", map[string]string{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": "u", "sasl.password": "p"}, 1, ""},
		{"scram over tls", map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}, 2, ""},
		{"tls", map[string]string{"security.protocol": "SSL"}, 1, ""},
		{"unknown protocol", map[string]string{"security.protocol": "TLS"}, 0, `security.protocol "TLS"`},
		{"unsupported mechanism", map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanisms": "GSSAPI"}, 0, `sasl.mechanisms "GSSAPI"`},
		{"missing CA file", map[string]string{"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}, 0, `ssl.ca.location "/nonexistent/ca.pem"`},
		{"certificate without key", map[string]string{"security.protocol": "SSL", "ssl.certificate.location": "/x.pem"}, 0, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := GroupOptions(tc.settings)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case len(opts) != tc.opts:
				t.Fatalf("%d options, want %d", len(opts), tc.opts)
			}
		})
	}
}
