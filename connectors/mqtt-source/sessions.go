package mqttsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// Each task keeps a persistent session, and with more than one task the sessions are members
// of one shared subscription group. A session outlives its task: after tasks.max was lowered,
// mqtt.client.id.prefix changed, or the connector was deleted and made again, the sessions of
// tasks that no longer exist stay members of the group, and the broker goes on handing them
// their share of the messages, queued for clients that never come back and lost when the
// sessions expire. MQTT gives no way to list a group's members (Mosquitto shows none, only
// broker-wide counts in $SYS), so the connector keeps its own list: a retained message on
// mqtt.session.registry.topic naming the client ids its tasks were given. When the connector
// plans its tasks it records the new ids in that list, ends the sessions of the ids that left
// it (and of task numbers just above the current ones, which a connector from before the list
// existed may have left), and, once the tasks have settled, writes the list of the ids in use.
// A deleted connector ends all its sessions and removes the list (Connector.Deleted).

// tidyDelays are the waits before the passes that end the sessions no longer in use, after
// the tasks were planned: at once, so that the orphaned sessions stop taking messages, and
// again after tasks on other workers had time to stop (a task stopping late, or started once
// more with its old configuration meanwhile, may have made its session again; an MQTT 3.1.1
// task whose session was ended under it reconnects). The last pass writes the list.
var tidyDelays = []time.Duration{0, 5 * time.Second, 30 * time.Second}

// deletedSettle is how long Deleted waits before ending again the sessions that were there,
// for tasks on other workers that were still stopping.
var deletedSettle = 2 * time.Second

// maxProbe bounds the task numbers above the current ones whose sessions a pass ends.
const maxProbe = 64

// registry is the retained message that lists a connector's client ids.
type registry struct {
	Connector string   `json:"connector"`
	ClientIDs []string `json:"client.ids"`
}

// registryTopic is the topic of a connector's list of client ids.
func (c Config) registryTopic(connector string) string {
	return strings.ReplaceAll(c.RegistryTopic, "{connector}", connector)
}

// clientIDs are the client ids of tasks 0..n-1.
func (c Config) clientIDs(connector string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.clientID(connector, i)
	}
	return ids
}

// sessions ends a connector's sessions and keeps its list of client ids, over connections of
// their own.
type sessions struct {
	cfg     *Config
	name    string
	log     *slog.Logger
	version string // the protocol version that works: Version5 or Version311; "" until known
}

func newSessions(cfg *Config, name string, log *slog.Logger) *sessions {
	s := &sessions{cfg: cfg, name: name, log: log}
	if cfg.ProtocolVersion != VersionAuto {
		s.version = cfg.ProtocolVersion
	}
	return s
}

// errVersionRefused says every server refused MQTT v5.
var errVersionRefused = errors.New("the broker refused MQTT v5")

// adminConn is one short connection.
type adminConn interface {
	subscribe(ctx context.Context, topics ...string) error
	publish(ctx context.Context, topic string, payload []byte, retain bool) error
	close()
}

// message is a message an admin connection received.
type message struct {
	topic   string
	payload []byte
}

// dial connects once with the client id, going down the server list; clean asks for clean
// start (MQTT v5, with the session ending with the connection) or clean session (3.1.1). It
// reports whether the broker had a session for the id. With mqtt.protocol.version=auto it
// tries MQTT v5 and, when the servers refuse it, 3.1.1 from then on.
func (s *sessions) dial(ctx context.Context, clientID string, clean bool, got chan<- message) (adminConn, bool, error) {
	if s.version == "" || s.version == Version5 {
		a, present, err := s.dial5(ctx, clientID, clean, got)
		if err == nil {
			s.version = Version5
		}
		if !errors.Is(err, errVersionRefused) || s.version == Version5 {
			return a, present, err
		}
		s.version = Version311
	}
	return s.dial3(ctx, clientID, clean, got)
}

// dialTimeout bounds one round over the servers.
func (s *sessions) dialTimeout() time.Duration {
	return min(s.cfg.ConnectTimeout, 10*time.Second)*time.Duration(len(s.cfg.ServerURIs)) + time.Second
}

type admin5 struct {
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc
}

