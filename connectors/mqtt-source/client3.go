package mqttsource

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// MQTT 3.1.1 goes through paho.mqtt.golang, the Eclipse client made for it (paho.golang
// speaks only v5). What the protocol lacks:
//   - no session expiry: clean session off keeps the session until the broker's own limit
//     (Mosquitto: persistent_client_expiration); mqtt.session.expiry=0 means clean session on;
//   - no Receive Maximum: the broker's limit on messages in flight applies (Mosquitto:
//     max_inflight_messages, 20 by default);
//   - no properties: no user property, content type or expiry headers;
//   - no shared subscriptions in the protocol: $share/<group>/<filter> is a broker extension
//     that Mosquitto, HiveMQ, EMQX and VerneMQ accept from 3.1.1 clients too.
//
// paho.mqtt.golang's own reconnection is off: this client reconnects with the task's backoff,
// so that each attempt is explained like those of the v5 client, and so that every connection
// gets an ack queue of its own.

// connOptions3 is what differs between a task's 3.1.1 connection and a connection test.
type connOptions3 struct {
	clientID     string
	clean        bool                                      // clean session
	onUp         func(c mqtt3.Client, sessionPresent bool) // called in a goroutine of its own
	onDown       func() bool                               // the connection was lost; reconnect?
	onConnectErr func(*connectError)
	onPublish    func(*delivery)
}

// client3 is an MQTT 3.1.1 connection that reconnects.
type client3 struct {
	cfg     *Config
	opts    connOptions3
	servers []*url.URL
	tlsCfg  *tls.Config
	c       mqtt3.Client
	cur     atomic.Pointer[conn] // the connection being made or up
	lost    chan error
	stop    chan struct{}
	stopped chan struct{}
	log     *slog.Logger
}

// newConnection3 connects in the background to the first server that answers, and
// reconnects with backoff when the connection is lost.
func newConnection3(ctx context.Context, cfg *Config, opts connOptions3, log *slog.Logger) (*client3, error) {
	o := mqtt3.NewClientOptions()
	c := &client3{cfg: cfg, opts: opts, lost: make(chan error, 1), stop: make(chan struct{}), stopped: make(chan struct{}), log: log}
	servers, anyTLS, err := cfg.servers()
	if err != nil {
		return nil, err
	}
	c.servers = servers
	for _, s := range cfg.ServerURIs {
		o.AddBroker(strings.TrimSpace(s))
	}
	if anyTLS {
		tc, err := cfg.tlsConfig("")
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
		c.tlsCfg = tc
	}
	o.SetProtocolVersion(4) // 3.1.1, without falling back to 3.1
	o.SetClientID(opts.clientID)
	o.SetCleanSession(opts.clean)
	o.SetUsername(cfg.Username)
	o.SetPassword(cfg.Password)
	o.SetKeepAlive(cfg.KeepAlive)
	o.SetPingTimeout(min(cfg.KeepAlive, 10*time.Second))
	o.SetConnectTimeout(min(cfg.ConnectTimeout, 10*time.Second))
	o.SetWriteTimeout(min(cfg.ConnectTimeout, 10*time.Second))
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetOrderMatters(true) // one goroutine hands messages over, in order
	o.SetAutoAckDisabled(true)
	// Every message goes through the default handler: a kept session's messages may come
	// before the subscription is made again.
	o.SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
		cn := c.cur.Load()
		d := &delivery{pub: &paho.Publish{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained(), PacketID: m.MessageID()},
			conn: cn, arrived: time.Now(), msg3: m}
		if m.Qos() > 0 {
			cn.v3.add(d)
		}
		if opts.onPublish != nil {
			opts.onPublish(d)
		} else {
			m.Ack()
		}
	})
	o.SetConnectionLostHandler(func(_ mqtt3.Client, err error) {
		select {
		case c.lost <- err:
		default:
		}
	})
	c.c = mqtt3.NewClient(o)
	go c.run(ctx)
	return c, nil
}

