package mqttsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect"
)

// ackKey is the SourceOffset key under which a record carries its message's delivery, so that
// Acknowledged can acknowledge it. Records have no SourcePartition: MQTT has no offsets to
// resume from (the broker's session is the position), so the runtime stores nothing for them.
const ackKey = "mqtt.delivery"

// delivery is one message as the client received it.
type delivery struct {
	pub     *paho.Publish
	client  *paho.Client // the connection it came on; only that one can acknowledge it
	arrived time.Time
}

// Task subscribes to the topic filters and turns each message into a record.
type Task struct {
	cfg      Config
	log      *slog.Logger
	tc       connect.SourceTaskContext
	rules    []mapping
	clientID string
	filters  []string // as subscribed: with $share/group/ when shared
	shared   bool

	cm       *autopaho.ConnectionManager
	cancel   context.CancelFunc
	msgs     chan *delivery
	done     chan struct{} // closed by Stop
	stopOnce sync.Once
	current  atomic.Pointer[paho.Client] // the client of the connection that is up, or nil
	fatal    chan error                  // the first error that must fail the task
	firstSub chan error                  // the result of the first subscription
	subOnce  sync.Once

	stale atomic.Int64 // acknowledgements dropped because their connection was gone
}

var (
	_ connect.SourceTask  = (*Task)(nil)
	_ connect.SourceAcker = (*Task)(nil)
)

// Start connects to the broker and subscribes. It returns once the subscription is in place,
// or fails with the reason the broker or the network gave.
func (t *Task) Start(ctx context.Context, raw connect.Config, tc connect.SourceTaskContext) error {
	cfg, err := connect.Decode[Config](raw)
	if err != nil {
		return fmt.Errorf("mqtt-source: invalid configuration: %w", err)
	}
	t.cfg, t.tc, t.log = cfg, tc, tc.Logger()
	if t.rules, err = parseMappings(cfg.Mappings); err != nil {
		return fmt.Errorf("mqtt-source: %w", err)
	}
	t.clientID = cfg.clientID(tc.Connector(), tc.TaskID())
	t.shared = cfg.Shared == SharedAlways
	for _, f := range cfg.Topics {
		if t.shared {
			f = "$share/" + t.shareGroup() + "/" + f
		}
		t.filters = append(t.filters, f)
	}
	t.msgs = make(chan *delivery, cfg.BufferSize)
	t.done = make(chan struct{})
	t.fatal = make(chan error, 1)
	t.firstSub = make(chan error, 1)

	connErrs := make(chan *connectError, 16)
	var connCtx context.Context
	connCtx, t.cancel = context.WithCancel(context.Background())
	t.cm, err = newConnection(connCtx, &t.cfg, connOptions{
		clientID:      t.clientID,
		cleanStart:    cfg.CleanStart,
		sessionExpiry: cfg.SessionExpiry,
		onUp:          t.connectionUp,
		onDown:        t.connectionDown,
		onConnectErr: func(ce *connectError) {
			t.log.Warn("MQTT connection attempt failed", "client", t.clientID, "err", ce)
			select {
			case connErrs <- ce:
			default:
			}
		},
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
		onPublish: t.received,
	}, t.log)
	if err != nil {
		t.cancel()
		return fmt.Errorf("mqtt-source: %w", err)
	}
	if err := t.awaitSubscribed(ctx, connErrs); err != nil {
		t.shutdown()
		return err
	}
	t.log.Info("subscribed", "client", t.clientID, "filters", t.filters, "qos", cfg.QoS)
	return nil
}

// awaitSubscribed waits for the first connection's subscription. It gives up at
// mqtt.connect.timeout, or at once when every server refused in a way that retrying cannot
// change.
func (t *Task) awaitSubscribed(ctx context.Context, connErrs <-chan *connectError) error {
	timer := time.NewTimer(t.cfg.ConnectTimeout)
	defer timer.Stop()
	permanent := map[string]*connectError{}
	var last *connectError
	for {
		select {
		case err := <-t.firstSub:
			return err
		case err := <-t.fatal:
			return err
		case ce := <-connErrs:
			last = ce
			if ce.permanent {
				permanent[ce.server] = ce
				if len(permanent) >= len(t.cfg.ServerURIs) {
					return fmt.Errorf("mqtt-source: %w", ce)
				}
			}
		case <-timer.C:
			if last != nil {
				return fmt.Errorf("mqtt-source: gave up after mqtt.connect.timeout (%s): %w", t.cfg.ConnectTimeout, last)
			}
			return fmt.Errorf("mqtt-source: could not connect to %s and subscribe within mqtt.connect.timeout (%s)", strings.Join(t.cfg.ServerURIs, ", "), t.cfg.ConnectTimeout)
		case <-ctx.Done():
			return fmt.Errorf("mqtt-source: stopped while connecting: %w", ctx.Err())
		}
	}
}

