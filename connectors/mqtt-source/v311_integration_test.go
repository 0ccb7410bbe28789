package mqttsource_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// endSession ends a 3.1.1 persistent session on the test broker when the test ends (3.1.1
// sessions do not expire), so that the tests leave nothing behind.
func endSession(t *testing.T, id string) {
	server := connecttest.Env(t, connecttest.EnvMQTT)
	t.Cleanup(func() {
		c := mqtt3.NewClient(mqtt3.NewClientOptions().AddBroker(server).SetClientID(id).SetCleanSession(true).SetProtocolVersion(4))
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
		}
	})
}

// TestV311RecordsReachKafkaWithMappingAndKey: a connector speaking MQTT 3.1.1 writes to the
// Kafka topics its mapping names, keyed by a payload field, with the 3.1.1 headers.
func TestV311RecordsReachKafkaWithMappingAndKey(t *testing.T) {
	base := sluicetest.UniqueName("v311map")
	filter := base + "/+/reading"
	endSession(t, clientID(filter, "v311map", 0)) // registered first: runs after the worker stopped
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	p := newPub(t)
	cfg := mqttConfig(filter, "", map[string]string{"mqtt.server.uris": server, "mqtt.protocol.version": "3.1.1",
		"kafka.topic.mappings": filter + "=" + base + ".{1}", "key.source": "field", "key.field": "device.id"})
	delete(cfg, "kafka.topic")
	sluicetest.CreateConnector(t, w.URL, "v311map", cfg)
	sluicetest.WaitState(t, w.URL, "v311map", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(filter, "v311map", 0))
	if !strings.Contains(c.Logs.String(), "client="+clientID(filter, "v311map", 0)+" session_present=false mqtt_version=3.1.1") {
		t.Error("the log does not say the task connected with MQTT 3.1.1")
	}
	p.publish(base+"/place-7/reading", 1, `{"device":{"id":"dev-42"},"t":21.5}`, nil)
	p.publish(base+"/place-8/reading", 1, `{"device":{"id":"dev-43"},"t":19}`, nil)
	for place, key := range map[string]string{"place-7": "dev-42", "place-8": "dev-43"} {
		recs := sluicetest.ConsumeAll(t, c.Bootstrap, base+"."+place, 1, 60*time.Second)
		if len(recs) != 1 || string(recs[0].Key) != key {
			t.Fatalf("records on %s.%s: %v", base, place, recs)
		}
		for k, want := range map[string]string{"mqtt.topic": base + "/" + place + "/reading", "mqtt.qos": "1", "mqtt.retain": "false"} {
			if got, _ := sluicetest.Header(recs[0], k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
	}
}

// TestV311TaskRestartsLoseNothing: QoS 1 over MQTT 3.1.1 with a persistent session (clean
// session off): messages published while the task stops and starts reach Kafka after it
// restarted, every one at least once.
func TestV311TaskRestartsLoseNothing(t *testing.T) {
	base := sluicetest.UniqueName("v311restart")
	endSession(t, clientID(base+"/#", "v311restart", 0)) // registered first: runs after the worker stopped
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	p := newPub(t)
	sluicetest.CreateConnector(t, w.URL, "v311restart", mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server,
		"mqtt.protocol.version": "3.1.1"}))
	sluicetest.WaitState(t, w.URL, "v311restart", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/#", "v311restart", 0))
	const n = 3000
	subscriptions := func() int {
		return strings.Count(c.Logs.String(), "msg=subscribed logger=sluice.connector.v311restart.task0")
	}
	for part := range 3 {
		if part > 0 {
			// Publishing this part began while the task stopped and started again; let the
			// start finish before the next restart, which would otherwise cancel it.
			sluicetest.Eventually(t, time.Minute, "the restarted task subscribed", func() (bool, string) {
				return subscriptions() == part+1, fmt.Sprint(subscriptions(), " subscriptions")
			})
		}
		p.publishRange(base+"/d", part*n/3, (part+1)*n/3)
		if part < 2 {
			if code := sluicetest.Call(t, "POST", w.URL+"/connectors/v311restart/tasks/0/restart", nil, nil); code >= 300 {
				t.Fatalf("restart task: %d", code)
			}
		}
	}
	seen := distinct(t, c.Bootstrap, base, n, 2*time.Minute)
	if m := missing(seen, n); len(m) > 0 {
		t.Fatalf("%d of %d messages missing in Kafka, first %v", len(m), n, m[:min(10, len(m))])
	}
	logs := c.Logs.String()
	if subs := subscriptions(); subs != 3 {
		t.Errorf("the task subscribed %d times, want 3 (two restarts)", subs)
	}
	if kept := strings.Count(logs, "session_present=true mqtt_version=3.1.1"); kept < 2 {
		t.Errorf("the restarted task found its 3.1.1 session %d times, want 2", kept)
	}
	t.Logf("%d messages, %d duplicates after two task restarts", n, duplicates(seen))
}

// TestV311MutualTLSListenerReachesKafka: a 3.1.1 connector with a client certificate on the
// mTLS listener writes to Kafka.
func TestV311MutualTLSListenerReachesKafka(t *testing.T) {
	base := sluicetest.UniqueName("v311tls")
	endSession(t, clientID(base+"/#", "v311tls", 0)) // registered first: runs after the worker stopped
	c := sluicetest.NewCluster(t)
	env := connecttest.Envs(t, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA, connecttest.EnvMQTTTLSCert, connecttest.EnvMQTTTLSKey)
	w := c.StartWorker(nil)
	p := newPub(t)
	sluicetest.CreateConnector(t, w.URL, "v311tls", mqttConfig(base+"/#", base, map[string]string{"mqtt.protocol.version": "3.1.1",
		"mqtt.server.uris": env[0], "mqtt.tls.ca": env[1], "mqtt.tls.cert": env[2], "mqtt.tls.key": env[3]}))
	sluicetest.WaitState(t, w.URL, "v311tls", api.StateRunning, 1)
	waitSubscribed(t, c.Logs, clientID(base+"/#", "v311tls", 0))
	for i := range 5 {
		p.publish(base+"/x", 1, fmt.Sprint("tls-", i), nil)
	}
	if got := sluicetest.ConsumeAll(t, c.Bootstrap, base, 5, 60*time.Second); len(got) != 5 || string(got[0].Value) != "tls-0" {
		t.Errorf("records over mTLS with MQTT 3.1.1: %v", got)
	}
}
