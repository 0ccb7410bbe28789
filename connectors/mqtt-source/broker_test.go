package mqttsource

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

var seq atomic.Int64

// unique returns a name unique to this run, for topics and connectors.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, seq.Add(1))
}

// publisher is a plain paho client that publishes test messages.
type publisher struct {
	t *testing.T
	c *paho.Client
}

// newPublisher connects a publisher to the test broker's plain listener.
func newPublisher(t *testing.T) *publisher {
	t.Helper()
	server := connecttest.Env(t, connecttest.EnvMQTT)
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	if _, err := c.Connect(t.Context(), &paho.Connect{ClientID: unique("pub"), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return &publisher{t: t, c: c}
}

func (p *publisher) publish(topic string, qos byte, payload string, props *paho.PublishProperties) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload), Properties: props}); err != nil {
		p.t.Fatalf("publish to %s: %v", topic, err)
	}
}

// startTask starts a task on the test broker with settings over a base configuration; the
// task is stopped when the test ends.
func startTask(t *testing.T, tc *connecttest.SourceContext, settings connect.Config) *Task {
	t.Helper()
	task, err := tryStart(t, tc, settings)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return task
}

func tryStart(t *testing.T, tc *connecttest.SourceContext, settings connect.Config) (*Task, error) {
	t.Helper()
	cfg := connect.Config{"mqtt.server.uris": connecttest.Env(t, connecttest.EnvMQTT), "kafka.topic": "iot.raw",
		"mqtt.connect.timeout": "10s", "mqtt.session.expiry": "5m"}
	for k, v := range settings {
		cfg[k] = v
	}
	if cfg["mqtt.protocol.version"] == Version311 {
		if c, err := connect.Decode[Config](cfg); err == nil {
			id := c.clientID(tc.Connector(), tc.TaskID())
			t.Cleanup(func() { endSession311(t, id) }) // runs after the task stopped
		}
	}
	task := &Task{}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = task.Stop() })
	return task, nil
}

// pollN polls until n records arrived (failing after 20 s).
func pollN(t *testing.T, task *Task, n int) []connect.Record {
	t.Helper()
	var out []connect.Record
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(out) < n {
		recs, err := task.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records within 20 s", len(out), n)
		}
		out = append(out, recs...)
	}
	return out
}

// pollNone checks that nothing arrives before a marker message published after it does.
func pollUntilMarker(t *testing.T, task *Task, pub *publisher, topic string) []connect.Record {
	t.Helper()
	marker := unique("marker")
	pub.publish(topic, 1, marker, nil)
	var out []connect.Record
	for {
		for _, r := range pollN(t, task, 1) {
			if string(r.Value.([]byte)) == marker {
				_ = task.Acknowledged(t.Context(), r)
				return out
			}
			out = append(out, r)
		}
	}
}

func values(recs []connect.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value.([]byte)))
	}
	return out
}

func TestConformance(t *testing.T) {
	server := connecttest.Env(t, connecttest.EnvMQTT)
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), func(cfg connect.Config) {
		cfg["mqtt.server.uris"] = server
		cfg["mqtt.client.id.prefix"] = unique("conformance") + "-"
		cfg["mqtt.session.expiry"] = "0"
	})
}

func TestDocsAreCurrent(t *testing.T) {
	connecttest.CheckDocs(t, connecttest.Registered(t, Name), "../../docs/connectors")
}

