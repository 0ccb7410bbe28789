package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

func TestBadRecordsGoToDeadLetterTopic(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic, dlq := sluicetest.UniqueName("raw"), sluicetest.UniqueName("dlq")
	sluicetest.Produce(t, c.Bootstrap, topic,
		&kafka.Message{Value: []byte(`{"n":1}`)},
		&kafka.Message{Key: []byte("dev-7"), Value: []byte(`not json{`)},
		&kafka.Message{Value: []byte(`{"n":2}`)},
	)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "tolerant", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "errors.tolerance": "all",
		"errors.deadletterqueue.topic.name": dlq, "errors.deadletterqueue.topic.replication.factor": "-1",
		"errors.deadletterqueue.context.headers.enable": "true", "errors.log.enable": "true"}}, nil)
	sluicetest.Eventually(t, 60*time.Second, "the good records written", func() (bool, string) {
		v := collectedValues("tolerant")
		return len(v) == 2, fmt.Sprint(v)
	})
	got := sluicetest.ConsumeAll(t, c.Bootstrap, dlq, 1, 30*time.Second)
	if len(got) != 1 || string(got[0].Value) != "not json{" || string(got[0].Key) != "dev-7" {
		t.Fatalf("dead-letter topic holds %v, want the bad record with its original key and value", got)
	}
	for k, want := range map[string]string{
		"__connect.errors.topic": topic, "__connect.errors.partition": "0", "__connect.errors.offset": "1",
		"__connect.errors.connector.name": "tolerant", "__connect.errors.task.id": "0",
		"__connect.errors.stage": "VALUE_CONVERTER",
	} {
		if v, ok := sluicetest.Header(got[0], k); !ok || v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if v, _ := sluicetest.Header(got[0], "__connect.errors.exception.message"); v == "" {
		t.Error("no exception message header")
	}
	sluicetest.WaitState(t, w.URL, "tolerant", api.StateRunning, 1)

	// Without tolerance the task fails, and its trace says where the bad record is.
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "strict", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic}}, nil)
	var st api.ConnectorStatus
	sluicetest.Eventually(t, 60*time.Second, "the strict task FAILED", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/strict/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})
	for _, want := range []string{"Tolerance exceeded", "topic " + topic, "partition 0", "offset 1"} {
		if !strings.Contains(st.Tasks[0].Trace, want) {
			t.Errorf("trace %q does not say %q", st.Tasks[0].Trace, want)
		}
	}
}

func TestRetriablePutRedeliversTheSameBatch(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("flaky")
	var msgs []*kafka.Message
	for i := 0; i < 20; i++ {
		msgs = append(msgs, &kafka.Message{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "flaky", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "mode": "flaky", "flaky.failures": "5"}}, nil)
	// While it retries the task is RUNNING (it loses nothing, it waits) and its status says why.
	status := func() api.TaskState { return taskStatus(t, w.URL, "flaky") }
	sluicetest.Eventually(t, 60*time.Second, "the status says the task is retrying", func() (bool, string) {
		ts := status()
		return ts.State == api.StateRunning && strings.Contains(ts.Trace, "retrying put: database unavailable"), fmt.Sprintf("%+v", ts)
	})
	sluicetest.Eventually(t, 60*time.Second, "all 20 records written once", func() (bool, string) {
		v := collectedValues("flaky")
		return len(v) == 20, fmt.Sprint(len(v))
	})
	sluicetest.Eventually(t, 30*time.Second, "the retry note gone from the status", func() (bool, string) {
		ts := status()
		return ts.State == api.StateRunning && ts.Trace == "", fmt.Sprintf("%+v", ts)
	})
	if want := `sluice_sink_put_retries_total{connector="flaky",task="0"} 5`; !strings.Contains(metricsText(t, w.URL), want) {
		t.Errorf("metrics lack %s", want)
	}
	seen := map[string]bool{}
	for _, v := range collectedValues("flaky") {
		k := fmt.Sprint(v)
		if seen[k] {
			t.Errorf("record %v written twice", v)
		}
		seen[k] = true
	}
}

