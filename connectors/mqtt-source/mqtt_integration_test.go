package mqttsource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// The tests below run the connector in workers (in-process, or processes a test can kill)
// against the test Mosquitto and Kafka, and check what reaches Kafka.

// pub is a plain MQTT v5 publisher on the test broker's plain listener.
type pub struct {
	t testing.TB
	c *paho.Client
}

func newPub(t testing.TB) *pub {
	t.Helper()
	return pubOn(t, connecttest.Env(t, connecttest.EnvMQTT))
}

func (p *pub) close() { _ = p.c.Disconnect(&paho.Disconnect{}) }

func (p *pub) publish(topic string, qos byte, payload string, props *paho.PublishProperties) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload), Properties: props}); err != nil {
		p.t.Fatalf("publish to %s: %v", topic, err)
	}
}

// publishRange publishes the numbers from..to-1 as payloads, QoS 1.
func (p *pub) publishRange(topic string, from, to int) {
	p.t.Helper()
	for i := from; i < to; i++ {
		p.publish(topic, 1, fmt.Sprint(i), nil)
	}
}

// mqttConfig is a connector configuration for the test broker writing payloads unchanged.
func mqttConfig(filter, topic string, extra map[string]string) map[string]string {
	cfg := map[string]string{
		"connector.class": "mqtt-source", "mqtt.server.uris": "", "mqtt.topics": filter, "kafka.topic": topic,
		"mqtt.qos": "1", "mqtt.session.expiry": "10m", "value.converter": "bytearray",
		"topic.creation.default.partitions": "3", "topic.creation.default.replication.factor": "-1",
		// A client id of its own per test run, so no session of an earlier run is resumed.
		"mqtt.client.id.prefix": strings.SplitN(filter, "/", 2)[0] + "-",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// waitSubscribed waits until a worker's log says the task with this client id subscribed:
// the runtime reports a task RUNNING before its Start returns, and MQTT drops messages
// published before the first subscription of a new session.
func waitSubscribed(t *testing.T, logs fmt.Stringer, clientID string) {
	t.Helper()
	sluicetest.Eventually(t, time.Minute, clientID+" subscribed", func() (bool, string) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "msg=subscribed") && strings.Contains(line, "client="+clientID+" ") {
				return true, ""
			}
		}
		return false, "not in the log yet"
	})
}

// clientID is the MQTT client id of a task of a connector made by mqttConfig.
func clientID(filter, connector string, task int) string {
	return fmt.Sprintf("%s-%s-%d", strings.SplitN(filter, "/", 2)[0], connector, task)
}

// distinct reads a topic from the start until it has seen want distinct values or the timeout
// passes; it returns how often each value was seen.
func distinct(t *testing.T, bootstrap, topic string, want int, timeout time.Duration) map[string]int {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": sluicetest.UniqueName("reader"),
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	deadline := time.Now().Add(timeout)
	for len(seen) < want && time.Now().Before(deadline) {
		if m, err := c.ReadMessage(200 * time.Millisecond); err == nil {
			seen[string(m.Value)]++
		}
	}
	return seen
}

// missing lists the numbers below n not seen.
func missing(seen map[string]int, n int) []int {
	var out []int
	for i := range n {
		if seen[fmt.Sprint(i)] == 0 {
			out = append(out, i)
		}
	}
	return out
}

func duplicates(seen map[string]int) int {
	d := 0
	for _, n := range seen {
		d += n - 1
	}
	return d
}

