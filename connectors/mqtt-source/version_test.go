package mqttsource

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// TestVersionRefusedDecision checks the pure function that decides, from a failed MQTT v5
// attempt, whether mqtt.protocol.version=auto falls back to 3.1.1.
func TestVersionRefusedDecision(t *testing.T) {
	connack := func(code byte) error {
		return autopaho.NewConnackError(errors.New("failed to connect to server"), &paho.Connack{ReasonCode: code})
	}
	wrapped := func(err error) error { return fmt.Errorf("failed to connect to tcp://b:1883: %w", err) }
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"v5 broker: CONNACK 0x84 unsupported protocol version", connack(0x84), true},
		{"3.1.1 broker: return code 1 seen as a reason code", connack(0x01), true},
		{"3.1.1 broker: its 2-byte CONNACK read as a v5 one cut short", wrapped(io.EOF), true},
		{"closed after the CONNECT, unexpected EOF", wrapped(io.ErrUnexpectedEOF), true},
		{"closed after the CONNECT, reset", wrapped(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"bad user name or password", connack(0x86), false},
		{"not authorized", connack(0x87), false},
		{"server unavailable", connack(0x88), false},
		{"connection refused", wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false},
		{"timeout", wrapped(context.DeadlineExceeded), false},
		{"TLS alert", fmt.Errorf("%w (a handshake without writing got: %w)", io.EOF, errors.New("remote error: tls: certificate required")), false},
		{"no such host", wrapped(errors.New("dial tcp: lookup nowhere: no such host")), false},
		{"nil", nil, false},
	} {
		if got := versionRefused(c.err); got != c.want {
			t.Errorf("%s: versionRefused(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// fakeMessage is a 3.1.1 message that records its acknowledgement.
type fakeMessage struct {
	mqtt3.Message
	id   uint16
	acks *[]uint16
	mu   *sync.Mutex
}

func (m fakeMessage) Ack() {
	m.mu.Lock()
	*m.acks = append(*m.acks, m.id)
	m.mu.Unlock()
}

// TestAckQueueAcknowledgesInArrivalOrder: on 3.1.1 the task acknowledges in the order the
// messages came, whatever order Kafka acknowledged their records in.
func TestAckQueueAcknowledgesInArrivalOrder(t *testing.T) {
	var acks []uint16
	var mu sync.Mutex
	q := &ackQueue{}
	ds := make([]*delivery, 6)
	for i := range ds {
		ds[i] = &delivery{msg3: fakeMessage{id: uint16(i + 1), acks: &acks, mu: &mu}}
		q.add(ds[i])
	}
	step := func(i int, want string) {
		t.Helper()
		q.ack(ds[i])
		if got := fmt.Sprint(acks); got != want {
			t.Errorf("after acknowledging %d: sent %s, want %s", i+1, got, want)
		}
	}
	step(1, "[]")      // 2 waits for 1
	step(4, "[]")      // 5 too
	step(0, "[1 2]")   // 1 releases 2
	step(2, "[1 2 3]") //
	step(3, "[1 2 3 4 5]")
	step(5, "[1 2 3 4 5 6]")
	if len(q.pending) != 0 {
		t.Errorf("%d left pending", len(q.pending))
	}
}

// TestV311DeliversRecordsWithMappingAndKey: with mqtt.protocol.version=3.1.1 a task speaks
// 3.1.1 to Mosquitto, maps topics and keys from the payload; the headers carry what 3.1.1 has
// and none of the v5 properties the publisher set.
func TestV311DeliversRecordsWithMappingAndKey(t *testing.T) {
	pub := newPublisher(t)
	base := unique("v311")
	task := startTask(t, connecttest.NewSourceContext(t, 0), connect.Config{"mqtt.topics": base + "/+/reading",
		"mqtt.client.id.prefix": base + "-", "mqtt.protocol.version": "3.1.1", "kafka.topic.mappings": base + "/+/reading=t.{1}",
		"key.source": "field", "key.field": "device.id"})
	if task.version != Version311 {
		t.Fatalf("the task speaks MQTT %s", task.version)
	}
	pub.publish(base+"/p1/reading", 1, `{"device":{"id":"d1"}}`, &paho.PublishProperties{ContentType: "application/json",
		User: paho.UserProperties{{Key: "site", Value: "s1"}}})
	pub.publish(base+"/p2/reading", 0, `{"device":{"id":"d2"}}`, nil)
	recs := pollN(t, task, 2)
	if recs[0].Topic != "t.p1" || recs[0].Key != "d1" || recs[1].Topic != "t.p2" || recs[1].Key != "d2" {
		t.Errorf("records %+v", recs)
	}
	for k, want := range map[string]string{"mqtt.topic": base + "/p1/reading", "mqtt.qos": "1", "mqtt.retain": "false"} {
		if got, _ := recs[0].Header(k); string(got) != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got, _ := recs[0].Header("mqtt.message.id"); len(got) == 0 {
		t.Error("no mqtt.message.id header")
	}
	for _, k := range []string{"mqtt.content.type", "site"} {
		if got, ok := recs[0].Header(k); ok {
			t.Errorf("header %s = %q on 3.1.1, which has no properties", k, got)
		}
	}
	if err := acknowledge(t.Context(), task, recs...); err != nil {
		t.Fatal(err)
	}
}

// TestAutoSpeaksV5ToMosquitto: auto connects with v5 to a broker that takes it (the user
// property proves it).
func TestAutoSpeaksV5ToMosquitto(t *testing.T) {
	pub := newPublisher(t)
	base := unique("auto")
	task := startTask(t, connecttest.NewSourceContext(t, 0), connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-"})
	if task.version != Version5 {
		t.Fatalf("auto chose MQTT %s against Mosquitto, want 5", task.version)
	}
	pub.publish(base+"/x", 1, "v5", &paho.PublishProperties{User: paho.UserProperties{{Key: "site", Value: "s1"}}})
	recs := pollN(t, task, 1)
	if got, _ := recs[0].Header("site"); string(got) != "s1" {
		t.Errorf("user property header %q", got)
	}
	_ = acknowledge(t.Context(), task, recs...)
}

// v3OnlyBroker stands in for a broker that speaks only MQTT 3.1.1: it answers a CONNECT of
// any other protocol level as 3.1.1 brokers do, with CONNACK return code 1 (unacceptable
// protocol version), and closes; a 3.1.1 connection it passes through to the test Mosquitto.
// It counts the v5 CONNECTs it refused.
func v3OnlyBroker(t *testing.T) (string, func() int) {
	t.Helper()
	u, err := url.Parse(connecttest.Env(t, connecttest.EnvMQTT))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refused := 0
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	serve := func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		// Fixed header (type, remaining length), then the protocol name and level.
		head := make([]byte, 0, 16)
		b, err := r.ReadByte()
		if err != nil || b>>4 != 1 {
			return
		}
		head = append(head, b)
		for {
			if b, err = r.ReadByte(); err != nil {
				return
			}
			head = append(head, b)
			if b&0x80 == 0 {
				break
			}
		}
		vh := make([]byte, 7) // 00 04 M Q T T level
		if _, err := io.ReadFull(r, vh); err != nil {
			return
		}
		if vh[6] != 4 {
			mu.Lock()
			refused++
			mu.Unlock()
			_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x01})
			return
		}
		up, err := net.Dial("tcp", u.Host)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c, up)
		mu.Unlock()
		defer up.Close()
		if _, err := up.Write(append(head, vh...)); err != nil {
			return
		}
		go func() {
			_, _ = io.Copy(up, r)
			up.Close()
			c.Close()
		}()
		_, _ = io.Copy(c, up)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return "tcp://" + l.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return refused }
}

// TestAutoFallsBackTo311WhenTheBrokerRefusesV5: against a broker that refuses v5 with return
// code 1, auto falls back to 3.1.1 at once, delivers, and keeps its persistent session; a
// task fixed to v5 fails, saying to set mqtt.protocol.version.
func TestAutoFallsBackTo311WhenTheBrokerRefusesV5(t *testing.T) {
	server, refused := v3OnlyBroker(t)
	pub := newPublisher(t)
	base := unique("fallback")
	settings := connect.Config{"mqtt.server.uris": server, "mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-"}
	tc := connecttest.NewSourceContext(t, 0)
	t.Cleanup(func() { endSession311(t, base+"-"+tc.Connector()+"-0") })
	begin := time.Now()
	task := startTask(t, tc, settings)
	if task.version != Version311 || refused() == 0 {
		t.Fatalf("auto speaks MQTT %s after %d refused v5 CONNECTs", task.version, refused())
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("falling back took %v", d)
	}
	pub.publish(base+"/x", 1, "one", nil)
	recs := pollN(t, task, 1)
	_ = acknowledge(t.Context(), task, recs...)
	if err := task.Stop(); err != nil {
		t.Fatal(err)
	}
	pub.publish(base+"/x", 1, "while-down", nil)
	again := startTask(t, tc, settings)
	if got := strings.Join(values(pollUntilMarker(t, again, pub, base+"/x")), " "); got != "while-down" {
		t.Errorf("after the restart got %q, want while-down", got)
	}

	v5only := connect.Config{"mqtt.server.uris": server, "mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-v5-",
		"mqtt.protocol.version": "5", "mqtt.connect.timeout": "2s"}
	_, err := tryStart(t, connecttest.NewSourceContext(t, 0), v5only)
	if err == nil || !strings.Contains(err.Error(), "mqtt.protocol.version to 3.1.1 or auto") {
		t.Errorf("a v5 task against a 3.1.1 broker: %v", err)
	}

	// The connection test of Validate falls back too.
	if err := (&Connector{}).Validate(t.Context(), connect.Config{"mqtt.server.uris": server, "mqtt.topics": "x", "kafka.topic": "t"}); err != nil {
		t.Errorf("Validate against the 3.1.1 broker: %v", err)
	}
}

// endSession311 ends a 3.1.1 persistent session on the test broker (3.1.1 sessions do not
// expire), so that tests leave nothing behind.
func endSession311(t testing.TB, clientID string) {
	o := mqtt3.NewClientOptions().AddBroker(connecttest.Env(t, connecttest.EnvMQTT)).SetClientID(clientID).
		SetCleanSession(true).SetProtocolVersion(4)
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
	}
}

