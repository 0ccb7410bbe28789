// Package mqttsource is a source connector that subscribes to topics on an MQTT v5 or 3.1.1
// broker and writes each message to Kafka: the entry point of an IoT pipeline.
//
// Each task holds one MQTT connection (paho.golang's autopaho for v5, paho.mqtt.golang for
// 3.1.1, behind the package's mqttClient interface; both reconnect with backoff)
// with a persistent session: its client id stays the same across restarts and moves, clean
// start is off and the session outlives the connection by mqtt.session.expiry. Messages are
// acknowledged manually: a QoS 1 or 2 message is acknowledged to the broker only when Kafka
// acknowledged its record (Acknowledged), or the error policy dealt with it, so a task that
// dies loses nothing the broker accepted; the broker sends what was not acknowledged again
// (at least once). MQTT has no offsets: records carry no source partition, so the runtime
// stores nothing for them; each record's AckHandle carries its message's delivery back to
// Acknowledged.
//
// With more than one task, each subscribes through a shared subscription
// ($share/<group>/<filter>) and the broker splits the messages between them, wherever they
// run.
package mqttsource

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "mqtt-source"

func init() {
	connect.Register(connect.Plugin{
		Name: Name,
		Doc: "Subscribes to MQTT topic filters on an MQTT v5 or 3.1.1 broker and writes each message to Kafka, to one topic " +
			"or by mapping rules from topic filters to topics. The record value is the payload (bytes, a string or " +
			"parsed JSON); the key is the MQTT topic or a payload field such as the device id; the timestamp is the " +
			"arrival time or an event time from the payload; MQTT metadata and user properties become headers.\n\n" +
			"**Delivery.** Each task keeps a persistent session (client id `<mqtt.client.id.prefix><connector>-<task>`, " +
			"clean start off, `mqtt.session.expiry`) and acknowledges a QoS 1 or 2 message to the broker only after " +
			"Kafka acknowledged its record, so a task that is restarted, or whose worker dies, loses nothing the broker " +
			"accepted: the broker sends the unacknowledged messages again and they are written at least once. QoS 0 is " +
			"at most once. Payloads that cannot become records (key or timestamp extraction fails, not JSON or UTF-8 as " +
			"`payload.format` asks, larger than `payload.max.bytes`, no Kafka topic) go to the error policy: with " +
			"`errors.tolerance=all` and `errors.deadletterqueue.topic.name` they reach the dead-letter topic with the " +
			"`mqtt.*` headers and an `mqtt.error` header giving the reason, and the message is acknowledged.\n\n" +
			"**Scaling.** With `tasks.max` above 1 each task subscribes through an MQTT v5 shared subscription " +
			"(`$share/<group>/<filter>`), so the broker splits the stream between the tasks on all workers. The broker " +
			"keeps a session's subscriptions: when `mqtt.topics` loses a filter, sessions kept from before may go on " +
			"receiving it until they expire.\n\n" +
			"**Sessions of tasks that no longer exist.** A persistent session outlives its task, and while it lasts " +
			"(`mqtt.session.expiry`, 24 h by default; on MQTT 3.1.1 as long as the broker keeps it) it stays a member " +
			"of the shared subscription group: the broker goes on handing it its share of the messages, queued for a " +
			"client that never comes back and lost when the session expires. That happens after lowering `tasks.max`, " +
			"changing `mqtt.client.id.prefix`, deleting a connector, or deleting and creating it again. With " +
			"`mqtt.session.cleanup` (the default) the connector ends such sessions itself: it keeps the client ids it " +
			"gave its tasks in a retained message on `mqtt.session.registry.topic`, and when it plans its tasks it " +
			"ends (connecting with the client id, without keeping the session, then disconnecting) the sessions of the " +
			"ids no longer in use and of task numbers just above the current ones, at once and again after the tasks " +
			"settled; when the connector is deleted it ends all its sessions and removes the retained message. The " +
			"messages already queued for an ended session are dropped with it. The connector cannot see sessions it " +
			"did not make: MQTT has no way to list the members of a shared subscription, and Mosquitto shows none (its " +
			"`$SYS` topics give broker-wide counts only), so sessions left by other clients, by connectors from before " +
			"this cleanup with another client id prefix, or by a connector deleted while its worker was down stay " +
			"members until they expire; end them by connecting with their client ids and a clean start (or clean " +
			"session), or give the connector a group of its own (`mqtt.shared.group`). Two Sluice clusters that share " +
			"a broker and have connectors of the same name must set different `mqtt.session.registry.topic`s.\n\n" +
			"**Brokers.** `mqtt.protocol.version=auto` (the default) speaks MQTT v5 (paho.golang) and falls back to " +
			"MQTT 3.1.1 (paho.mqtt.golang) when the broker refuses the protocol version; `5` and `3.1.1` fix it. On " +
			"3.1.1 the same delivery promise holds (manual acknowledgement after Kafka, in arrival order, a persistent " +
			"session: clean session off unless `mqtt.session.expiry` is 0), but the protocol has no session expiry (the " +
			"broker keeps the session by its own rules), no Receive Maximum and no properties, so the headers are " +
			"`mqtt.topic`, `mqtt.qos`, `mqtt.retain` and `mqtt.message.id` only. Shared subscriptions are not in 3.1.1; " +
			"with `tasks.max` above 1 the tasks still subscribe with `$share/`, which Mosquitto, HiveMQ, EMQX and " +
			"VerneMQ accept from 3.1.1 clients; with a broker that does not, run one task " +
			"(`mqtt.shared.subscription=never`).\n\n" +
			"**Converters.** With `payload.format=bytes` set `value.converter` to `bytearray` to write payloads " +
			"unchanged (the JSON converter would write bytes as base64); with `payload.format=json` use the JSON " +
			"converter.\n\n" + benchmarkDoc,
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and plans the tasks: one with a plain subscription, or
// up to tasks.max sharing one. With mqtt.session.cleanup it ends the sessions of tasks that no
// longer exist (sessions.go).
type Connector struct {
	connect.TypedBase[Config]
	name string
	log  *slog.Logger

	planned chan []string // the client ids of the tasks last planned, for tidy
	cancel  context.CancelFunc
	done    chan struct{} // closed when tidy returned
}

// Connector checks that the server answers before a configuration is stored.
var _ connect.Validator = (*Connector)(nil)

var (
	_ connect.SourceConnector = (*Connector)(nil)
	_ connect.Deleter         = (*Connector)(nil)
)

// Start fails on an invalid configuration, so that it shows on the connector rather than on
// each task.
func (c *Connector) Start(ctx context.Context, cfg connect.Config, cc connect.ConnectorContext) error {
	if err := c.TypedBase.Start(ctx, cfg, cc); err != nil {
		return err
	}
	c.name = cfg["name"]
	if c.Typed.SessionCleanup && c.name != "" {
		c.log = slog.Default()
		if cc != nil {
			c.log = cc.Logger()
		}
		c.planned = make(chan []string, 1)
		c.done = make(chan struct{})
		var tctx context.Context
		tctx, c.cancel = context.WithCancel(context.Background())
		go c.tidy(tctx)
	}
	return nil
}

// TaskConfigs returns one task without shared subscriptions (mqtt.shared.subscription=never,
// or auto with tasks.max 1), else tasks.max tasks that share.
func (c *Connector) TaskConfigs(maxTasks int) ([]connect.Config, error) {
	if maxTasks < 1 {
		return nil, nil
	}
	shared := c.Typed.Shared
	switch {
	case shared == SharedNever || shared == SharedAuto && maxTasks == 1:
		maxTasks, shared = 1, SharedNever
	default:
		shared = SharedAlways
	}
	out := make([]connect.Config, maxTasks)
	for i := range out {
		out[i] = maps.Clone(c.Config)
		out[i]["mqtt.shared.subscription"] = shared
	}
	if c.planned != nil {
		ids := c.Typed.clientIDs(c.name, maxTasks)
		select { // the latest plan replaces one tidy has not taken yet
		case <-c.planned:
		default:
		}
		c.planned <- ids
	}
	return out, nil
}

// Stop stops ending sessions; the next start of the connector takes it up again.
func (c *Connector) Stop() error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	return c.Base.Stop()
}

// tidy ends the sessions of tasks that no longer exist, in passes after each plan of the
// tasks (tidyDelays), and records the client ids in use. A pass that fails (the broker is
// unreachable, say) is tried again with backoff.
func (c *Connector) tidy(ctx context.Context) {
	defer close(c.done)
	s := newSessions(&c.Typed, c.name, c.log)
	var inUse []string
	pass, failures := 0, 0
	var due <-chan time.Time
	retry := backoff(c.Typed.BackoffMin, c.Typed.BackoffMax)
	for {
		select {
		case <-ctx.Done():
			return
		case inUse = <-c.planned:
			pass, failures = 0, 0
			due = time.After(tidyDelays[0])
			continue
		case <-due:
		}
		last := pass == len(tidyDelays)-1
		err := c.tidyPass(ctx, s, inUse, pass == 0, last)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			level := slog.LevelWarn
			if failures > 1 {
				level = slog.LevelDebug
			}
			c.log.Log(ctx, level, "ending the MQTT sessions of tasks that no longer exist failed; trying again", "err", err, "failures", failures)
			due = time.After(retry(failures))
		case last:
			due = nil
		default:
			pass, failures = pass+1, 0
			due = time.After(tidyDelays[pass])
		}
	}
}

// tidyPass reads the list of client ids; the first pass adds those in use to it (so that a
// connector stopped before the last pass still knows them); every pass ends the sessions of
// the ids not in use; the last leaves only those in use on the list.
func (c *Connector) tidyPass(ctx context.Context, s *sessions, inUse []string, first, last bool) error {
	var listed []string
	err := s.list(ctx, func(old []string) []string {
		listed = old
		if first {
			return union(old, inUse)
		}
		return old
	})
	if err != nil {
		return err
	}
	ended, err := s.endUnused(ctx, listed, inUse)
	if err != nil {
		return err
	}
	if last {
		if err := s.list(ctx, func([]string) []string { return inUse }); err != nil {
			return err
		}
		c.log.Info("MQTT sessions tidied: the list names the client ids in use", "client_ids", inUse,
			"topic", c.Typed.registryTopic(c.name), "ended", ended)
	}
	return nil
}

// Deleted ends the sessions of all the connector's tasks (those on the list and those that
// tasks.max allows), again after deletedSettle for the ones tasks on other workers were still
// stopping, and removes the list.
func (c *Connector) Deleted(ctx context.Context, raw connect.Config, log *slog.Logger) error {
	cfg, err := connect.Decode[Config](raw)
	name := raw["name"]
	if err != nil || !cfg.SessionCleanup || name == "" {
		return nil // a connector that never decoded never ran
	}
	s := newSessions(&cfg, name, log)
	n, _ := strconv.Atoi(raw["tasks.max"])
	var listed []string
	if err := s.list(ctx, func(old []string) []string { listed = old; return old }); err != nil {
		return fmt.Errorf("mqtt-source: %w", err)
	}
	all := union(listed, cfg.clientIDs(name, max(n, 1)))
	ended, err := s.endUnused(ctx, all, nil)
	if err != nil {
		return fmt.Errorf("mqtt-source: %w", err)
	}
	if len(ended) > 0 {
		select {
		case <-time.After(deletedSettle):
		case <-ctx.Done():
			return fmt.Errorf("mqtt-source: ending the sessions of the deleted connector: %w", ctx.Err())
		}
		again, err := s.endUnused(ctx, ended, nil)
		if err != nil {
			return fmt.Errorf("mqtt-source: %w", err)
		}
		ended = union(ended, again)
	}
	if err := s.list(ctx, func([]string) []string { return nil }); err != nil {
		return fmt.Errorf("mqtt-source: %w", err)
	}
	log.Info("ended the MQTT sessions of the deleted connector and removed its list of client ids", "ended", ended,
		"topic", cfg.registryTopic(name))
	return nil
}

// Validate tries the servers once with a throwaway client id (the tasks' sessions stay as they
// are), so that validating, creating or changing the connector says at once when the broker
// refuses the certificate or credentials. An unreachable broker is not an error: it may come
// up later, and the tasks wait for it.
func (c *Connector) Validate(ctx context.Context, raw connect.Config) error {
	cfg, err := connect.Decode[Config](raw)
	if err != nil || !cfg.TestConnect {
		return err
	}
	if err := testConnection(ctx, &cfg, nil); err != nil {
		return &connect.FieldError{Key: "mqtt.server.uris", Message: err.Error()}
	}
	return nil
}

// NewTask returns a task that subscribes.
func (*Connector) NewTask() connect.SourceTask { return &Task{} }