// TestRecordsCarryMappingKeyEventTimeAndHeaders checks on the Kafka records: topic mapping with
// a wildcard segment, the key from a payload field, the event time from the payload, the
// parsed JSON value, and the MQTT metadata headers.
func TestRecordsCarryMappingKeyEventTimeAndHeaders(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	p := newPub(t)
	base := sluicetest.UniqueName("map")
	cfg := mqttConfig(base+"/+/reading", "", map[string]string{
		"mqtt.server.uris": server, "kafka.topic.mappings": base + "/+/reading=" + base + ".{1}",
		"key.source": "field", "key.field": "device.id", "timestamp.source": "field", "timestamp.field": "ts",
		"payload.format": "json", "value.converter": "json", "value.converter.schemas.enable": "false"})
	delete(cfg, "kafka.topic")
	sluicetest.CreateConnector(t, w.URL, "map", cfg)
	sluicetest.WaitState(t, w.URL, "map", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/+/reading", "map", 0))

	eventTime := time.Date(2024, 5, 1, 12, 0, 0, 250_000_000, time.UTC)
	expiry := uint32(600)
	p.publish(base+"/place-7/reading", 1, fmt.Sprintf(`{"device":{"id":"dev-42"},"ts":%d,"temperature":21.5}`, eventTime.UnixMilli()),
		&paho.PublishProperties{ContentType: "application/json", MessageExpiry: &expiry, User: paho.UserProperties{{Key: "fw", Value: "1.2"}}})
	p.publish(base+"/place-8/reading", 1, `{"device":{"id":"dev-43"},"ts":"2024-05-01T12:00:01Z","temperature":19}`, nil)

	recs := sluicetest.ConsumeAll(t, c.Bootstrap, base+".place-7", 1, 60*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d records on %s.place-7, want 1", len(recs), base)
	}
	m := recs[0]
	if string(m.Key) != "dev-42" || !m.Timestamp.Equal(eventTime) || m.TimestampType != kafka.TimestampCreateTime {
		t.Errorf("key %q timestamp %v (%v), want dev-42 at %v", m.Key, m.Timestamp, m.TimestampType, eventTime)
	}
	var v map[string]any
	if err := json.Unmarshal(m.Value, &v); err != nil || v["temperature"] != 21.5 {
		t.Errorf("value %s: %v", m.Value, err)
	}
	for k, want := range map[string]string{"mqtt.topic": base + "/place-7/reading", "mqtt.qos": "1", "mqtt.retain": "false",
		"mqtt.content.type": "application/json", "fw": "1.2"} {
		if got, _ := sluicetest.Header(m, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got, _ := sluicetest.Header(m, "mqtt.message.expiry"); got == "" {
		t.Error("no mqtt.message.expiry header")
	}
	other := sluicetest.ConsumeAll(t, c.Bootstrap, base+".place-8", 1, 60*time.Second)
	if len(other) != 1 || string(other[0].Key) != "dev-43" || !other[0].Timestamp.Equal(time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC)) {
		t.Errorf("place-8 records %v", other)
	}
}

// TestMalformedPayloadsReachTheDeadLetterTopic: payloads without the key field, or not JSON,
// land on the dead-letter topic with the MQTT topic and the reason; good ones keep flowing.
func TestMalformedPayloadsReachTheDeadLetterTopic(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	p := newPub(t)
	base := sluicetest.UniqueName("dlq")
	sluicetest.CreateConnector(t, w.URL, "dlq", mqttConfig(base+"/#", base, map[string]string{
		"mqtt.server.uris": server, "key.source": "field", "key.field": "id", "payload.max.bytes": "100",
		"errors.tolerance": "all", "errors.deadletterqueue.topic.name": base + "-dlq",
		"errors.deadletterqueue.topic.replication.factor": "-1", "errors.deadletterqueue.context.headers.enable": "true"}))
	sluicetest.WaitState(t, w.URL, "dlq", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/#", "dlq", 0))
	p.publish(base+"/a", 1, `{"id":"g1"}`, nil)
	p.publish(base+"/b", 1, `garbage`, nil)
	p.publish(base+"/a", 1, `{"id":"g2"}`, nil)
	p.publish(base+"/c", 1, `{"name":"no id"}`, nil)
	p.publish(base+"/d", 1, `{"id":"`+strings.Repeat("x", 200)+`"}`, nil)
	p.publish(base+"/a", 1, `{"id":"g3"}`, nil)

	good := sluicetest.ConsumeAll(t, c.Bootstrap, base, 3, 60*time.Second)
	var keys []string
	for _, m := range good {
		keys = append(keys, string(m.Key))
	}
	slices.Sort(keys) // keys spread over partitions
	if strings.Join(keys, " ") != "g1 g2 g3" {
		t.Errorf("good records keyed %q, want g1 g2 g3", keys)
	}
	bad := sluicetest.ConsumeAll(t, c.Bootstrap, base+"-dlq", 3, 60*time.Second)
	if len(bad) != 3 {
		t.Fatalf("%d records on the dead-letter topic, want 3", len(bad))
	}
	want := []struct{ topic, value, reason string }{
		{base + "/b", "garbage", "the payload is not JSON"},
		{base + "/c", `{"name":"no id"}`, `the payload has no field "id"`},
		{base + "/d", "", "larger than payload.max.bytes (100 bytes)"},
	}
	for i, m := range bad {
		w := want[i]
		topic, _ := sluicetest.Header(m, "mqtt.topic")
		reason, _ := sluicetest.Header(m, "mqtt.error")
		exc, _ := sluicetest.Header(m, "__connect.errors.exception.message")
		if topic != w.topic || string(m.Value) != w.value || !strings.Contains(reason, w.reason) || !strings.Contains(reason, w.topic) || !strings.Contains(exc, w.reason) {
			t.Errorf("dead letter %d: mqtt.topic %q value %q mqtt.error %q exception %q; want %q %q %q", i, topic, m.Value, reason, exc, w.topic, w.value, w.reason)
		}
	}
	sluicetest.WaitState(t, w.URL, "dlq", api.StateRunning, 1)
}

// TestMutualTLSListener: with the client certificate the connector delivers over the mTLS
// listener; without one its task FAILS and the status says why in words.
func TestMutualTLSListener(t *testing.T) {
	c := sluicetest.NewCluster(t)
	env := connecttest.Envs(t, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA, connecttest.EnvMQTTTLSCert, connecttest.EnvMQTTTLSKey)
	w := c.StartWorker(nil)
	p := newPub(t)
	base := sluicetest.UniqueName("mtls")
	sluicetest.CreateConnector(t, w.URL, "mtls-ok", mqttConfig(base+"/#", base, map[string]string{
		"mqtt.server.uris": env[0], "mqtt.tls.ca": env[1], "mqtt.tls.cert": env[2], "mqtt.tls.key": env[3]}))
	// Creating it is refused, with the reason...
	var refused map[string]any
	noCert := mqttConfig(base+"/#", base+"-never", map[string]string{"mqtt.server.uris": env[0], "mqtt.tls.ca": env[1]})
	code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "mtls-nocert", "config": noCert}, &refused)
	if msg := fmt.Sprint(refused["message"]); code != 400 || !strings.Contains(msg, "requires a client certificate") {
		t.Errorf("creating a connector without a client certificate: %d %s", code, msg)
	}
	// ...and without the connection test, its task fails saying why.
	noCert["mqtt.validate.connection"] = "false"
	sluicetest.CreateConnector(t, w.URL, "mtls-nocert", noCert)
	sluicetest.WaitState(t, w.URL, "mtls-ok", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/#", "mtls-ok", 0))
	p.publish(base+"/x", 1, "over mutual TLS", nil)
	if got := sluicetest.ConsumeAll(t, c.Bootstrap, base, 1, 60*time.Second); len(got) != 1 || string(got[0].Value) != "over mutual TLS" {
		t.Errorf("records over mTLS: %v", got)
	}

	var st api.ConnectorStatus
	sluicetest.Eventually(t, 60*time.Second, "the certificate-less task FAILED", func() (bool, string) {
		st = api.ConnectorStatus{}
		sluicetest.Call(t, "GET", w.URL+"/connectors/mtls-nocert/status", nil, &st)
		return len(st.Tasks) == 1 && st.Tasks[0].State == api.StateFailed, fmt.Sprintf("%+v", st)
	})
	trace := st.Tasks[0].Trace
	t.Logf("status trace: %s", trace)
	for _, want := range []string{"the broker requires a client certificate (mutual TLS)", "presented none", "set mqtt.tls.cert and mqtt.tls.key", env[0]} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace %q does not say %q", trace, want)
		}
	}
}