func (s *sessions) dial5(ctx context.Context, clientID string, clean bool, got chan<- message) (adminConn, bool, error) {
	one := *s.cfg
	one.BackoffMin, one.BackoffMax = time.Hour, time.Hour // one round over the servers
	up := make(chan bool, 1)
	failures := make(chan *connectError, len(s.cfg.ServerURIs))
	opts := connOptions{clientID: clientID, cleanStart: clean, sessionExpiry: 0,
		onUp: func(_ *autopaho.ConnectionManager, ack *paho.Connack) {
			select {
			case up <- ack.SessionPresent:
			default:
			}
		},
		onConnectErr: func(ce *connectError) {
			if s.cfg.ProtocolVersion == VersionAuto && versionRefused(ce.err) {
				ce.versionRefused = true
			}
			select {
			case failures <- ce:
			default:
			}
		},
		onPublish: func(pr paho.PublishReceived) (bool, error) {
			if got != nil {
				select {
				case got <- message{pr.Packet.Topic, pr.Packet.Payload}:
				default:
				}
			}
			return true, nil
		},
	}
	cctx, cancel := context.WithCancel(context.Background())
	cm, err := newConnection(cctx, &one, opts, s.log)
	if err != nil {
		cancel()
		return nil, false, err
	}
	a := &admin5{cm: cm, cancel: cancel}
	timer := time.NewTimer(s.dialTimeout())
	defer timer.Stop()
	var reasons []string
	refused := 0
	for {
		select {
		case present := <-up:
			return a, present, nil
		case ce := <-failures:
			reasons = append(reasons, ce.Error())
			if ce.versionRefused {
				refused++
			}
			if len(reasons) < len(s.cfg.ServerURIs) {
				continue
			}
			a.close()
			if refused == len(reasons) {
				return nil, false, errVersionRefused
			}
			return nil, false, errors.New(strings.Join(reasons, "; "))
		case <-timer.C:
			a.close()
			return nil, false, fmt.Errorf("could not connect to %s within mqtt.connect.timeout", strings.Join(s.cfg.ServerURIs, ", "))
		case <-ctx.Done():
			a.close()
			return nil, false, ctx.Err()
		}
	}
}

func (a *admin5) subscribe(ctx context.Context, topics ...string) error {
	sub := &paho.Subscribe{}
	for _, t := range topics {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: t, QoS: 0})
	}
	sa, err := a.cm.Subscribe(ctx, sub)
	if sa != nil {
		for i, code := range sa.Reasons {
			if code >= 0x80 && i < len(topics) {
				return fmt.Errorf("the broker refused the subscription to %q: %s", topics[i], subackReason(code))
			}
		}
		return nil
	}
	return err
}

func (a *admin5) publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	qos := byte(1)
	if !retain {
		qos = 0
	}
	_, err := a.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload})
	return err
}

func (a *admin5) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.cm.Disconnect(ctx)
	a.cancel()
}

type admin3 struct{ c *client3 }

func (s *sessions) dial3(ctx context.Context, clientID string, clean bool, got chan<- message) (adminConn, bool, error) {
	one := *s.cfg
	one.BackoffMin, one.BackoffMax = time.Hour, time.Hour
	up := make(chan bool, 1)
	failures := make(chan *connectError, 1)
	c, err := newConnection3(context.Background(), &one, connOptions3{clientID: clientID, clean: clean,
		onUp: func(_ mqtt3.Client, present bool) {
			select {
			case up <- present:
			default:
			}
		},
		onConnectErr: func(ce *connectError) {
			select {
			case failures <- ce:
			default:
			}
		},
		onPublish: func(d *delivery) {
			if got != nil {
				select {
				case got <- message{d.pub.Topic, d.pub.Payload}:
				default:
				}
			}
			d.msg3.Ack()
		},
	}, s.log)
	if err != nil {
		return nil, false, err
	}
	a := &admin3{c: c}
	timer := time.NewTimer(s.dialTimeout())
	defer timer.Stop()
	select {
	case present := <-up:
		return a, present, nil
	case ce := <-failures: // one per round over the servers
		a.close()
		return nil, false, ce
	case <-timer.C:
		a.close()
		return nil, false, fmt.Errorf("could not connect to %s within mqtt.connect.timeout", strings.Join(s.cfg.ServerURIs, ", "))
	case <-ctx.Done():
		a.close()
		return nil, false, ctx.Err()
	}
}

// wait3 waits for a paho.mqtt.golang token.
func wait3(ctx context.Context, tok mqtt3.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *admin3) subscribe(ctx context.Context, topics ...string) error {
	filters := map[string]byte{}
	for _, t := range topics {
		filters[t] = 0
	}
	tok := a.c.c.SubscribeMultiple(filters, nil)
	if err := wait3(ctx, tok); err != nil {
		return err
	}
	for t, code := range tok.(*mqtt3.SubscribeToken).Result() {
		if code >= 0x80 {
			return fmt.Errorf("the broker refused the subscription to %q", t)
		}
	}
	return nil
}

func (a *admin3) publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	qos := byte(1)
	if !retain {
		qos = 0
	}
	return wait3(ctx, a.c.c.Publish(topic, qos, retain, payload))
}

func (a *admin3) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.c.disconnect(ctx)
}

