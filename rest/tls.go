package rest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// TLSFiles are the PEM files of an https:// listener and of the worker's client.
type TLSFiles struct {
	Certificate, Key string
	// Truststore holds the authorities of client certificates and of other workers'
	// certificates; "" uses the system's for the latter.
	Truststore string
	// ClientAuth is none, requested or required.
	ClientAuth string
	Log        *slog.Logger
}

// ServerTLS is the TLS configuration of an https:// listener: it presents the certificate
// (read again when its files change, so a renewed certificate needs no restart) and, as
// ClientAuth says, asks for client certificates signed by the truststore.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	kp := &reloadingKeyPair{cert: f.Certificate, key: f.Key, log: f.Log}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if f.ClientAuth == "" || f.ClientAuth == "none" {
		return cfg, nil
	}
	pool, err := certPool(f.Truststore)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("listeners.https.ssl.client.authentication=%s needs listeners.https.ssl.truststore.location, the authorities that sign client certificates", f.ClientAuth)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if f.ClientAuth == "required" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS is the TLS configuration of the worker's client to other workers: it trusts the
// truststore (the system's authorities when there is none) and shows the listener's
// certificate, for workers that require client certificates.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	pool, err := certPool(f.Truststore)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if f.Certificate != "" {
		kp := &reloadingKeyPair{cert: f.Certificate, key: f.Key, log: f.Log}
		if err := kp.load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get(nil) }
	}
	return cfg, nil
}

// HTTPClient is a client for other workers over TLS that relays redirects as they are.
func HTTPClient(cfg *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func certPool(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("listeners.https.ssl.truststore.location: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("listeners.https.ssl.truststore.location: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// reloadingKeyPair is a certificate and key read again when either file changes (looked at
// at most every recheckKeyPair).
type reloadingKeyPair struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	pair    *tls.Certificate
	mods    [2]time.Time
	checked time.Time
}

const recheckKeyPair = 2 * time.Second

func (k *reloadingKeyPair) load() error {
	if k.cert == "" || k.key == "" {
		return fmt.Errorf("an https:// listener needs listeners.https.ssl.certificate.location and listeners.https.ssl.key.location")
	}
	mods, err := modTimes(k.cert, k.key)
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("https listener certificate %s and key %s: %w", k.cert, k.key, err)
	}
	k.pair, k.mods, k.checked = &pair, mods, time.Now()
	return nil
}

func (k *reloadingKeyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.checked) >= recheckKeyPair {
		k.checked = time.Now()
		if mods, err := modTimes(k.cert, k.key); err == nil && mods != k.mods {
			if err := k.load(); err != nil && k.log != nil {
				k.log.Error("reloading the https listener's certificate failed; keeping the one read before", "err", err)
			}
		}
	}
	return k.pair, nil
}

func modTimes(paths ...string) ([2]time.Time, error) {
	var out [2]time.Time
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = st.ModTime()
	}
	return out, nil
}
