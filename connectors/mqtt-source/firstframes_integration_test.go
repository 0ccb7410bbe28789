package mqttsource_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// TestFirstMessagesOnANewTopicReachKafka publishes to many MQTT topics the moment both tasks
// of a shared subscription have subscribed, while the tasks are creating their new Kafka topic
// with six partitions (issue 16, item 0: two first frames of a chaos run never reached Kafka).
//
// It reproduces the open defect about one run in five on a busy machine (in-process, in a
// minute): the lost messages were received by a task and acknowledged to the broker, and all
// of one task's lost messages are its first to one partition (murmur2 of their keys). Until
// the fix it runs only with SLUICE_TEST_ITEM0=1 (go test -count=20), so that make test, which
// must pass to land anything, is not red one run in five for a defect known and open.
func TestFirstMessagesOnANewTopicReachKafka(t *testing.T) {
	if os.Getenv("SLUICE_TEST_ITEM0") == "" {
		t.Skip("reproduces issue 16 item 0 (open: first messages acknowledged upstream but not in Kafka); run with SLUICE_TEST_ITEM0=1 -count=20")
	}
	c := sluicetest.NewCluster(t)
	server := connecttest.Env(t, connecttest.EnvMQTT)
	ws := []*sluicetest.Worker{c.StartWorker(nil), c.StartWorker(nil)}
	w := ws[0]
	// Debug logs trace each connection's first messages and acknowledgements, so a failure
	// says whether a missing message reached a task and was acknowledged to the broker.
	for _, x := range ws {
		sluicetest.Call(t, "PUT", x.URL+"/admin/loggers/sluice.connector", map[string]string{"level": "DEBUG"}, nil)
	}
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
		for _, i := range m[:min(5, len(m))] {
			topic := fmt.Sprintf("topic=%s/dev-%03d ", base, i%100)
			var traced []string
			for _, line := range strings.Split(c.Logs.String(), "\n") {
				if strings.Contains(line, topic) {
					traced = append(traced, line)
				}
			}
			t.Logf("message %d (%s): %d trace lines:\n%s", i, topic, len(traced), strings.Join(traced, "\n"))
		}
		var twice []string
		for v, k := range seen {
			if k > 1 {
				twice = append(twice, fmt.Sprintf("%s×%d", v, k))
			}
		}
		t.Fatalf("%d of %d messages missing: %v; values seen more than once: %v", len(m), n, m[:min(10, len(m))], twice)
	}
}
