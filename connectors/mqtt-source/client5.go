package mqttsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// client5 is a task's MQTT v5 client: paho.golang's autopaho, with manual acknowledgements
// that paho sends in order every ackInterval.
type client5 struct {
	t  *Task
	cm *autopaho.ConnectionManager
}

// start5 starts the task's autopaho connection manager; it connects in the background.
func (t *Task) start5(ctx context.Context, onConnectErr func(*connectError)) (mqttClient, error) {
	c := &client5{t: t}
	cm, err := newConnection(ctx, &t.cfg, connOptions{
		clientID:      t.clientID,
		cleanStart:    t.cfg.CleanStart,
		sessionExpiry: t.cfg.SessionExpiry,
		onUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			t.log.Info("connected to the MQTT broker", "client", t.clientID, "session_present", ack.SessionPresent, "mqtt_version", Version5)
			go func() { t.subscribed(c.subscribe(cm, ack)) }()
		},
		onDown:       t.connectionDown,
		onConnectErr: onConnectErr,
		onDisconnect: func(d *paho.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			err := fmt.Errorf("mqtt-source: the broker closed the connection: %s", disconnectReason(d.ReasonCode, reason))
			if d.ReasonCode == 0x8E { // session taken over: reconnecting would take it back
				t.fail(err)
				return
			}
			t.log.Warn("the broker closed the connection; reconnecting", "client", t.clientID, "err", err)
		},
		onClientError: func(err error) {
			t.log.Warn("MQTT connection lost; reconnecting", "client", t.clientID, "err", err)
		},
		onPublish: c.received,
	}, t.log)
	if err != nil {
		return nil, err
	}
	c.cm = cm
	return c, nil
}

// received is the client's message handler.
func (c *client5) received(pr paho.PublishReceived) (bool, error) {
	cn := c.t.current.Load()
	if cn == nil || cn.v5 != pr.Client {
		cn = &conn{v5: pr.Client}
	}
	c.t.deliver(&delivery{pub: pr.Packet, conn: cn, arrived: time.Now()})
	return true, nil
}

func (c *client5) disconnect(ctx context.Context) error {
	if c.t.current.Load() != nil {
		// paho sends due acknowledgements every ackInterval; give it a few.
		time.Sleep(3 * ackInterval)
	}
	return c.cm.Disconnect(ctx)
}

// subscribe subscribes to the filters. When the session was kept, it first drops the other
// form of each subscription (shared or plain), left from a run with another tasks.max.
func (c *client5) subscribe(cm *autopaho.ConnectionManager, ack *paho.Connack) error {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.ConnectTimeout)
	defer cancel()
	sharedAvailable := ack.Properties == nil || ack.Properties.SharedSubAvailable
	if ack.SessionPresent {
		// The kept session holds the subscriptions already and the broker sends its backlog
		// first: Start must return now so that Poll drains it, or a backlog larger than
		// buffer.size stops the reading before the SUBACK is read (Start then timed out
		// and the task failed for good, leaving its share of the stream in the session).
		t.subscribed(nil)
	}
	if ack.SessionPresent && (t.shared || sharedAvailable) {
		if _, err := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: t.otherForm()}); err != nil {
			t.log.Debug("dropping the other form of the subscriptions failed", "err", err)
		}
	}
	sub := &paho.Subscribe{}
	for _, f := range t.filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: byte(t.cfg.QoS), RetainHandling: 1})
	}
	sa, err := cm.Subscribe(ctx, sub)
	if sa != nil {
		var refused []string
		for i, code := range sa.Reasons {
			if i >= len(t.filters) {
				break
			}
			if code >= 0x80 {
				refused = append(refused, fmt.Sprintf("%q: %s", t.filters[i], subackReason(code)))
			} else if int(code) < t.cfg.QoS {
				t.log.Warn("the broker granted a lower QoS than mqtt.qos", "filter", t.filters[i], "granted", code, "asked", t.cfg.QoS)
			}
		}
		if len(refused) > 0 {
			return fmt.Errorf("mqtt-source: the broker refused the subscription to %s", strings.Join(refused, "; "))
		}
		return nil
	}
	if err != nil && ack.SessionPresent && errors.Is(err, context.DeadlineExceeded) {
		t.log.Warn("the broker has not answered the subscription yet; the kept session holds it", "client", t.clientID, "filters", t.filters)
		return nil
	}
	if err != nil {
		return fmt.Errorf("mqtt-source: subscribing to %s: %w", strings.Join(t.filters, ", "), err)
	}
	return nil
}
