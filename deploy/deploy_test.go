// Package deploy holds the files of the docker compose stack; its test checks that the stack
// refers only to files that exist and that every connector definition validates against its
// plugin, as the stack's one-shot would submit it.
package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/connect/connecttest"
	_ "github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/simulate"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/rest"
	"github.com/sluicehq/sluice/rest/auth"
	"github.com/sluicehq/sluice/worker"
	"github.com/sluicehq/sluice/worker/api"
)

// compose is the part of docker-compose.yml this test reads.
type compose struct {
	Worker struct {
		Environment map[string]string `yaml:"environment"`
	} `yaml:"x-sluice-worker"`
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Volumes     []string          `yaml:"volumes"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

// readCompose reads docker-compose.yml.
func readCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// stackProviders are the config provider settings of the stack's workers (their
// SLUICE_WORKER_CONFIG_PROVIDERS* variables), so the test worker resolves what theirs would.
func stackProviders(t *testing.T) map[string]string {
	var environ []string
	for k, v := range readCompose(t).Worker.Environment {
		if strings.HasPrefix(k, "SLUICE_WORKER_CONFIG_PROVIDERS") {
			environ = append(environ, k+"="+v)
		}
	}
	settings, err := worker.LoadWorkerSettings("", environ, nil)
	if err != nil || settings["config.providers"] == "" {
		t.Fatalf("the stack's workers enable no config provider (%v): its connectors' placeholders would not resolve", err)
	}
	return settings
}

func TestComposeRefersOnlyToFilesThatExist(t *testing.T) {
	c := readCompose(t)
	if len(c.Services) < 10 {
		t.Fatalf("docker-compose.yml has %d services; the stack needs its brokers, stores, workers and monitoring", len(c.Services))
	}
	for name, s := range c.Services {
		if s.Build != nil {
			if _, err := os.Stat("../Dockerfile"); err != nil {
				t.Errorf("service %s builds the image, but there is no Dockerfile: %v", name, err)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, src)
			}
		}
	}
	for _, f := range []string{"grafana/dashboards/sluice.json", "grafana/provisioning/dashboards/dashboards.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if strings.HasSuffix(f, ".json") {
			err = json.Unmarshal(b, &v)
		} else {
			err = yaml.Unmarshal(b, &v)
		}
		if err != nil {
			t.Errorf("%s does not parse: %v", f, err)
		}
	}
}

// stackAddresses maps the compose stack's service addresses to the test services'.
func stackAddresses(_ *testing.T) map[string]string {
	out := map[string]string{}
	if v := os.Getenv("SLUICE_TEST_MQTT"); v != "" {
		out["tcp://mosquitto:1883"] = v
	}
	if v := os.Getenv("SLUICE_TEST_KAFKA"); v != "" {
		out["kafka:9092"] = v
	}
	if v := os.Getenv("SLUICE_TEST_INFLUXDB"); v != "" {
		out["http://influxdb:8086"] = v
	}
	return out
}

// stackSecrets sets the secrets the stack's workers hold in their environment (docker-compose.yml
// x-sluice-worker) to the test services', so the definitions' ${env:...} placeholders resolve.
func stackSecrets(t *testing.T) {
	for name, test := range map[string]string{"MONGODB_URI": "SLUICE_TEST_MONGODB", "TIMESCALE_URL": "SLUICE_TEST_POSTGRES"} {
		t.Setenv(name, os.Getenv(test))
	}
	t.Setenv("ICEBERG_S3_ACCESS_KEY", "sluice")
	t.Setenv("ICEBERG_S3_SECRET_KEY", "sluice-secret")
	t.Setenv("INFLUXDB_TOKEN", "sluice-influxdb-token") // the test's InfluxDB 1.8 takes any
}

// TestConnectorDefinitionsValidate sends every deploy/connectors/*.json to a worker's
// PUT /connector-plugins/{class}/config/validate, as a Kafka Connect tool would, and expects
// no errors.
func TestConnectorDefinitionsValidate(t *testing.T) {
	files, err := filepath.Glob("connectors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no connector definitions: %v", err)
	}
	c := sluicetest.NewCluster(t)
	stackSecrets(t)
	w := c.StartWorker(stackProviders(t))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]string
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Errorf("%s: not a JSON object of strings: %v", f, err)
			continue
		}
		cfg["name"] = strings.TrimSuffix(filepath.Base(f), ".json")
		// Validation tests connections: point the stack's addresses at the test services.
		for k, v := range cfg {
			for stack, test := range stackAddresses(t) {
				v = strings.ReplaceAll(v, stack, test)
			}
			cfg[k] = v
		}
		// Other packages' tests stop and start the shared servers (a 30 s database outage, a
		// broker restart): a connection refused then is theirs, so a definition is given two
		// minutes to validate cleanly; a setting that is wrong stays wrong and fails.
		var problems []string
		deadline := time.Now().Add(2 * time.Minute)
		for {
			problems = problems[:0]
			var infos api.ConfigInfos
			if code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/"+cfg["connector.class"]+"/config/validate", cfg, &infos); code != 200 {
				problems = append(problems, fmt.Sprintf("validate answered %d", code))
			}
			for _, ci := range infos.Configs {
				if len(ci.Value.Errors) > 0 {
					problems = append(problems, fmt.Sprintf("%s: %v", ci.Value.Name, ci.Value.Errors))
				}
			}
			if len(problems) == 0 || time.Now().After(deadline) || !connectionTrouble(problems) {
				break
			}
			time.Sleep(2 * time.Second)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", f, p)
		}
	}
}

// connectionTrouble tells whether every problem is a server that could not be reached.
func connectionTrouble(problems []string) bool {
	for _, p := range problems {
		if !strings.Contains(p, "onnect") {
			return false
		}
	}
	return true
}

// TestImageRunsAsAnOrdinaryUser checks the Dockerfile's final stage names a USER that is not
// root, so a worker (and whoever may create a connector on it) has no root rights in its
// container.
func TestImageRunsAsAnOrdinaryUser(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 2 && strings.EqualFold(fields[0], "FROM"):
			user = "" // a new stage starts as root
		case len(fields) >= 2 && strings.EqualFold(fields[0], "USER"):
			user, _, _ = strings.Cut(fields[1], ":")
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Fatalf("the image's final stage runs as %q; give it a USER that is not root", user)
	}
}

// TestStackAPIAsksForCredentials checks the stack's workers turn authentication on (their API
// listens on every interface), and that the credentials Prometheus and the connector script
// use are in the users file with the roles they need.
func TestStackAPIAsksForCredentials(t *testing.T) {
	env := readCompose(t).Worker.Environment
	file := env["SLUICE_WORKER_REST_AUTH_USERS_FILE"]
	if file != "/etc/sluice/auth/users" {
		t.Fatalf("the stack's workers read users from %q, not the mounted deploy/auth/users", file)
	}
	creds := &auth.Credentials{UsersFile: "auth/users"}
	if err := creds.Load(); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("create-connectors.sh")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user, password, role, usedIn string
		roles                        string
	}{
		{"admin", "sluice-admin", "admin", string(script), env["SLUICE_WORKER_REST_AUTH_ADMIN_USERS"]},
		{"prometheus", "sluice-prometheus", "read", string(prom), env["SLUICE_WORKER_REST_AUTH_READ_USERS"]},
	} {
		if !strings.Contains(tt.usedIn, tt.password) {
			t.Errorf("%s's password is not the one its client uses", tt.user)
		}
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(tt.user, tt.password)
		if name, ok := creds.Authenticate(r); !ok || name != tt.user {
			t.Errorf("%s with %s: not accepted by deploy/auth/users", tt.user, tt.password)
		}
		if !slices.Contains(strings.Split(tt.roles, ","), tt.user) {
			t.Errorf("%s does not have the %s role (%q)", tt.user, tt.role, tt.roles)
		}
	}
}

// TestStackTLSFilesServeEachWorker runs the stack's certificate script (deploy/tls/make-certs.sh)
// into a temporary directory and checks each worker's listener settings: the files it names
// exist, make a TLS listener, and carry a certificate the stack's CA signs for the worker's
// advertised host name, good for serving and, as workers call each other, as a client.
func TestStackTLSFilesServeEachWorker(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed: the certificate script cannot run here")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "tls/make-certs.sh")
	cmd.Env = append(os.Environ(), "DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	c := readCompose(t)
	local := func(p string) string { return filepath.Join(dir, strings.TrimPrefix(p, "/etc/sluice/tls/")) }
	if !strings.HasPrefix(c.Worker.Environment["SLUICE_WORKER_LISTENERS"], "https://") {
		t.Fatalf("the stack's workers listen on %q, not https", c.Worker.Environment["SLUICE_WORKER_LISTENERS"])
	}
	caPEM, err := os.ReadFile(local(c.Worker.Environment["SLUICE_WORKER_LISTENERS_HTTPS_SSL_TRUSTSTORE_LOCATION"]))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	workers := 0
	for name, svc := range c.Services {
		certPath := svc.Environment["SLUICE_WORKER_LISTENERS_HTTPS_SSL_CERTIFICATE_LOCATION"]
		if certPath == "" {
			continue
		}
		workers++
		files := rest.TLSFiles{Certificate: local(certPath), Key: local(svc.Environment["SLUICE_WORKER_LISTENERS_HTTPS_SSL_KEY_LOCATION"]),
			Truststore: local(c.Worker.Environment["SLUICE_WORKER_LISTENERS_HTTPS_SSL_TRUSTSTORE_LOCATION"]),
			ClientAuth: c.Worker.Environment["SLUICE_WORKER_LISTENERS_HTTPS_SSL_CLIENT_AUTHENTICATION"]}
		if _, err := rest.ServerTLS(files); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		pair, err := tls.LoadX509KeyPair(files.Certificate, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		host := svc.Environment["SLUICE_WORKER_REST_ADVERTISED_HOST_NAME"]
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: the certificate does not serve %s for %v: %v", name, host, usage, err)
			}
		}
	}
	if workers != 3 {
		t.Errorf("%d workers with TLS files, want the stack's 3", workers)
	}
}

// TestStackTimescaleDefinitionsWriteHypertables runs the stack's two timescale-sink
// definitions as they are (only their topics and tables renamed, to the test's own) against
// the test database, which has the timescaledb extension as the stack's TimescaleDB image
// does: the rows arrive and TimescaleDB holds them in hypertables shaped as the definitions
// say.
func TestStackTimescaleDefinitionsWriteHypertables(t *testing.T) {
	db, schema := sluicetest.PostgresSchema(t, connecttest.Env(t, connecttest.EnvPostgres), "stack")
	c := sluicetest.NewCluster(t)
	stackSecrets(t)
	w := c.StartWorker(stackProviders(t))
	start := time.Now().UTC().Truncate(time.Minute)
	for _, tc := range []struct {
		file       string
		value      func(i int) any
		dimensions string // as timescaledb_information.dimensions reports them
		segmentBy  string
	}{{
		file: "sensors-timescale.json",
		value: func(i int) any {
			return simulate.Frame{FrameID: fmt.Sprint("f-", i), DeviceID: fmt.Sprint("d-", i%4), PlaceID: "p-1",
				Time: start.Add(time.Duration(i) * time.Second), Temperature: 20 + float64(i)/10, Battery: 90}
		},
		dimensions: "time 1 day",
		segmentBy:  "device_id",
	}, {
		file: "sensors-timescale-aggregates.json",
		value: func(i int) any {
			return map[string]any{"place_id": fmt.Sprint("p-", i%4), "window_start": start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
				"window_end": start.Add(time.Duration(i+1) * time.Minute).Format(time.RFC3339), "count": i + 1, "temperature_avg": 21.5}
		},
		dimensions: "time 7 days",
		segmentBy:  "-",
	}} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("connectors", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]string
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			topic, table := sluicetest.UniqueName("stack"), schema+"."+cfg["table"]
			cfg["topics"], cfg["table"] = topic, table
			cfg["errors.deadletterqueue.topic.name"] = topic + "-dlq"
			sluicetest.CreateTopic(t, c.Bootstrap, topic, 3)
			const n = 40
			msgs := make([]*kafka.Message, n)
			for i := range msgs {
				v, _ := json.Marshal(tc.value(i))
				msgs[i] = &kafka.Message{Key: []byte(fmt.Sprint(i % 4)), Value: v}
			}
			sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
			name := sluicetest.UniqueName(strings.TrimSuffix(tc.file, ".json"))
			// The definition's ${env:TIMESCALE_URL} resolves from this process's environment
			// (stackSecrets); say which side failed if the worker refuses it.
			if u := os.Getenv("TIMESCALE_URL"); u == "" || u != os.Getenv(connecttest.EnvPostgres) {
				t.Fatalf("TIMESCALE_URL is %q in the test's environment, want the test database's URL", u)
			}
			sluicetest.CreateConnector(t, w.URL, name, cfg)
			sluicetest.Eventually(t, time.Minute, "every record in the table", func() (bool, string) {
				var rows int
				err := db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&rows)
				return err == nil && rows == n, fmt.Sprintf("%d rows (%v)", rows, err)
			})
			var dims, segmentBy string
			if err := db.QueryRow(context.Background(), `SELECT string_agg(column_name || ' ' || time_interval, ', ' ORDER BY dimension_number)
				FROM timescaledb_information.dimensions WHERE format('%I.%I', hypertable_schema, hypertable_name)::regclass = $1::regclass`, table).Scan(&dims); err != nil {
				t.Fatalf("%s is not a hypertable: %v", table, err)
			}
			if err := db.QueryRow(context.Background(), `SELECT coalesce(segmentby, '-') FROM timescaledb_information.hypertable_compression_settings
				WHERE hypertable = $1::regclass`, table).Scan(&segmentBy); err != nil {
				t.Fatal(err)
			}
			if dims != tc.dimensions || segmentBy != tc.segmentBy {
				t.Errorf("hypertable %s: dimensions %q, segment by %q; want %q and %q", table, dims, segmentBy, tc.dimensions, tc.segmentBy)
			}
			tasks, _ := strconv.Atoi(cfg["tasks.max"])
			sluicetest.WaitState(t, w.URL, name, api.StateRunning, tasks)
		})
	}
}