// run connects, waits for the connection to be lost, and reconnects, until stopped.
func (c *client3) run(ctx context.Context) {
	defer close(c.stopped)
	next := backoff(c.cfg.BackoffMin, c.cfg.BackoffMax)
	for attempt := 0; ; attempt++ {
		if wait := next(attempt); wait > 0 {
			select {
			case <-time.After(wait):
			case <-c.stop:
				return
			case <-ctx.Done():
				return
			}
		}
		c.cur.Store(&conn{v3: &ackQueue{}})
		tok := c.c.Connect()
		select {
		case <-tok.Done():
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		}
		if err := tok.Error(); err != nil {
			if rc := tok.(*mqtt3.ConnectToken).ReturnCode(); rc >= 1 && rc <= 5 {
				err = &connackError3{code: rc, err: err}
			}
			if c.opts.onConnectErr != nil {
				c.opts.onConnectErr(explainAttempt(ctx, c.cfg, c.servers, c.tlsCfg, err))
			}
			continue
		}
		present := tok.(*mqtt3.ConnectToken).SessionPresent()
		if c.opts.onUp != nil {
			go c.opts.onUp(c.c, present)
		}
		select {
		case err := <-c.lost:
			if c.log != nil {
				c.log.Warn("MQTT connection lost", "err", err)
			}
			if c.opts.onDown != nil && !c.opts.onDown() {
				return
			}
			attempt = -1 // the first attempt to reconnect goes at once
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// disconnect stops reconnecting and disconnects, keeping the session; paho.mqtt.golang
// sends what is queued (acknowledgements) within the quiesce time first.
func (c *client3) disconnect(ctx context.Context) error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	select {
	case <-c.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Also when a connection attempt is under way: paho then drops what it makes.
	c.c.Disconnect(250)
	return nil
}

// ackQueue acknowledges a connection's QoS 1 and 2 messages in the order they arrived, as
// MQTT asks [MQTT-4.6.0-2]: a message Kafka acknowledged waits for those before it.
type ackQueue struct {
	send    sync.Mutex // held while sending, so that acknowledgements go out in order
	mu      sync.Mutex // guards pending, head and delivery.acked
	pending []*delivery
	head    int
	ready   []*delivery // guarded by send
}

func (q *ackQueue) add(d *delivery) {
	q.mu.Lock()
	q.pending = append(q.pending, d)
	q.mu.Unlock()
}

func (q *ackQueue) ack(d *delivery) {
	q.send.Lock()
	defer q.send.Unlock()
	q.mu.Lock()
	d.acked = true
	q.ready = q.ready[:0]
	for q.head < len(q.pending) && q.pending[q.head].acked {
		q.ready = append(q.ready, q.pending[q.head])
		q.pending[q.head] = nil
		q.head++
	}
	if q.head == len(q.pending) {
		q.pending, q.head = q.pending[:0], 0
	} else if q.head > 1024 && q.head > len(q.pending)/2 {
		n := copy(q.pending, q.pending[q.head:])
		clear(q.pending[n:])
		q.pending, q.head = q.pending[:n], 0
	}
	q.mu.Unlock()
	for i, r := range q.ready {
		r.msg3.Ack()
		q.ready[i] = nil
	}
}

// start3 starts the task's MQTT 3.1.1 client; it connects in the background.
func (t *Task) start3(ctx context.Context, onConnectErr func(*connectError)) (mqttClient, error) {
	persistent := t.cfg.SessionExpiry > 0
	if t.cfg.CleanStart && persistent {
		// 3.1.1 has no clean start with a session that outlives the connection: end the kept
		// session with a clean connection first.
		discardSession3(ctx, &t.cfg, t.clientID, t.log)
	}
	var c *client3
	c, err := newConnection3(ctx, &t.cfg, connOptions3{
		clientID: t.clientID,
		clean:    !persistent,
		onUp: func(mc mqtt3.Client, present bool) {
			t.log.Info("connected to the MQTT broker", "client", t.clientID, "session_present", present, "mqtt_version", Version311)
			t.subscribed(t.subscribe3(mc, present))
		},
		onDown:       t.connectionDown,
		onConnectErr: onConnectErr,
		onPublish:    t.deliver,
	}, t.log)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// subscribe3 subscribes to the filters, first dropping the other form (shared or plain) in
// a kept session.
func (t *Task) subscribe3(mc mqtt3.Client, present bool) error {
	wait := func(tok mqtt3.Token) error {
		if !tok.WaitTimeout(t.cfg.ConnectTimeout) {
			return fmt.Errorf("no answer within mqtt.connect.timeout (%s)", t.cfg.ConnectTimeout)
		}
		return tok.Error()
	}
	if present {
		t.subscribed(nil) // the kept session holds the subscriptions: let Poll drain its backlog (see client5.subscribe)
		if err := wait(mc.Unsubscribe(t.otherForm()...)); err != nil {
			t.log.Debug("dropping the other form of the subscriptions failed", "err", err)
		}
	}
	filters := make(map[string]byte, len(t.filters))
	for _, f := range t.filters {
		filters[f] = byte(t.cfg.QoS)
	}
	tok := mc.SubscribeMultiple(filters, nil)
	if err := wait(tok); err != nil {
		if present && !tok.WaitTimeout(0) {
			t.log.Warn("the broker has not answered the subscription yet; the kept session holds it", "client", t.clientID, "filters", t.filters)
			return nil
		}
		return fmt.Errorf("mqtt-source: subscribing to %s: %w", strings.Join(t.filters, ", "), err)
	}
	var refused []string
	for _, f := range t.filters {
		code, ok := tok.(*mqtt3.SubscribeToken).Result()[f]
		switch {
		case !ok:
		case code == 0x80:
			why := "the broker's access rules or the filter"
			if strings.HasPrefix(f, "$share/") {
				why = "the broker's access rules, or shared subscriptions, which MQTT 3.1.1 lacks and this broker may not offer to 3.1.1 clients (set mqtt.shared.subscription=never and run one task)"
			}
			refused = append(refused, fmt.Sprintf("%q: failure (0x80); check %s", f, why))
		case int(code) < t.cfg.QoS:
			t.log.Warn("the broker granted a lower QoS than mqtt.qos", "filter", f, "granted", code, "asked", t.cfg.QoS)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("mqtt-source: the broker refused the subscription to %s", strings.Join(refused, "; "))
	}
	return nil
}

// discardSession3 connects once with clean session on and disconnects, which ends the
// session the broker kept for the client id.
func discardSession3(ctx context.Context, cfg *Config, clientID string, log *slog.Logger) {
	one := *cfg
	one.BackoffMin, one.BackoffMax = time.Hour, time.Hour
	up := make(chan struct{}, 1)
	c, err := newConnection3(ctx, &one, connOptions3{clientID: clientID, clean: true,
		onUp: func(mqtt3.Client, bool) { up <- struct{}{} },
		onConnectErr: func(*connectError) {
			select {
			case up <- struct{}{}:
			default:
			}
		}}, log)
	if err != nil {
		return
	}
	select {
	case <-up:
	case <-time.After(one.ConnectTimeout):
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.disconnect(dctx); err != nil && log != nil {
		log.Debug("ending the kept session", "err", err)
	}
}