// TestValidateEndpointTestsTheConnection: PUT .../config/validate reports a refused mTLS
// connection on mqtt.server.uris.
func TestValidateEndpointTestsTheConnection(t *testing.T) {
	c := sluicetest.NewCluster(t)
	env := connecttest.Envs(t, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA)
	w := c.StartWorker(nil)
	var out api.ConfigInfos
	code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/mqtt-source/config/validate",
		mqttConfig("x/#", "t", map[string]string{"mqtt.server.uris": env[0], "mqtt.tls.ca": env[1]}), &out)
	found := ""
	for _, ci := range out.Configs {
		if ci.Value.Name == "mqtt.server.uris" {
			found = strings.Join(ci.Value.Errors, " ")
		}
	}
	if code != 200 || out.ErrorCount != 1 || !strings.Contains(found, "requires a client certificate") {
		t.Errorf("validate = %d, %d errors, on mqtt.server.uris %q", code, out.ErrorCount, found)
	}
}

// TestTaskRestartsLoseNothing publishes QoS 1 messages in three parts, restarting the task
// after the first and second (so messages arrive while it stops and starts): every message
// reaches Kafka at least once.
func TestTaskRestartsLoseNothing(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	p := newPub(t)
	base := sluicetest.UniqueName("restart")
	sluicetest.CreateConnector(t, w.URL, "restart", mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server}))
	sluicetest.WaitState(t, w.URL, "restart", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/#", "restart", 0))
	const n = 3000
	subscriptions := func() int {
		return strings.Count(c.Logs.String(), "msg=subscribed logger=sluice.connector.restart.task0")
	}
	for part := range 3 {
		p.publishRange(base+"/d", part*n/3, (part+1)*n/3)
		if part > 0 {
			// This part was published while the task stopped and started again; let the start
			// finish before the next restart, which would otherwise cancel it (the restart
			// request returns before the task has stopped, let alone started again), and
			// before counting the subscriptions.
			sluicetest.Eventually(t, time.Minute, "the restarted task subscribed", func() (bool, string) {
				return subscriptions() == part+1, fmt.Sprint(subscriptions(), " subscriptions")
			})
		}
		if part < 2 {
			if code := sluicetest.Call(t, "POST", w.URL+"/connectors/restart/tasks/0/restart", nil, nil); code >= 300 {
				t.Fatalf("restart task: %d", code)
			}
		}
	}
	seen := distinct(t, c.Bootstrap, base, n, 2*time.Minute)
	if m := missing(seen, n); len(m) > 0 {
		t.Fatalf("%d of %d messages missing in Kafka, first %v", len(m), n, m[:min(10, len(m))])
	}
	if subs := subscriptions(); subs != 3 {
		t.Errorf("the task subscribed %d times, want 3 (two restarts)", subs)
	}
	t.Logf("%d messages, %d duplicates after two task restarts", n, duplicates(seen))
}

