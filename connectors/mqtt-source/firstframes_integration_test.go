package mqttsource_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// TestFirstMessagesOnANewTopicReachKafka publishes to many MQTT topics the moment both tasks
// of a shared subscription have subscribed, while the tasks are creating their new Kafka topic
// with six partitions (issue 16, item 0: two first frames of a chaos run never reached Kafka).
func TestFirstMessagesOnANewTopicReachKafka(t *testing.T) {
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	w := c.StartWorker(nil)
	c.StartWorker(nil)
	p := newPub(t)
	base := sluicetest.UniqueName("first")
	name := c.Prefix + "-mqtt"
	sluicetest.CreateConnector(t, w.URL, name, mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server, "tasks.max": "2",
		"topic.creation.default.partitions": "6", "key.source": "topic"}))
	for i := range 2 {
		waitSubscribed(t, c.Logs, clientID(base+"/#", name, i))
	}
	const n = 400
	for i := range n {
		p.publish(fmt.Sprintf("%s/dev-%03d", base, i%100), 1, fmt.Sprint(i), nil)
	}
	seen := distinct(t, c.Bootstrap, base, n, time.Minute)
	if m := missing(seen, n); len(m) > 0 {
		t.Fatalf("%d of %d messages missing: %v", len(m), n, m[:min(10, len(m))])
	}
}
