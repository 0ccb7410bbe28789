package mqttsource_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
	mqttsource "github.com/sluicehq/sluice/connectors/mqtt-source"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// TestOrphanedSessionsAreEnded: after tasks.max is lowered, the client id prefix changes, or
// the connector is deleted and made again (with another prefix and fewer tasks), the sessions
// of the tasks that no longer exist are ended, so that they take no share of the shared
// subscription group: every message published afterwards reaches Kafka. Each case runs a real
// worker against the test broker, with MQTT v5 and 3.1.1.
func TestOrphanedSessionsAreEnded(t *testing.T) {
	mqttsource.ShortenTidyDelays(t)
	cases := []struct {
		change  string
		version string
	}{
		{"tasks.max 3 to 2", "5"},
		{"tasks.max 3 to 2", "3.1.1"},
		{"prefix", "5"},
		{"prefix", "3.1.1"},
		{"delete and recreate", "5"},
		{"delete and recreate", "3.1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.change+"/"+tc.version, func(t *testing.T) {
			base := sluicetest.UniqueName("orphan")
			filter := base + "/#"
			const name = "orph"
			cfg := mqttConfig(filter, base, map[string]string{"mqtt.server.uris": connecttest.Env(t, connecttest.EnvMQTT),
				"tasks.max": "3", "mqtt.protocol.version": tc.version,
				// A list of client ids of this test's own (the connector's name is not), under
				// the tasks' filter, which they must skip.
				"mqtt.session.registry.topic": base + "/sessions/{connector}"})
			oldPrefix, newPrefix := cfg["mqtt.client.id.prefix"], cfg["mqtt.client.id.prefix"]+"b-"
			idOf := func(prefix string, task int) string { return fmt.Sprintf("%s%s-%d", prefix, name, task) }
			if tc.version == "3.1.1" { // 3.1.1 sessions do not expire: leave none behind
				for i := range 3 {
					endSession(t, idOf(oldPrefix, i))
					endSession(t, idOf(newPrefix, i))
				}
			}
			c := sluicetest.NewCluster(t)
			w := c.StartWorker(nil)
			p := newPub(t)
			count := func(s string) int { return strings.Count(c.Logs.String(), s) }
			subs := func(id string) int {
				n := 0
				for _, line := range strings.Split(c.Logs.String(), "\n") {
					if strings.Contains(line, "msg=subscribed") && strings.Contains(line, "client="+id+" ") {
						n++
					}
				}
				return n
			}
			tidied := func() int { return count(`msg="MQTT sessions tidied`) }
			ended := func(id string) bool {
				for _, line := range strings.Split(c.Logs.String(), "\n") {
					if strings.Contains(line, `msg="ended the MQTT session of a task that no longer exists`) && strings.Contains(line, "client="+id+" ") {
						return true
					}
				}
				return false
			}

			sluicetest.CreateConnector(t, w.URL, name, cfg)
			sluicetest.WaitState(t, w.URL, name, api.StateRunning, 3)
			for i := range 3 {
				waitSubscribed(t, c.Logs, idOf(oldPrefix, i))
			}
			sluicetest.Eventually(t, time.Minute, "the first tidying", func() (bool, string) { return tidied() == 1, fmt.Sprint(tidied()) })

			var orphans, live []string
			switch tc.change {
			case "tasks.max 3 to 2":
				cfg["tasks.max"] = "2"
				orphans, live = []string{idOf(oldPrefix, 2)}, []string{idOf(oldPrefix, 0), idOf(oldPrefix, 1)}
			case "prefix":
				cfg["mqtt.client.id.prefix"] = newPrefix
				orphans = []string{idOf(oldPrefix, 0), idOf(oldPrefix, 1), idOf(oldPrefix, 2)}
				live = []string{idOf(newPrefix, 0), idOf(newPrefix, 1), idOf(newPrefix, 2)}
			case "delete and recreate":
				cfg["mqtt.client.id.prefix"], cfg["tasks.max"] = newPrefix, "2"
				live = []string{idOf(newPrefix, 0), idOf(newPrefix, 1)}
			}
			tidiedBefore := tidied()
			before := map[string]int{}
			for _, id := range live {
				before[id] = subs(id)
			}
			if tc.change == "delete and recreate" {
				if code := sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil); code >= 300 {
					t.Fatalf("delete: %d", code)
				}
				sluicetest.Eventually(t, time.Minute, "the deleted connector's sessions ended", func() (bool, string) {
					return count("msg=\"ended the MQTT sessions of the deleted connector") == 1, "not in the log yet"
				})
				for i := range 3 {
					if !ended(idOf(oldPrefix, i)) {
						t.Errorf("the session of %s was not ended on deletion", idOf(oldPrefix, i))
					}
				}
				sluicetest.CreateConnector(t, w.URL, name, cfg)
			} else {
				if code := sluicetest.Call(t, "PUT", w.URL+"/connectors/"+name+"/config", cfg, nil); code >= 300 {
					t.Fatalf("update: %d", code)
				}
			}
			sluicetest.WaitState(t, w.URL, name, api.StateRunning, len(live))
			for _, id := range live {
				sluicetest.Eventually(t, time.Minute, id+" subscribed again", func() (bool, string) {
					return subs(id) > before[id], fmt.Sprint(subs(id), " subscriptions")
				})
			}
			// A tidying that began after the change (not necessarily the only one: a worker
			// that lost its group membership on a loaded machine restarts the connector).
			sluicetest.Eventually(t, time.Minute, "the tidying after the change", func() (bool, string) {
				return tidied() > tidiedBefore, fmt.Sprint(tidied())
			})
			for _, id := range orphans {
				sluicetest.Eventually(t, time.Minute, "the session of "+id+", a task that no longer exists, ended", func() (bool, string) {
					return ended(id), "not in the log yet"
				})
			}

			const n = 1500
			p.publishRange(base+"/d", 0, n)
			seen := distinct(t, c.Bootstrap, base, n, time.Minute)
			if m := missing(seen, n); len(m) > 0 {
				t.Fatalf("%d of %d messages missing in Kafka (taken by sessions of tasks that no longer exist?), first %v", len(m), n, m[:min(10, len(m))])
			}
			for v := range seen {
				if strings.HasPrefix(v, "{") || v == "end" {
					t.Errorf("the list of client ids reached Kafka: %q", v)
				}
			}
		})
	}
}