// TestV311CleanStartDiscardsTheKeptSession: on 3.1.1, mqtt.clean.start drops what the kept
// session held, and the session the task then makes outlives its connection again.
func TestV311CleanStartDiscardsTheKeptSession(t *testing.T) {
	pub := newPublisher(t)
	base := unique("v311clean")
	settings := connect.Config{"mqtt.topics": base + "/#", "mqtt.client.id.prefix": base + "-", "mqtt.protocol.version": "3.1.1"}
	tc := connecttest.NewSourceContext(t, 0)
	first := startTask(t, tc, settings)
	_ = first.Stop()
	pub.publish(base+"/x", 1, "dropped", nil)
	clean := connect.Config{"mqtt.clean.start": "true"}
	for k, v := range settings {
		clean[k] = v
	}
	second := startTask(t, tc, clean)
	if got := values(pollUntilMarker(t, second, pub, base+"/x")); len(got) != 0 {
		t.Errorf("with clean start the task got %q from the old session", got)
	}
	_ = second.Stop()
	pub.publish(base+"/x", 1, "kept", nil)
	third := startTask(t, tc, settings)
	if got := strings.Join(values(pollUntilMarker(t, third, pub, base+"/x")), " "); got != "kept" {
		t.Errorf("after a clean start the session did not outlive the connection: got %q, want kept", got)
	}
}