// TestKilledWorkersTaskMovesAndLosesNothing kills (SIGKILL) the worker process running the
// task while messages are being published: the task moves to the other worker, resumes the
// same MQTT session, and every message reaches Kafka at least once.
func TestKilledWorkersTaskMovesAndLosesNothing(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	p := newPub(t)
	base := sluicetest.UniqueName("kill")
	name := c.Prefix + "-mqtt"
	sluicetest.CreateConnector(t, ws[0].URL, name, mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server}))
	st := sluicetest.WaitState(t, ws[0].URL, name, api.StateRunning, 1)
	victim, survivor := ws[0], ws[1]
	if "http://"+st.Tasks[0].WorkerID == ws[1].URL {
		victim, survivor = ws[1], ws[0]
	}
	waitSubscribed(t, victim.Log, clientID(base+"/#", name, 0))
	const n = 4000
	p.publishRange(base+"/d", 0, n/2)
	sluicetest.Eventually(t, time.Minute, "records flowing before the kill", func() (bool, string) {
		got := len(distinct(t, c.Bootstrap, base, 100, 5*time.Second))
		return got >= 100, fmt.Sprint(got)
	})
	victim.Kill()
	p.publishRange(base+"/d", n/2, n) // while the task is down and moving
	sluicetest.Eventually(t, 2*time.Minute, "the task RUNNING on the surviving worker", func() (bool, string) {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", survivor.URL+"/connectors/"+name+"/status", nil, &st)
		ok := len(st.Tasks) == 1 && st.Tasks[0].State == api.StateRunning && "http://"+st.Tasks[0].WorkerID == survivor.URL
		return ok, fmt.Sprintf("%+v", st)
	})
	seen := distinct(t, c.Bootstrap, base, n, 2*time.Minute)
	if m := missing(seen, n); len(m) > 0 {
		t.Fatalf("%d of %d messages missing in Kafka after the worker was killed, first %v", len(m), n, m[:min(10, len(m))])
	}
	t.Logf("%d messages, %d duplicates after SIGKILL of the task's worker", n, duplicates(seen))
}

