package mqttsource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	mqttsource "github.com/sluicehq/sluice/connectors/mqtt-source"
)

// mqtt-source against the test Mosquitto: the rows are published as JSON payloads at QoS 1
// by a client of the test's own, once the task has subscribed. The task keeps a persistent
// session and acknowledges a message to the broker only once told Kafka has its record, so a
// task restarted after its records were acknowledged gets none of them again from the
// broker (MQTT has no offsets; the session is the position).
func TestAcceptance(t *testing.T) {
	server := connecttest.Env(t, connecttest.EnvMQTT)
	for _, tc := range []struct {
		name string
		cfg  connect.Config
	}{
		{"MQTT 5, JSON payloads", connect.Config{"mqtt.protocol.version": "5", "payload.format": "json"}},
		{"MQTT 3.1.1, payloads as bytes", connect.Config{"mqtt.protocol.version": "3.1.1", "payload.format": "bytes"}},
		{"protocol found out, payloads as text keyed by a field", connect.Config{"payload.format": "string",
			"key.source": "field", "key.field": "id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := connecttest.UniqueName("acc")
			pub := newPublisher(t, server)
			tc.cfg["mqtt.server.uris"] = server
			tc.cfg["mqtt.topics"] = base + "/+/reading"
			tc.cfg["kafka.topic"] = "iot.raw"
			tc.cfg["mqtt.qos"] = "1"
			tc.cfg["mqtt.client.id.prefix"] = base + "-" // no session of an earlier run is resumed
			tc.cfg["mqtt.session.expiry"] = "2m"
			connecttest.CheckSource(t, connecttest.Registered(t, mqttsource.Name), connecttest.SourceAcceptance{
				Config: tc.cfg,
				Write: func(ctx context.Context, rows []map[string]any) error {
					for _, row := range rows {
						b, err := json.Marshal(row)
						if err != nil {
							return err
						}
						topic := fmt.Sprintf("%s/%s/reading", base, row["id"])
						if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: b}); err != nil {
							return fmt.Errorf("publishing to %s: %w", topic, err)
						}
					}
					return nil
				},
				Resumes: true,
			})
		})
	}
}

// newPublisher connects an MQTT v5 client to the test broker, disconnected when the test
// ends.
func newPublisher(t *testing.T, server string) *paho.Client {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to the test broker: %v", err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	id := strings.ReplaceAll(connecttest.UniqueName("acc-pub"), "-", "")
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("MQTT CONNECT: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}
