package mqttsource

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// keepSession makes a persistent session with a subscription for the client id, as a task
// does, and disconnects, leaving it on the broker.
func keepSession(t *testing.T, version, clientID, filter string) {
	t.Helper()
	server := connecttest.Env(t, connecttest.EnvMQTT)
	if version == Version311 {
		c := mqtt3.NewClient(mqtt3.NewClientOptions().AddBroker(server).SetClientID(clientID).SetCleanSession(false).SetProtocolVersion(4))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", clientID, tok.Error())
		}
		if tok := c.Subscribe(filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		c.Disconnect(100)
		t.Cleanup(func() { endSession311(t, clientID) })
		return
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	expiry := uint32(600)
	if _, err := c.Connect(t.Context(), &paho.Connect{ClientID: clientID, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	if _, err := c.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
}

func testSessions(t *testing.T, version string, extra connect.Config) *sessions {
	t.Helper()
	raw := connect.Config{"mqtt.server.uris": connecttest.Env(t, connecttest.EnvMQTT), "mqtt.topics": "x/#", "kafka.topic": "x",
		"mqtt.protocol.version": version, "mqtt.connect.timeout": "10s", "mqtt.client.id.prefix": unique("sess") + "-"}
	for k, v := range extra {
		raw[k] = v
	}
	cfg, err := connect.Decode[Config](raw)
	if err != nil {
		t.Fatal(err)
	}
	return newSessions(&cfg, "conn", connecttest.NewSourceContext(t, 0).Logger())
}

// TestEndEndsAKeptSession: ending a session a task kept reports that there was one, and
// afterwards there is none, with MQTT v5, with 3.1.1, and with auto (v5 on this broker).
func TestEndEndsAKeptSession(t *testing.T) {
	for _, version := range []string{Version5, Version311, VersionAuto} {
		t.Run(version, func(t *testing.T) {
			s := testSessions(t, version, nil)
			id := s.cfg.clientID("conn", 0)
			keepSession(t, version, id, "$share/conn/"+unique("kept")+"/#")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			present, err := s.end(ctx, id)
			if err != nil || !present {
				t.Fatalf("end %s = %v, %v; want the kept session ended", id, present, err)
			}
			present, err = s.end(ctx, id)
			if err != nil || present {
				t.Fatalf("end %s again = %v, %v; want no session left", id, present, err)
			}
		})
	}
}

// TestEndUnusedEndsListedAndHigherNumberedSessions: the sessions of ids listed but not in use
// end, and so do those of the task numbers above the ones in use (a connector from before the
// list existed left them); those in use are kept.
func TestEndUnusedEndsListedAndHigherNumberedSessions(t *testing.T) {
	for _, version := range []string{Version5, Version311} {
		t.Run(version, func(t *testing.T) {
			s := testSessions(t, version, nil)
			filter := "$share/conn/" + unique("unused") + "/#"
			other := s.cfg.ClientIDPrefix + "old-conn-0" // a former prefix, on the list
			ids := []string{other}
			for i := range 4 {
				ids = append(ids, s.cfg.clientID("conn", i))
			}
			for _, id := range ids {
				keepSession(t, version, id, filter)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			inUse := ids[1:3]
			ended, err := s.endUnused(ctx, []string{other, ids[1]}, inUse)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{other, ids[3], ids[4]}; !sameSet(ended, want) {
				t.Errorf("ended %v, want %v", ended, want)
			}
			for _, id := range inUse {
				present, err := s.end(ctx, id)
				if err != nil || !present {
					t.Errorf("the session of %s, in use, was ended too (%v)", id, err)
				}
			}
		})
	}
}

// TestListKeepsTheClientIDs: the list is written, read back, replaced and removed.
func TestListKeepsTheClientIDs(t *testing.T) {
	for _, version := range []string{Version5, Version311} {
		t.Run(version, func(t *testing.T) {
			s := testSessions(t, version, connect.Config{"mqtt.session.registry.topic": unique("reg") + "/{connector}/sessions"})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			steps := []struct {
				write []string
				want  []string // read before writing
			}{
				{write: []string{"a-0", "a-1"}},
				{write: []string{"b-0"}, want: []string{"a-0", "a-1"}},
				{write: nil, want: []string{"b-0"}},
				{write: nil, want: nil},
			}
			for i, st := range steps {
				var got []string
				if err := s.list(ctx, func(old []string) []string { got = old; return st.write }); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if !sameSet(got, st.want) {
					t.Errorf("step %d read %v, want %v", i, got, st.want)
				}
			}
		})
	}
}

// TestTaskSkipsTheListOfClientIDs: a task whose filter matches the connector's list topic
// skips the list and the topics below it.
func TestTaskSkipsTheListOfClientIDs(t *testing.T) {
	task := &Task{registry: "sluice/mqtt-source/conn/sessions"}
	for topic, want := range map[string]bool{
		"sluice/mqtt-source/conn/sessions":          true,
		"sluice/mqtt-source/conn/sessions/read-abc": true,
		"sluice/mqtt-source/conn/sessionsx":         false,
		"sluice/mqtt-source/conn":                   false,
		"sensors/1":                                 false,
	} {
		if got := task.internal(topic); got != want {
			t.Errorf("internal(%q) = %v, want %v", topic, got, want)
		}
	}
	if (&Task{}).internal("sluice/mqtt-source/conn/sessions") {
		t.Error("with mqtt.session.cleanup off, the list topic is data like any other")
	}
}
