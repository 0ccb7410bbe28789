package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// GroupOptions translates the worker's shared Kafka client security settings (the
// librdkafka names the data clients use) into options for the franz-go client that runs the
// worker group membership, so both reach the same brokers the same way.
func GroupOptions(common map[string]string) ([]kgo.Opt, error) {
	protocol := strings.ToUpper(common["security.protocol"])
	var opts []kgo.Opt
	switch protocol {
	case "", "PLAINTEXT":
	case "SSL", "SASL_SSL", "SASL_PLAINTEXT":
	default:
		return nil, fmt.Errorf("security.protocol %q is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", common["security.protocol"])
	}
	if protocol == "SSL" || protocol == "SASL_SSL" {
		tc, err := tlsConfig(common)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if strings.HasPrefix(protocol, "SASL_") {
		m, err := saslMechanism(common)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func tlsConfig(common map[string]string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := common["ssl.ca.location"]; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ssl.ca.location %q: %w", ca, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ssl.ca.location %q holds no PEM certificate", ca)
		}
	}
	cert, key := common["ssl.certificate.location"], common["ssl.key.location"]
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("ssl.certificate.location and ssl.key.location go together; only one is set")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("ssl.certificate.location %q with ssl.key.location %q: %w", cert, key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func saslMechanism(common map[string]string) (sasl.Mechanism, error) {
	mech := common["sasl.mechanisms"]
	if mech == "" {
		mech = common["sasl.mechanism"]
	}
	user, pass := common["sasl.username"], common["sasl.password"]
	switch strings.ToUpper(mech) {
	case "", "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("sasl.mechanisms %q: the worker group client supports PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512", mech)
}