// adminID is a throwaway client id for reading and writing the list.
func (s *sessions) adminID() string {
	var b [6]byte
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand.IntN(36)]
	}
	return s.cfg.ClientIDPrefix + "sessions-" + string(b[:])
}

// list reads the connector's list of client ids, then calls update with it (nil when there is
// none) and writes what update returns, when it differs: an empty list removes the retained
// message.
func (s *sessions) list(ctx context.Context, update func(old []string) []string) error {
	topic := s.cfg.registryTopic(s.name)
	got := make(chan message, 16)
	a, _, err := s.dial(ctx, s.adminID(), true, got)
	if err != nil {
		return fmt.Errorf("connecting to read the list of client ids on %q: %w", topic, err)
	}
	defer a.close()
	// The broker sends the retained message as it takes the subscription, so before the
	// message published to the marker topic afterwards; both come in order.
	marker := topic + "/read-" + s.adminID()
	if err := a.subscribe(ctx, topic, marker); err != nil {
		return fmt.Errorf("reading the list of client ids on %q (mqtt.session.registry.topic): %w", topic, err)
	}
	if err := a.publish(ctx, marker, []byte("end"), false); err != nil {
		return fmt.Errorf("reading the list of client ids on %q (mqtt.session.registry.topic): %w", topic, err)
	}
	var old []string
	for done := false; !done; {
		select {
		case m := <-got:
			switch m.topic {
			case marker:
				done = true
			case topic:
				var r registry
				if err := json.Unmarshal(m.payload, &r); err != nil {
					s.log.Warn("the list of client ids on mqtt.session.registry.topic is not what this connector writes; replacing it",
						"topic", topic, "err", err)
				}
				old = r.ClientIDs
			}
		case <-ctx.Done():
			return fmt.Errorf("reading the list of client ids on %q (mqtt.session.registry.topic): %w", topic, ctx.Err())
		case <-time.After(s.dialTimeout()):
			return fmt.Errorf("reading the list of client ids on %q (mqtt.session.registry.topic): the broker did not send the message published to %q; "+
				"the connector's MQTT user must be allowed to subscribe and publish to the topic and the topics below it", topic, marker)
		}
	}
	ids := update(old)
	if sameSet(ids, old) {
		return nil
	}
	var payload []byte // empty: removes the retained message
	if len(ids) > 0 {
		payload, _ = json.Marshal(registry{Connector: s.name, ClientIDs: ids})
	}
	if err := a.publish(ctx, topic, payload, true); err != nil {
		return fmt.Errorf("writing the list of client ids to %q (mqtt.session.registry.topic): %w", topic, err)
	}
	return nil
}

// end ends the session of a client id, if the broker has one, and reports whether it had
// one. MQTT v5: connect without clean start and with session expiry 0, so that CONNACK says
// whether there was a session, and disconnect: the session ends with the connection. MQTT
// 3.1.1: connect without clean session to learn the same, then with clean session, which
// discards it. The messages the broker had queued for the session are dropped with it; a
// task still connected with the id loses its connection (an MQTT v5 task fails: its session
// was taken over).
func (s *sessions) end(ctx context.Context, clientID string) (bool, error) {
	a, present, err := s.dial(ctx, clientID, false, nil)
	if err != nil {
		return false, fmt.Errorf("ending the session of %s: %w", clientID, err)
	}
	a.close()
	if s.version == Version311 {
		a, _, err := s.dial(ctx, clientID, true, nil)
		if err != nil {
			return present, fmt.Errorf("ending the session of %s with a clean session: %w", clientID, err)
		}
		a.close()
	}
	return present, nil
}

// endUnused ends the sessions of the client ids listed but not in use, and those of task
// numbers from len(inUse) up for as long as the broker has sessions for them. It returns the
// ids whose sessions it ended.
func (s *sessions) endUnused(ctx context.Context, listed, inUse []string) ([]string, error) {
	var ended []string
	gone := func(id string) error {
		present, err := s.end(ctx, id)
		if err == nil && present {
			ended = append(ended, id)
			s.log.Info("ended the MQTT session of a task that no longer exists; the messages the broker had queued for it are dropped",
				"client", id, "mqtt_version", s.version)
		}
		return err
	}
	for _, id := range listed {
		if !slices.Contains(inUse, id) {
			if err := gone(id); err != nil {
				return ended, err
			}
		}
	}
	for k := len(inUse); k < len(inUse)+maxProbe; k++ {
		id := s.cfg.clientID(s.name, k)
		if slices.Contains(listed, id) {
			continue
		}
		n := len(ended)
		if err := gone(id); err != nil {
			return ended, err
		}
		if len(ended) == n {
			break // no session: the numbers above were not used either
		}
	}
	return ended, nil
}

// sameSet reports whether a and b hold the same ids.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// union is a followed by the ids of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