// connectionUp subscribes on every new connection. A kept session has the subscriptions
// already, but subscribing again is harmless (retained messages are not sent again) and
// covers a session the broker lost.
func (t *Task) connectionUp(cm *autopaho.ConnectionManager, ack *paho.Connack) {
	t.log.Info("connected to the MQTT broker", "client", t.clientID, "session_present", ack.SessionPresent)
	go func() {
		err := t.subscribe(cm, ack)
		first := false
		t.subOnce.Do(func() {
			first = true
			t.firstSub <- err
		})
		if err != nil && !first {
			t.fail(err)
		}
	}()
}

func (t *Task) connectionDown() bool {
	t.current.Store(nil)
	select {
	case <-t.done:
		return false
	default:
	}
	if len(t.fatal) > 0 {
		return false
	}
	t.log.Warn("lost the connection to the MQTT broker; reconnecting", "client", t.clientID)
	return true
}

// subscribe subscribes to the filters. When the session was kept, it first drops the other
// form of each subscription (shared or plain), left from a run with another tasks.max.
func (t *Task) subscribe(cm *autopaho.ConnectionManager, ack *paho.Connack) error {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.ConnectTimeout)
	defer cancel()
	sharedAvailable := ack.Properties == nil || ack.Properties.SharedSubAvailable
	if ack.SessionPresent && (t.shared || sharedAvailable) {
		var other []string
		for i, f := range t.filters {
			if t.shared {
				other = append(other, t.cfg.Topics[i])
			} else {
				other = append(other, "$share/"+t.shareGroup()+"/"+f)
			}
		}
		if _, err := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: other}); err != nil {
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
	if err != nil {
		return fmt.Errorf("mqtt-source: subscribing to %s: %w", strings.Join(t.filters, ", "), err)
	}
	return nil
}

func (t *Task) shareGroup() string {
	if t.cfg.ShareGroup != "" {
		return t.cfg.ShareGroup
	}
	return strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(t.tc.Connector())
}

// received is the client's message handler: it hands the message to Poll, waiting while the
// buffer is full (which stops reading from the connection).
func (t *Task) received(pr paho.PublishReceived) (bool, error) {
	d := &delivery{pub: pr.Packet, client: pr.Client, arrived: time.Now()}
	// Messages come only on the connection that is up (autopaho reports a connection down
	// after its client stopped handing out messages), so the sender is the current client.
	if t.current.Load() != pr.Client {
		t.current.Store(pr.Client)
	}
	select {
	case t.msgs <- d:
	case <-t.done:
	}
	return true, nil
}

func (t *Task) fail(err error) {
	select {
	case t.fatal <- err:
	default:
	}
}

// Poll returns the messages that arrived, up to batch.size, waiting for the first.
func (t *Task) Poll(ctx context.Context) ([]connect.Record, error) {
	var first *delivery
	select {
	case first = <-t.msgs:
	case err := <-t.fatal:
		t.fail(err) // keep it for the next Poll and for Start's callers
		return nil, err
	case <-ctx.Done():
		return nil, nil
	}
	n := min(len(t.msgs)+1, t.cfg.BatchSize)
	records := make([]connect.Record, 0, n)
	d := first
	for {
		rec, bad := t.record(d)
		if bad != nil {
			// The error policy takes it (dead-letter topic, log, or failing the task); once it
			// did, the message is done with.
			if err := t.tc.Report(ctx, rec, bad); err != nil {
				return nil, err
			}
			t.ack(d)
		} else {
			records = append(records, rec)
		}
		if len(records) >= t.cfg.BatchSize {
			break
		}
		select {
		case d = <-t.msgs:
			continue
		default:
		}
		break
	}
	return records, nil
}

var (
	qosText    = [][]byte{[]byte("0"), []byte("1"), []byte("2")}
	trueText   = []byte("true")
	falseText  = []byte("false")
	errNoTopic = errors.New("no rule of kafka.topic.mappings matches the MQTT topic, and kafka.topic is not set")
)