// TestTwoTasksOnTwoWorkersShareTheStream: with tasks.max=2 on two workers, each task
// subscribes through the shared subscription; together they deliver every message, and each
// delivers a part.
func TestTwoTasksOnTwoWorkersShareTheStream(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	ws := []*sluicetest.Process{c.StartProcess(nil), c.StartProcess(nil)}
	p := newPub(t)
	base := sluicetest.UniqueName("share")
	name := c.Prefix + "-mqtt"
	sluicetest.CreateConnector(t, ws[0].URL, name, mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server, "tasks.max": "2"}))
	sluicetest.Eventually(t, 2*time.Minute, "two tasks RUNNING on two workers", func() (bool, string) {
		var st api.ConnectorStatus
		sluicetest.Call(t, "GET", ws[0].URL+"/connectors/"+name+"/status", nil, &st)
		if len(st.Tasks) != 2 || st.Tasks[0].State != api.StateRunning || st.Tasks[1].State != api.StateRunning {
			return false, fmt.Sprintf("%+v", st)
		}
		return st.Tasks[0].WorkerID != st.Tasks[1].WorkerID, fmt.Sprintf("%+v", st)
	})
	for i := range 2 {
		waitSubscribed(t, multiLog(ws), clientID(base+"/#", name, i))
	}
	const n = 2000
	p.publishRange(base+"/d", 0, n)
	seen := distinct(t, c.Bootstrap, base, n, 2*time.Minute)
	if m := missing(seen, n); len(m) > 0 {
		t.Fatalf("%d of %d messages missing, first %v", len(m), n, m[:min(10, len(m))])
	}
	// Each worker's task wrote a part: read its source-records counter from /metrics.
	for _, w := range ws {
		written := metric(t, w.URL, "sluice_source_records_written_total", name)
		if written == 0 || written == n {
			t.Errorf("worker %s wrote %v of %d records; the shared subscription should split them", w.URL, written, n)
		}
		t.Logf("worker %s wrote %v records", w.URL, written)
	}
	if d := duplicates(seen); d > 0 {
		// A task that stopped before Kafka acknowledged its last records (a worker that lost
		// its group membership while Kafka stalled, say) leaves those messages unacknowledged,
		// and the broker delivers them again: at least once. Otherwise there must be none.
		if starts := strings.Count(multiLog(ws).String(), `msg="starting task"`); starts > 2 {
			t.Logf("%d duplicates after tasks were started %d times (redelivered, at least once)", d, starts)
		} else {
			t.Errorf("%d duplicates: a shared subscription delivers each message to one task", d)
		}
	}
}

// multiLog reads the logs of several worker processes as one.
type multiLog []*sluicetest.Process