func TestPlainListenerDeliversWithMetadata(t *testing.T) {
	pub := newPublisher(t)
	base := unique("plain")
	task := startTask(t, connecttest.NewSourceContext(t, 0), connect.Config{"mqtt.topics": base + "/+/reading",
		"mqtt.client.id.prefix": base + "-", "mqtt.qos": "2"})
	expiry := uint32(3600)
	pub.publish(base+"/dev1/reading", 1, `{"t":1}`, &paho.PublishProperties{ContentType: "application/json", MessageExpiry: &expiry,
		User: paho.UserProperties{{Key: "site", Value: "s1"}}})
	pub.publish(base+"/dev2/reading", 2, `{"t":2}`, nil)
	pub.publish(base+"/dev3/other", 1, `{"t":3}`, nil) // not subscribed
	recs := pollN(t, task, 2)
	if got := values(recs); strings.Join(got, " ") != `{"t":1} {"t":2}` {
		t.Fatalf("values %q", got)
	}
	r := recs[0]
	if r.Topic != "iot.raw" || r.Key != base+"/dev1/reading" {
		t.Errorf("record %+v", r)
	}
	for k, want := range map[string]string{"mqtt.topic": base + "/dev1/reading", "mqtt.qos": "1", "mqtt.retain": "false",
		"mqtt.content.type": "application/json", "site": "s1"} {
		if got, _ := r.Header(k); string(got) != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got, _ := r.Header("mqtt.message.expiry"); len(got) == 0 {
		t.Error("no mqtt.message.expiry header")
	}
	if got, _ := recs[1].Header("mqtt.qos"); string(got) != "2" {
		t.Errorf("second record's QoS %q, want 2", got)
	}
	if err := acknowledge(t.Context(), task, recs...); err != nil {
		t.Fatal(err)
	}
}

// TestUnacknowledgedMessagesComeBack is the heart of the delivery promise at the task level:
// a message whose record Kafka never acknowledged is sent again to the next task with the same
// client id; one that was acknowledged is not.
func TestUnacknowledgedMessagesComeBack(t *testing.T) {
	for _, tc := range []struct{ version, qos string }{{"5", "1"}, {"5", "2"}, {"3.1.1", "1"}, {"3.1.1", "2"}} {
		version, qos := tc.version, tc.qos
		t.Run("v"+version+"/qos"+qos, func(t *testing.T) {
			pub := newPublisher(t)
			base := unique("redeliver")
			settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "mqtt.qos": qos,
				"mqtt.protocol.version": version}
			q := byte(qos[0] - '0')
			tc := connecttest.NewSourceContext(t, 0)
			first := startTask(t, tc, settings)
			if first.version != version {
				t.Fatalf("the task speaks MQTT %s, want %s", first.version, version)
			}
			for i := range 6 {
				pub.publish(base+"/d", q, fmt.Sprint("m", i), nil)
			}
			recs := pollN(t, first, 6)
			// Kafka acknowledged m0, m1 and m4 (out of order, as partitions may); the rest not.
			if err := acknowledge(t.Context(), first, recs[0], recs[4], recs[1]); err != nil {
				t.Fatal(err)
			}
			if err := first.Stop(); err != nil {
				t.Fatal(err)
			}
			pub.publish(base+"/d", q, "while-down", nil)

			second := startTask(t, tc, settings)
			got := strings.Join(values(pollUntilMarker(t, second, pub, base+"/d")), " ")
			// MQTT acknowledges in order: m4's acknowledgement waits for m2 and m3, so m4 comes
			// back too (at least once); m0 and m1 do not.
			if got != "m2 m3 m4 m5 while-down" {
				t.Errorf("second task got %q, want m2 m3 m4 m5 while-down", got)
			}
		})
	}
}

func TestBadPayloadIsReportedAndAcknowledged(t *testing.T) {
	pub := newPublisher(t)
	base := unique("bad")
	settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "key.source": "field", "key.field": "id"}
	tc := connecttest.NewSourceContext(t, 0)
	task := startTask(t, tc, settings)
	pub.publish(base+"/d", 1, `not json`, nil)
	pub.publish(base+"/d", 1, `{"id":"ok"}`, nil)
	recs := pollN(t, task, 1)
	if len(recs) != 1 || recs[0].Key != "ok" || len(tc.Reported) != 1 {
		t.Fatalf("records %v, reported %v", recs, tc.Reported)
	}
	if !strings.Contains(tc.Reasons[0].Error(), base+"/d") || !strings.Contains(tc.Reasons[0].Error(), "not JSON") {
		t.Errorf("reason %v", tc.Reasons[0])
	}
	_ = acknowledge(t.Context(), task, recs...)
	if err := task.Stop(); err != nil {
		t.Fatal(err)
	}
	// Neither comes back: the bad one was acknowledged once reported.
	second := startTask(t, connecttest.NewSourceContext(t, 0), settings)
	if got := values(pollUntilMarkerJSON(t, second, pub, base+"/d")); len(got) != 0 {
		t.Errorf("after a restart got %q again", got)
	}
}

