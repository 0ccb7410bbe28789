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
// stores nothing for them, and each record's SourceOffset only carries its message's delivery
// handle back to Acknowledged.
//
// With more than one task, each subscribes through a shared subscription
// ($share/<group>/<filter>) and the broker splits the messages between them, wherever they
// run.
package mqttsource

import (
	"context"
	"fmt"
	"maps"

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
			"receiving it until they expire; after lowering `tasks.max`, messages the broker had queued for a removed " +
			"task's session stay there until it expires.\n\n" +
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
// up to tasks.max sharing one.
type Connector struct{ connect.Base }

var _ connect.SourceConnector = (*Connector)(nil)

// Start fails on an invalid configuration, so that it shows on the connector rather than on
// each task.
func (c *Connector) Start(ctx context.Context, cfg connect.Config, cc connect.ConnectorContext) error {
	if _, err := connect.Decode[Config](cfg); err != nil {
		return fmt.Errorf("mqtt-source: invalid configuration: %w", err)
	}
	return c.Base.Start(ctx, cfg, cc)
}

// TaskConfigs returns one task without shared subscriptions (mqtt.shared.subscription=never,
// or auto with tasks.max 1), else tasks.max tasks that share.
func (c *Connector) TaskConfigs(maxTasks int) ([]connect.Config, error) {
	if maxTasks < 1 {
		return nil, nil
	}
	cfg, err := connect.Decode[Config](c.Config)
	if err != nil {
		return nil, err
	}
	shared := cfg.Shared
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
	return out, nil
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