func TestSecretsNeverLeakResolved(t *testing.T) {
	const secret = "s3cr3t-Pa55word-9137"
	t.Setenv("SLUICE_IT_SECRET", secret)
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"config.providers": "env", "config.providers.env.param.allowlist.pattern": "SLUICE_IT_.*"})
	topic := sluicetest.UniqueName("sec")
	cfg := map[string]string{"connector.class": "probe-sink", "topics": topic, "mode": "leak", "password": "${env:SLUICE_IT_SECRET}"}
	var info api.ConnectorInfo
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "leaky", "config": cfg}, &info); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var st api.ConnectorStatus
	sluicetest.Eventually(t, 60*time.Second, "the leaking task FAILED", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/leaky/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Tasks[0].Trace, "cannot log in") || strings.Contains(st.Tasks[0].Trace, secret) {
		t.Errorf("status trace must keep the message but hide the secret: %q", st.Tasks[0].Trace)
	}
	// A literal secret is hidden by the API too.
	const literal = "literal-Pa55word-4411"
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "literal", "config": map[string]string{
		"connector.class": "probe-sink", "topics": topic, "password": literal}}, nil)
	// A secret given literally is the user's choice: the connector runs with it.
	sluicetest.WaitState(t, w.URL, "literal", api.StateRunning, 1)

	var api strings.Builder
	for _, path := range []string{"/connectors/leaky", "/connectors/leaky/config", "/connectors/leaky/tasks", "/connectors/leaky/status",
		"/connectors/literal", "/connectors/literal/config", "/connectors/literal/tasks", "/connectors?expand=info&expand=status"} {
		var v any
		sluicetest.Call(t, "GET", w.URL+path, nil, &v)
		fmt.Fprintf(&api, "%s %v\n", path, v)
	}
	if strings.Contains(api.String(), secret) || strings.Contains(api.String(), literal) {
		t.Errorf("the API returned a secret:\n%s", api.String())
	}
	if !strings.Contains(api.String(), "${env:SLUICE_IT_SECRET}") {
		t.Errorf("the API should show the placeholder:\n%s", api.String())
	}
	var stored strings.Builder
	for _, m := range sluicetest.ConsumeAll(t, c.Bootstrap, c.Prefix+"-configs", 100, 5*time.Second) {
		fmt.Fprintf(&stored, "%s=%s\n", m.Key, m.Value)
	}
	if strings.Contains(stored.String(), secret) || !strings.Contains(stored.String(), "${env:SLUICE_IT_SECRET}") {
		t.Errorf("the config topic must hold the placeholder, never the resolved secret:\n%s", stored.String())
	}
	if strings.Contains(c.Logs.String(), secret) {
		t.Errorf("the logs hold the secret")
	}
	if !strings.Contains(c.Logs.String(), `msg="logging in"`) {
		t.Errorf("the connector's own log line is missing: the test did not try its logger")
	}
	if !strings.Contains(c.Logs.String(), "cannot log in") {
		t.Errorf("the logs should report the task failure")
	}
}

// A task that requests a commit gets PreCommit even before it has any record: a task may
// commit for others (the iceberg-sink's coordinator), whatever its own partitions hold.
func TestRequestedCommitReachesPreCommitWithoutRecords(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("quiet")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	name := sluicetest.UniqueName("requester")
	sluicetest.CreateConnector(t, w.URL, name, map[string]string{"connector.class": "probe-sink", "topics": topic, "mode": "request-commit"})
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	sluicetest.Eventually(t, 30*time.Second, "PreCommit called with no record read", func() (bool, string) {
		return preCommitCount(name) > 0, fmt.Sprint(preCommitCount(name), " calls; ", len(collectedValues(name)), " records")
	})
	if v := collectedValues(name); len(v) != 0 {
		t.Errorf("the quiet topic gave records: %v", v)
	}
}

// TestPlaceholdersNeverShowWhatTheyResolveTo replays an attacker's reads of the worker's files
// and environment through settings that refuse the value (tasks.max): creation and validation
// answer 400 naming the key and the placeholder, and neither they nor the logs show what the
// placeholder resolved to, in any quoting. Where the worker's allowed paths exclude the file,
// it is not even read.
func TestPlaceholdersNeverShowWhatTheyResolveTo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(file, []byte("root:x:0:0:root:/root:/bin/bash\nsecond-line-S3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_IT_LEAK", "env-Leak-Value-77")
	leaks := []string{"root:x:0", "second-line-S3cret", "env-Leak-Value-77"}
	c := newCluster(t)
	open := c.StartWorker(map[string]string{"config.providers": "env,file"}) // Kafka Connect's defaults once enabled: any file, any variable
	allowed := c.StartWorker(map[string]string{"config.providers": "env,file",
		"config.providers.file.param.allowed.paths": t.TempDir(), "config.providers.env.param.allowlist.pattern": "SLUICE_SECRET_.*"})
	for _, tt := range []struct {
		name        string
		worker      *sluicetest.Worker
		placeholder string
		want        string
	}{
		{"a whole file", open, "${file:" + file + "}", "not shown: it comes from a config provider"},
		{"a key of a file", open, "${file:" + file + ":root}", "not shown: it comes from a config provider"},
		{"a variable", open, "${env:SLUICE_IT_LEAK}", "not shown: it comes from a config provider"},
		{"a file outside allowed.paths", allowed, "${file:" + file + "}", "is not under config.providers.file.param.allowed.paths"},
		{"a variable outside the allowlist", allowed, "${env:SLUICE_IT_LEAK}", "is not allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := map[string]string{"connector.class": "probe-sink", "topics": "t", "tasks.max": tt.placeholder}
			var created, validated map[string]any
			if code := sluicetest.Call(t, "POST", tt.worker.URL+"/connectors", map[string]any{"name": "reader", "config": cfg}, &created); code != 400 {
				t.Fatalf("create: %d %v, want 400", code, created)
			}
			if code := sluicetest.Call(t, "PUT", tt.worker.URL+"/connector-plugins/probe-sink/config/validate", cfg, &validated); code != 200 {
				t.Fatalf("validate: %d %v", code, validated)
			}
			answers := fmt.Sprintf("%v\n%v", created, validated)
			for _, leak := range leaks {
				if strings.Contains(answers, leak) || strings.Contains(c.Logs.String(), leak) {
					t.Fatalf("%q leaked:\n%s", leak, answers)
				}
			}
			if !strings.Contains(answers, tt.want) || !strings.Contains(fmt.Sprint(created), tt.placeholder) {
				t.Errorf("answers must name the placeholder and say %q:\n%s", tt.want, answers)
			}
		})
	}
}