// pollUntilMarkerJSON is pollUntilMarker for a task that keys by the JSON field id.
func pollUntilMarkerJSON(t *testing.T, task *Task, pub *publisher, topic string) []connect.Record {
	t.Helper()
	marker := unique("marker")
	pub.publish(topic, 1, `{"id":"`+marker+`"}`, nil)
	var out []connect.Record
	for {
		for _, r := range pollN(t, task, 1) {
			if r.Key == marker {
				return out
			}
			out = append(out, r)
		}
	}
}

func TestReportRefusedByThePolicyFailsPollAndKeepsTheMessage(t *testing.T) {
	pub := newPublisher(t)
	base := unique("intolerant")
	settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "payload.format": "json"}
	tc := connecttest.NewSourceContext(t, 0)
	tc.ReportErr = fmt.Errorf("Tolerance exceeded in error handler")
	task := startTask(t, tc, settings)
	pub.publish(base+"/d", 1, `{broken`, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := task.Poll(ctx); err == nil || !strings.Contains(err.Error(), "Tolerance exceeded") {
		t.Fatalf("Poll = %v, want the policy's error", err)
	}
	_ = task.Stop()
	second := startTask(t, connecttest.NewSourceContext(t, 0), connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-"})
	if got := values(pollN(t, second, 1)); got[0] != `{broken` {
		t.Errorf("the message the policy did not accept came back as %q", got)
	}
}

func mtlsSettings(t *testing.T, base string) connect.Config {
	env := connecttest.Envs(t, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA)
	return connect.Config{"mqtt.server.uris": env[0], "mqtt.tls.ca": env[1], "mqtt.topics": base + "/#",
		"mqtt.client.id.prefix": base + "-", "mqtt.connect.timeout": "20s"}
}

func TestMutualTLS(t *testing.T) {
	for _, version := range []string{VersionAuto, Version5, Version311} {
		t.Run(version, func(t *testing.T) {
			env := connecttest.Envs(t, connecttest.EnvMQTTTLSCert, connecttest.EnvMQTTTLSKey)
			base := unique("mtls")
			settings := mtlsSettings(t, base)
			settings["mqtt.tls.cert"], settings["mqtt.tls.key"] = env[0], env[1]
			settings["mqtt.protocol.version"] = version
			task := startTask(t, connecttest.NewSourceContext(t, 0), settings)
			if want := map[string]string{VersionAuto: Version5}[version]; want != "" && task.version != want || want == "" && task.version != version {
				t.Errorf("the task speaks MQTT %s", task.version)
			}
			pub := newPublisher(t)
			pub.publish(base+"/x", 1, "over-tls", nil)
			recs := pollN(t, task, 1)
			if got := values(recs); got[0] != "over-tls" {
				t.Errorf("got %q", got)
			}
			_ = acknowledge(t.Context(), task, recs...)
		})
	}
}

func TestMutualTLSWithoutACertificateIsRefusedInWords(t *testing.T) {
	for _, version := range []string{VersionAuto, Version5, Version311} {
		t.Run(version, func(t *testing.T) { mutualTLSWithoutACertificate(t, version) })
	}
}

func mutualTLSWithoutACertificate(t *testing.T, version string) {
	base := unique("nocert")
	begin := time.Now()
	settings := mtlsSettings(t, base)
	settings["mqtt.protocol.version"] = version
	_, err := tryStart(t, connecttest.NewSourceContext(t, 0), settings)
	if err == nil {
		t.Fatal("a client without a certificate connected to the mTLS listener")
	}
	t.Logf("Start failed after %v with: %v", time.Since(begin).Round(time.Millisecond), err)
	for _, want := range []string{"requires a client certificate", "set mqtt.tls.cert and mqtt.tls.key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "gave up after") {
		t.Errorf("a refusal retrying cannot fix waited for the timeout: %v", err)
	}
}

func TestUntrustedServerCertificateIsExplained(t *testing.T) {
	base := unique("noca")
	settings := mtlsSettings(t, base)
	delete(settings, "mqtt.tls.ca")
	_, err := tryStart(t, connecttest.NewSourceContext(t, 0), settings)
	if err == nil || !strings.Contains(err.Error(), "not signed by a CA this task trusts; set mqtt.tls.ca") {
		t.Fatalf("Start = %v, want it to say the CA is not trusted", err)
	}
}

func TestConnectionRefusedFailsStartAfterTheTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = tryStart(t, connecttest.NewSourceContext(t, 0), connect.Config{"mqtt.server.uris": "tcp://" + addr,
		"mqtt.topics": "x", "mqtt.connect.timeout": "1s", "mqtt.reconnect.backoff.min": "100ms"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Start = %v, want connection refused naming %s", err, addr)
	}
}

func TestValidateTestsTheConnection(t *testing.T) {
	env := connecttest.Envs(t, connecttest.EnvMQTT, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA)
	c := &Connector{}
	ok := connect.Config{"mqtt.server.uris": env[0], "mqtt.topics": "x", "kafka.topic": "t"}
	if err := c.Validate(t.Context(), ok); err != nil {
		t.Errorf("Validate against the plain listener: %v", err)
	}
	noCert := connect.Config{"mqtt.server.uris": env[1], "mqtt.tls.ca": env[2], "mqtt.topics": "x", "kafka.topic": "t"}
	byKey, _ := connect.FieldErrors(c.Validate(t.Context(), noCert))
	if msgs := strings.Join(byKey["mqtt.server.uris"], " "); !strings.Contains(msgs, "requires a client certificate") {
		t.Errorf("Validate without a client certificate: %v", byKey)
	}
}

func TestSharedSubscriptionSplitsTheStream(t *testing.T) {
	// Mosquitto accepts $share/ from MQTT 3.1.1 clients too.
	for _, version := range []string{Version5, Version311} {
		t.Run(version, func(t *testing.T) { sharedSubscriptionSplitsTheStream(t, version) })
	}
}

func sharedSubscriptionSplitsTheStream(t *testing.T, version string) {
	pub := newPublisher(t)
	base := unique("shared")
	settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "mqtt.shared.subscription": "always",
		"mqtt.protocol.version": version}
	a := startTask(t, connecttest.NewSourceContext(t, 0), settings)
	b := startTask(t, connecttest.NewSourceContext(t, 1), settings)
	const n = 40
	for i := range n {
		pub.publish(base+"/d", 1, fmt.Sprint(i), nil)
	}
	seen := map[string]int{}
	counts := [2]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		for i, task := range []*Task{a, b} {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			recs, err := task.Poll(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			_ = acknowledge(t.Context(), task, recs...)
			for _, v := range values(recs) {
				seen[v]++
				counts[i]++
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("saw %d of %d messages", len(seen), n)
	}
	if counts[0] == 0 || counts[1] == 0 || counts[0]+counts[1] != n {
		t.Errorf("tasks got %v messages; want both some, %d in all, none twice", counts, n)
	}
}

// A task resuming a kept session that holds more messages than mqtt.buffer.size starts (the
// backlog is read while Poll drains it) instead of timing out waiting for the SUBACK behind
// the backlog and failing for good; every message comes.
func TestKeptSessionWithABacklogLargerThanTheBufferStarts(t *testing.T) {
	for _, version := range []string{"5", "3.1.1"} {
		t.Run("v"+version, func(t *testing.T) {
			pub := newPublisher(t)
			base := unique("backlog")
			settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "mqtt.qos": "1",
				"mqtt.protocol.version": version, "buffer.size": "10", "mqtt.connect.timeout": "5s"}
			tc := connecttest.NewSourceContext(t, 0)
			first := startTask(t, tc, settings)
			if err := first.Stop(); err != nil {
				t.Fatal(err)
			}
			const backlog = 300
			for i := range backlog {
				pub.publish(base+"/d", 1, fmt.Sprint("m", i), nil)
			}
			second, err := tryStart(t, tc, settings)
			if err != nil {
				t.Fatalf("Start with a backlog of %d over a buffer of 10: %v", backlog, err)
			}
			seen := map[string]bool{}
			for _, r := range pollN(t, second, backlog) {
				seen[string(r.Value.([]byte))] = true
				if err := second.Acknowledged(t.Context(), r); err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != backlog {
				t.Fatalf("%d distinct messages of %d", len(seen), backlog)
			}
		})
	}
}