// record turns a message into a record. When the message cannot become a proper record it
// returns what it has (the payload as bytes, the MQTT headers and an mqtt.error header) with
// the reason, for the error policy.
func (t *Task) record(d *delivery) (connect.Record, error) {
	p := d.pub
	rec := connect.Record{Topic: t.cfg.Topic, Time: d.arrived}
	if p.QoS > 0 {
		rec.SourceOffset = map[string]any{ackKey: d}
	}
	if t.cfg.Headers {
		rec.Headers = headers(p)
	}
	bad := func(err error) (connect.Record, error) {
		if !t.cfg.Headers {
			rec.Headers = headers(p)
		}
		rec.Key, rec.Value, rec.Time = nil, p.Payload, d.arrived
		if len(p.Payload) > t.cfg.MaxPayload {
			rec.Value = nil
		}
		rec.Headers = append(rec.Headers, connect.Header{Key: "mqtt.error", Value: []byte(err.Error())})
		return rec, err
	}
	if len(t.rules) > 0 {
		topic, ok, err := topicFor(t.rules, p.Topic)
		if err != nil {
			return bad(err)
		}
		if ok {
			rec.Topic = topic
		}
	}
	if rec.Topic == "" {
		return bad(fmt.Errorf("MQTT topic %q: %w", p.Topic, errNoTopic))
	}
	if len(p.Payload) > t.cfg.MaxPayload {
		return bad(connect.BadField("", fmt.Sprintf("%d bytes", len(p.Payload)), "the payload of MQTT topic %q is larger than payload.max.bytes (%d bytes)", p.Topic, t.cfg.MaxPayload))
	}
	pl := payload{raw: p.Payload}
	switch t.cfg.KeySource {
	case KeyTopic:
		rec.Key = p.Topic
	case KeyField:
		k, err := pl.keyFrom(t.cfg.KeyField)
		if err != nil {
			return bad(fmt.Errorf("key from key.field of MQTT topic %q: %w", p.Topic, err))
		}
		rec.Key = k
	}
	if t.cfg.TimeSource == TimeField {
		ts, err := pl.timeFrom(t.cfg.TimeField, t.cfg.TimeFormat)
		if err != nil {
			return bad(fmt.Errorf("timestamp from timestamp.field of MQTT topic %q: %w", p.Topic, err))
		}
		rec.Time = ts
	}
	switch t.cfg.Format {
	case FormatBytes:
		rec.Value = p.Payload
	case FormatString:
		if err := checkUTF8(p.Payload); err != nil {
			return bad(fmt.Errorf("MQTT topic %q: %w", p.Topic, err))
		}
		rec.Value = string(p.Payload)
	case FormatJSON:
		v, err := pl.json()
		if err == nil {
			v, err = jsonValue(v)
		}
		if err != nil {
			return bad(fmt.Errorf("MQTT topic %q: payload.format is json: %w", p.Topic, err))
		}
		rec.Value = v
	}
	return rec, nil
}

// headers are a message's MQTT metadata as record headers.
func headers(p *paho.Publish) []connect.Header {
	h := make([]connect.Header, 0, 4)
	h = append(h, connect.Header{Key: "mqtt.topic", Value: []byte(p.Topic)})
	if int(p.QoS) < len(qosText) {
		h = append(h, connect.Header{Key: "mqtt.qos", Value: qosText[p.QoS]})
	}
	retain := falseText
	if p.Retain {
		retain = trueText
	}
	h = append(h, connect.Header{Key: "mqtt.retain", Value: retain})
	if p.QoS > 0 {
		h = append(h, connect.Header{Key: "mqtt.message.id", Value: strconv.AppendUint(nil, uint64(p.PacketID), 10)})
	}
	if pp := p.Properties; pp != nil {
		if pp.ContentType != "" {
			h = append(h, connect.Header{Key: "mqtt.content.type", Value: []byte(pp.ContentType)})
		}
		if pp.MessageExpiry != nil {
			h = append(h, connect.Header{Key: "mqtt.message.expiry", Value: strconv.AppendUint(nil, uint64(*pp.MessageExpiry), 10)})
		}
		if pp.ResponseTopic != "" {
			h = append(h, connect.Header{Key: "mqtt.response.topic", Value: []byte(pp.ResponseTopic)})
		}
		if pp.CorrelationData != nil {
			h = append(h, connect.Header{Key: "mqtt.correlation.data", Value: pp.CorrelationData})
		}
		if pp.PayloadFormat != nil {
			h = append(h, connect.Header{Key: "mqtt.payload.format", Value: strconv.AppendUint(nil, uint64(*pp.PayloadFormat), 10)})
		}
		for _, u := range pp.User {
			h = append(h, connect.Header{Key: u.Key, Value: []byte(u.Value)})
		}
	}
	return h
}

// Acknowledged acknowledges each record's message to the broker (QoS 1 and 2) once Kafka has
// the record. A message whose connection is gone is not acknowledged: the broker sends it
// again on the new connection, and it is written again (at least once).
func (t *Task) Acknowledged(_ context.Context, records []connect.Record) error {
	for i := range records {
		if d, ok := records[i].SourceOffset[ackKey].(*delivery); ok {
			t.ack(d)
		}
	}
	return nil
}

func (t *Task) ack(d *delivery) {
	if d.pub.QoS == 0 {
		return
	}
	if cur := t.current.Load(); cur != d.client {
		t.stale.Add(1)
		return
	}
	if err := d.client.Ack(d.pub); err != nil {
		t.stale.Add(1) // the connection closed meanwhile
	}
}

// Stop lets the acknowledgements due go out, then disconnects, keeping the session.
func (t *Task) Stop() error {
	t.shutdown()
	return nil
}

func (t *Task) shutdown() {
	t.stopOnce.Do(func() {
		if t.done == nil {
			return
		}
		close(t.done)
		if t.cm == nil {
			t.cancel()
			return
		}
		if t.current.Load() != nil {
			// paho sends due acknowledgements every ackInterval; give it a few.
			time.Sleep(3 * ackInterval)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.cm.Disconnect(ctx); err != nil {
			t.log.Warn("disconnecting from the MQTT broker", "client", t.clientID, "err", err)
		}
		t.cancel()
		if n := t.stale.Load(); n > 0 {
			t.log.Info("messages left unacknowledged because their connection closed; the broker sends them again", "count", n)
		}
	})
}