// TestClientOverridesFollowThePolicy creates connectors with client overrides on workers with
// each connector.client.config.override.policy, the default first: a refused override is a
// 400 naming the key, and an allowed one creates the connector.
func TestClientOverridesFollowThePolicy(t *testing.T) {
	for _, tt := range []struct {
		policy  string // "" for the default
		key     string
		refused bool
	}{
		{"", "producer.override.bootstrap.servers", true},
		{"", "producer.override.linger.ms", true},
		{"Principal", "producer.override.bootstrap.servers", true},
		{"Principal", "producer.override.sasl.username", false},
		{"All", "producer.override.bootstrap.servers", false},
		{"All", "producer.override.plugin.library.paths", true},
	} {
		t.Run(tt.policy+" "+tt.key, func(t *testing.T) {
			settings := map[string]string{}
			if tt.policy != "" {
				settings["connector.client.config.override.policy"] = tt.policy
			}
			w := newCluster(t).StartWorker(settings)
			name := sluicetest.UniqueName("overrides")
			cfg := map[string]string{"connector.class": "probe-sink", "topics": "t", tt.key: "x"}
			var out map[string]any
			code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": cfg}, &out)
			if tt.refused {
				if msg := fmt.Sprint(out["message"]); code != 400 || !strings.Contains(msg, tt.key+": ") || !strings.Contains(msg, "override.policy") {
					t.Fatalf("answered %d %v, want 400 naming %s and the policy", code, out, tt.key)
				}
				return
			}
			if code != 201 {
				t.Fatalf("answered %d %v, want 201", code, out)
			}
		})
	}
}

// TestStoredSecretsDoNotFollowANewEndpoint changes where a connector connects without sending
// its stored password again, with PATCH and with a PUT of the redaction marker (what a tool
// that reads, edits and writes back a config sends): both are refused, naming the settings;
// sending the password again, or changing anything else, is taken.
func TestStoredSecretsDoNotFollowANewEndpoint(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	const password = "stored-Pa55word-5120"
	name := sluicetest.UniqueName("endpoint")
	cfg := map[string]string{"connector.class": "probe-sink", "topics": "t", "server": "db.internal:5432", "password": password}
	sluicetest.CreateConnector(t, w.URL, name, cfg)
	base := w.URL + "/connectors/" + name + "/config"
	for _, tt := range []struct {
		name   string
		method string
		body   map[string]any
		want   int
	}{
		{"PATCH the server alone", "PATCH", map[string]any{"server": "attacker.example:5432"}, 400},
		{"PUT the server with the marker", "PUT", map[string]any{"connector.class": "probe-sink", "topics": "t", "server": "attacker.example:5432", "password": "[hidden]"}, 400},
		{"PATCH something else", "PATCH", map[string]any{"mode": "ok"}, 200},
		{"PUT something else with the marker", "PUT", map[string]any{"connector.class": "probe-sink", "topics": "t", "server": "db.internal:5432", "password": "[hidden]", "mode": "ok"}, 200},
		{"PATCH the server with the password", "PATCH", map[string]any{"server": "db2.internal:5432", "password": "new-Pa55word-77"}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out map[string]any
			code := sluicetest.Call(t, tt.method, base, tt.body, &out)
			if code != tt.want {
				t.Fatalf("answered %d %v, want %d", code, out, tt.want)
			}
			if code == 400 && (!strings.Contains(fmt.Sprint(out["message"]), "server changes, and the stored password") || strings.Contains(fmt.Sprint(out), password)) {
				t.Errorf("message %v must name the settings, and never the password", out["message"])
			}
		})
	}
	var stored map[string]string
	sluicetest.Call(t, "GET", base, nil, &stored)
	if stored["server"] != "db2.internal:5432" {
		t.Errorf("config after the updates: %v", stored)
	}
}

