package task

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The sink consumer takes librdkafka's setting names (the worker's consumer.* and a
// connector's consumer.override.*, as before it was franz-go's): known ones are translated,
// bad values name the setting and the value, and settings it cannot use are reported.
func TestSinkConsumerSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		unused   []string
		err      string
		// client, when set, checks the options on a client made from them (not connected).
		client func(t *testing.T, cl *kgo.Client)
	}{
		{name: "Sluice's own defaults", settings: map[string]string{"group.id": "connect-x", "auto.offset.reset": "earliest",
			"partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": "10000", "heartbeat.interval.ms": "3000"}},
		{name: "librdkafka-only settings are dropped quietly", settings: map[string]string{"queued.min.messages": "1000000", "enable.auto.commit": "false"}},
		{name: "fetch and group settings", settings: map[string]string{"fetch.max.bytes": "1048576", "max.partition.fetch.bytes": "65536",
			"fetch.wait.max.ms": "50", "fetch.min.bytes": "1", "max.poll.interval.ms": "300000", "isolation.level": "read_uncommitted",
			"group.instance.id": "w1", "client.rack": "a", "partition.assignment.strategy": "range,roundrobin"}},
		{name: "security settings go to the TLS and SASL options", settings: map[string]string{"security.protocol": "SASL_PLAINTEXT",
			"sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"}},
		{name: "unknown settings are reported", settings: map[string]string{"max.poll.records": "10", "check.crcs": "true"},
			unused: []string{"check.crcs", "max.poll.records"}},
		{name: "security settings without a counterpart are reported", settings: map[string]string{"ssl.ca.location": "/ca.pem",
			"ssl.endpoint.identification.algorithm": "none", "sasl.oauthbearer.config": "x"},
			unused: []string{"sasl.oauthbearer.config", "ssl.endpoint.identification.algorithm"}},
		{name: "a connector's bootstrap.servers and client.id override the worker's", settings: map[string]string{
			"bootstrap.servers": "other:9092", "client.id": "mine", "group.id": "connect-x"}, client: func(t *testing.T, cl *kgo.Client) {
			if id := cl.OptValue(kgo.ClientID); id != "mine" {
				t.Errorf("client id %v", id)
			}
			if seeds := cl.OptValue(kgo.SeedBrokers); !slices.Equal(seeds.([]string), []string{"other:9092"}) {
				t.Errorf("seed brokers %v", seeds)
			}
		}},
		{name: "the worker's bootstrap servers otherwise", settings: map[string]string{"group.id": "connect-x"}, client: func(t *testing.T, cl *kgo.Client) {
			if seeds := cl.OptValue(kgo.SeedBrokers); !slices.Equal(seeds.([]string), []string{"127.0.0.1:9092"}) {
				t.Errorf("seed brokers %v", seeds)
			}
		}},
		{name: "a bad duration", settings: map[string]string{"session.timeout.ms": "10s"}, err: `session.timeout.ms: "10s"`},
		{name: "a bad size", settings: map[string]string{"fetch.max.bytes": "-1"}, err: `fetch.max.bytes: "-1"`},
		{name: "a bad reset", settings: map[string]string{"auto.offset.reset": "oldest"}, err: `auto.offset.reset: "oldest"`},
		{name: "a bad strategy", settings: map[string]string{"partition.assignment.strategy": "sticky"}, err: `"sticky"`},
		{name: "Kafka Connect's name of the fetch wait", settings: map[string]string{"group.id": "connect-x", "fetch.max.wait.ms": "100"}, client: func(t *testing.T, cl *kgo.Client) {
			if d := cl.OptValue(kgo.FetchMaxWait); d != 100*time.Millisecond {
				t.Errorf("fetch max wait %v", d)
			}
		}},
		{name: "a fetch wait under franz-go's least", settings: map[string]string{"fetch.wait.max.ms": "5"}, err: `fetch.wait.max.ms: "5" is under 10`},
		{name: "a bad isolation level", settings: map[string]string{"isolation.level": "dirty"}, err: `isolation.level: "dirty"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, unused, err := newSinkConsumer("127.0.0.1:9092", "test", tc.settings)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(unused, tc.unused) {
				t.Errorf("unused %v, want %v", unused, tc.unused)
			}
			if tc.client != nil {
				cl, err := kgo.NewClient(c.opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				tc.client(t, cl)
			}
		})
	}
}