func (m multiLog) String() string {
	var b strings.Builder
	for _, p := range m {
		b.WriteString(p.Log.String())
	}
	return b.String()
}

// metric sums a counter's samples for a connector from a worker's /metrics.
func metric(t *testing.T, base, name, connector string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `connector="`+connector+`"`) {
			var v float64
			if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// ownBroker is a Mosquitto of the test's own on a free port, with persistence in a
// temporary directory, that the test may stop and start (the shared test broker must not be
// restarted: other suites use it). It is killed when the test ends.
type ownBroker struct {
	t    *testing.T
	conf string
	addr string
	cmd  *exec.Cmd
}

func newOwnBroker(t *testing.T) *ownBroker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Skip("no mosquitto binary (scripts/testenv installs it)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(addr)
	conf := dir + "/mosquitto.conf"
	body := fmt.Sprintf("user root\nallow_anonymous true\npersistence true\npersistence_location %s/\n"+
		"max_inflight_messages 1000\nmax_queued_messages 1000000\nmax_queued_bytes 0\nlog_dest stderr\nlistener %s 127.0.0.1\n", dir, port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &ownBroker{t: t, conf: conf, addr: addr}
	b.cmd = exec.Command(bin, "-c", conf)
	b.start()
	t.Cleanup(func() {
		if b.cmd.Process != nil && b.cmd.ProcessState == nil {
			_ = b.cmd.Process.Kill()
			_ = b.cmd.Wait()
		}
	})
	return b
}

func (b *ownBroker) uri() string { return "tcp://" + b.addr }

func (b *ownBroker) start() {
	b.t.Helper()
	b.cmd = exec.Command(b.cmd.Path, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	sluicetest.Eventually(b.t, 10*time.Second, "own mosquitto listening on "+b.addr, func() (bool, string) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// restart stops the broker (it saves its sessions) and starts it again on the same port.
func (b *ownBroker) restart() {
	b.t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
	b.start()
}

// pubOn is a plain MQTT v5 publisher on a broker.
func pubOn(t testing.TB, server string) *pub {
	t.Helper()
	c := dialMQTT(t, server, paho.ClientConfig{})
	if _, err := c.Connect(context.Background(), &paho.Connect{ClientID: sluicetest.UniqueName("pub"), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	p := &pub{t: t, c: c}
	t.Cleanup(p.close)
	return p
}

// TestBrokerRestartLosesNothing restarts the broker (one of the test's own) between two
// halves of the messages: the task reconnects to its kept session, and every message reaches
// Kafka at least once, with MQTT v5 and with 3.1.1.
func TestBrokerRestartLosesNothing(t *testing.T) {
	for _, version := range []string{"5", "3.1.1"} {
		t.Run(version, func(t *testing.T) {
			broker := newOwnBroker(t)
			c := sluicetest.NewCluster(t)
			w := c.StartWorker(nil)
			base := sluicetest.UniqueName("brokerrestart")
			sluicetest.CreateConnector(t, w.URL, "br", mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": broker.uri(),
				"mqtt.reconnect.backoff.max": "1s", "mqtt.protocol.version": version}))
			sluicetest.WaitState(t, w.URL, "br", api.StateRunning, 1)
			waitSubscribed(t, c.Logs, clientID(base+"/#", "br", 0))
			const n = 1000
			p := pubOn(t, broker.uri())
			p.publishRange(base+"/d", 0, n/2)
			p.close()
			broker.restart()
			p = pubOn(t, broker.uri())
			p.publishRange(base+"/d", n/2, n)
			seen := distinct(t, c.Bootstrap, base, n, 2*time.Minute)
			if m := missing(seen, n); len(m) > 0 {
				t.Fatalf("%d of %d messages missing after a broker restart, first %v", len(m), n, m[:min(10, len(m))])
			}
			sluicetest.WaitState(t, w.URL, "br", api.StateRunning, 1)
			t.Logf("%d messages, %d duplicates across a broker restart", n, duplicates(seen))
		})
	}
}