// TestConnectorFilesStayUnderTheAllowedPaths creates file and file-source connectors that
// name files inside and outside the worker's connector.file.allowed.paths (through "..", a
// symbolic link, a relative path), and on a worker that allows none (the default).
func TestConnectorFilesStayUnderTheAllowedPaths(t *testing.T) {
	allowed, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	w := c.StartWorker(map[string]string{"connector.file.allowed.paths": allowed})
	none := newCluster(t).StartWorker(map[string]string{"connector.file.allowed.paths": ""})
	for _, tt := range []struct {
		name   string
		worker *sluicetest.Worker
		class  string
		file   string
		want   string // "" for 201
	}{
		{"a file under the allowed path", w, "file", filepath.Join(allowed, "out-{task}.jsonl"), ""},
		{"read /etc/passwd", w, "file-source", "/etc/passwd", "is not under the worker's connector.file.allowed.paths"},
		{"write through ..", w, "file", allowed + "/../" + filepath.Base(outside) + "/x", "is not under"},
		{"read through a symbolic link", w, "file-source", filepath.Join(allowed, "link", "secret"), "is not under"},
		{"a relative path", w, "file", "out.jsonl", "is not an absolute path"},
		{"a worker that allows no files", none, "file", filepath.Join(allowed, "out.jsonl"), "lets connectors use no files"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := map[string]string{"connector.class": tt.class, "file": tt.file, "topics": "t", "kafka.topic": "t"}
			var out map[string]any
			code := sluicetest.Call(t, "POST", tt.worker.URL+"/connectors", map[string]any{"name": sluicetest.UniqueName("files"), "config": cfg}, &out)
			if tt.want == "" {
				if code != 201 {
					t.Fatalf("answered %d %v, want 201", code, out)
				}
				return
			}
			if msg := fmt.Sprint(out["message"]); code != 400 || !strings.Contains(msg, "file: ") || !strings.Contains(msg, tt.want) {
				t.Fatalf("answered %d %v, want 400 saying %q", code, out, tt.want)
			}
		})
	}
}

// TestSessionKeyRotatesAndTaskConfigsStillReachTheLeader runs two workers with a session key
// that lives 1.5 s: the leader writes new keys, and a connector on the follower whose tasks
// change after several rotations still gets its task configurations to the leader, signed
// with the current key.
func TestSessionKeyRotatesAndTaskConfigsStillReachTheLeader(t *testing.T) {
	c := newCluster(t)
	settings := map[string]string{"inter.worker.key.ttl.ms": "1500"}
	ws := []*sluicetest.Worker{c.StartWorker(settings), c.StartWorker(settings)}
	var names []string
	cfg := func(tasks string) map[string]string {
		return map[string]string{"connector.class": "datagen", "kafka.topic": c.Prefix + "-data", "rate": "1", "tasks.max": tasks,
			"topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1"}
	}
	for i := range 4 {
		n := fmt.Sprintf("%s-gen-%d", c.Prefix, i)
		names = append(names, n)
		sluicetest.CreateConnector(t, ws[0].URL, n, cfg("1"))
	}
	for _, n := range names {
		sluicetest.WaitState(t, ws[0].URL, n, api.StateRunning, 1)
	}
	keys := func() int {
		n := 0
		for _, m := range sluicetest.ConsumeAll(t, c.Bootstrap, c.Prefix+"-configs", 1000, 3*time.Second) {
			if string(m.Key) == "session-key" {
				n++
			}
		}
		return n
	}
	sluicetest.Eventually(t, 30*time.Second, "three session keys written", func() (bool, string) {
		n := keys()
		return n >= 3, fmt.Sprint(n, " keys")
	})
	// Two tasks each now: the workers running the connectors hand the new task configs to
	// the leader, signed with whatever key is current.
	for _, n := range names {
		if code := sluicetest.Call(t, "PUT", ws[1].URL+"/connectors/"+n+"/config", cfg("2"), nil); code != 200 {
			t.Fatalf("update %s: %d", n, code)
		}
	}
	for _, n := range names {
		sluicetest.WaitState(t, ws[0].URL, n, api.StateRunning, 2)
	}
	if strings.Contains(c.Logs.String(), "invalid signature") {
		t.Errorf("a worker's own task configurations were refused:\n%s", c.Logs.String())
	}
}
