package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// testCA signs certificates for the TLS tests.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for cn (valid for 127.0.0.1, for servers and clients) and its key
// under dir, and returns their paths and the certificate's serial.
func (ca *testCA) issue(dir, cn string, serial int64) (certFile, keyFile string) {
	t := ca.t
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// client is an HTTPS client that trusts the CA and shows the certificate of cn, if any.
func (ca *testCA) client(certFile, keyFile string) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	cfg := &tls.Config{RootCAs: pool}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			ca.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// TestHTTPSListenersWithClientCertificates runs three workers on https:// listeners that require
// client certificates: a client without one cannot connect, a reader's certificate may only
// read, an admin's writes through the follower reach the leader over TLS, connectors on the
// follower get their signed task configurations, and a renewed certificate is served without
// a restart.
func TestHTTPSListenersWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	trust := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(trust, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	c := sluicetest.NewCluster(t)
	admin := ca.client(ca.issue(dir, "ops", 10))
	viewer := ca.client(ca.issue(dir, "viewer", 11))
	var ws []*sluicetest.Process
	for i := range 3 {
		wdir := filepath.Join(dir, fmt.Sprint("w", i))
		if err := os.Mkdir(wdir, 0o700); err != nil {
			t.Fatal(err)
		}
		cert, key := ca.issue(wdir, "worker", int64(100+i))
		listener := fmt.Sprintf("https://127.0.0.1:%d", sluicetest.FreePort(t))
		settings := c.Settings(listener, map[string]string{
			"listeners.https.ssl.certificate.location": cert, "listeners.https.ssl.key.location": key,
			"listeners.https.ssl.truststore.location": trust, "listeners.https.ssl.client.authentication": "required",
			"rest.auth.admin.users": "ops,worker", "rest.auth.read.users": "viewer"})
		var args []string
		for k, v := range settings {
			args = append(args, "--set", k+"="+v)
		}
		p := sluicetest.LaunchProcess(t, listener, append([]string{"worker"}, args...)...)
		sluicetest.Eventually(t, 90*time.Second, p.URL+" healthy over TLS", func() (bool, string) {
			resp, err := admin.Get(p.URL + "/health")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
		ws = append(ws, p)
	}

	if _, err := ca.client("", "").Get(ws[0].URL + "/connectors"); err == nil {
		t.Error("a client without a certificate connected")
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(ws[0].URL + "/"); err == nil {
		resp.Body.Close()
		t.Error("a client that does not trust the CA connected")
	}
	post := func(cl *http.Client, base, name string) int {
		body, _ := json.Marshal(map[string]any{"name": name, "config": map[string]string{"connector.class": "datagen",
			"kafka.topic": c.Prefix + "-data", "rate": "1", "tasks.max": "1",
			"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}})
		resp, err := cl.Post(base+"/connectors", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(viewer, ws[1].URL, c.Prefix+"-by-viewer"); code != http.StatusForbidden {
		t.Errorf("a reader's certificate created a connector: %d", code)
	}
	var names []string
	for i := range 6 {
		n := fmt.Sprintf("%s-gen-%d", c.Prefix, i)
		names = append(names, n)
		if code := post(admin, ws[i%3].URL, n); code != http.StatusCreated {
			t.Fatalf("admin create through %s: %d", ws[i%3].URL, code)
		}
	}
	runningOnAFollower(t, viewer, []string{ws[0].URL, ws[1].URL, ws[2].URL}, names)

	// Renew worker 0's certificate in place: new connections get the new one.
	ca.issue(filepath.Join(dir, "w0"), "worker", 999)
	sluicetest.Eventually(t, 30*time.Second, "the renewed certificate served", func() (bool, string) {
		resp, err := admin.Get(ws[0].URL + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		serial := resp.TLS.PeerCertificates[0].SerialNumber
		return serial.Int64() == 999, "serial " + serial.String()
	})
}

// TestRESTLatencyWithTLSAndAuth measures what TLS and authentication add to a REST request:
// p50 and p99 of GET /connectors?expand=status on one worker process each, plain HTTP, HTTP
// with Basic authentication, HTTP with a bearer token, and HTTPS with Basic authentication,
// over kept-alive connections (BENCH lines; nothing asserted). SLUICE_BENCH=1 (make bench).
func TestRESTLatencyWithTLSAndAuth(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("REST latency measurement skipped: set SLUICE_BENCH=1 (make bench) to run it")
	}
	dir := t.TempDir()
	ca := newTestCA(t)
	cert, key := ca.issue(dir, "worker", 2)
	hash, _ := bcrypt.GenerateFromPassword([]byte("bench-Pa55"), bcrypt.DefaultCost)
	users := filepath.Join(dir, "users")
	tokens := filepath.Join(dir, "tokens")
	sum := sha256.Sum256([]byte("bench-token"))
	if os.WriteFile(users, []byte("ops:"+string(hash)+"\n"), 0o600) != nil ||
		os.WriteFile(tokens, []byte("ops:sha256:"+hex.EncodeToString(sum[:])+"\n"), 0o600) != nil {
		t.Fatal("writing the credentials")
	}
	authSettings := map[string]string{"rest.auth.users.file": users, "rest.auth.tokens.file": tokens}
	tlsSettings := map[string]string{"rest.auth.users.file": users, "listeners.https.ssl.certificate.location": cert, "listeners.https.ssl.key.location": key}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	modes := []struct {
		name     string
		scheme   string
		settings map[string]string
		header   string
	}{
		{"http", "http", nil, ""},
		{"http+basic", "http", authSettings, "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:bench-Pa55"))},
		{"http+token", "http", authSettings, "Bearer bench-token"},
		{"https+basic", "https", tlsSettings, "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:bench-Pa55"))},
	}
	const warmup, n = 200, 3000
	var plainP99 time.Duration
	for _, m := range modes {
		c := sluicetest.NewCluster(t)
		listener := fmt.Sprintf("%s://127.0.0.1:%d", m.scheme, sluicetest.FreePort(t))
		settings := c.Settings(listener, m.settings)
		var args []string
		for k, v := range settings {
			args = append(args, "--set", k+"="+v)
		}
		p := sluicetest.LaunchProcess(t, listener, append([]string{"worker"}, args...)...)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1}}
		do := func(method, path string, body []byte) (int, error) {
			req, _ := http.NewRequest(method, p.URL+path, bytes.NewReader(body))
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if m.header != "" {
				req.Header.Set("Authorization", m.header)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		sluicetest.Eventually(t, 90*time.Second, m.name+" worker healthy", func() (bool, string) {
			code, err := do("GET", "/health", nil)
			return code == 200, fmt.Sprint(code, err)
		})
		body, _ := json.Marshal(map[string]any{"name": "gen", "config": map[string]string{"connector.class": "datagen", "kafka.topic": c.Prefix + "-data",
			"rate": "1", "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}})
		if code, err := do("POST", "/connectors", body); code != 201 {
			t.Fatalf("%s: create: %d %v", m.name, code, err)
		}
		lat := make([]time.Duration, 0, n)
		for i := range warmup + n {
			start := time.Now()
			if code, err := do("GET", "/connectors?expand=status", nil); code != 200 {
				t.Fatalf("%s: %d %v", m.name, code, err)
			}
			if i >= warmup {
				lat = append(lat, time.Since(start))
			}
		}
		slices.Sort(lat)
		p50, p99 := lat[n/2], lat[n*99/100]
		if m.name == "http" {
			plainP99 = p99
		}
		fmt.Printf("BENCH rest-latency mode=%s requests=%d p50_us=%d p99_us=%d p99_vs_http=%.2f\n",
			m.name, n, p50.Microseconds(), p99.Microseconds(), float64(p99)/float64(plainP99))
	}
}
