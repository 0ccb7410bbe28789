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

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluicehq/sluice/connect"
)

// delivery is one message as the client received it. Both protocol versions describe it as a
// paho.golang Publish (MQTT 3.1.1 messages have no properties).
type delivery struct {
	pub     *paho.Publish
	conn    *conn // the connection it came on; only that one can acknowledge it
	arrived time.Time
	msg3    mqtt3.Message // MQTT 3.1.1: the message, to acknowledge
	acked   bool          // MQTT 3.1.1: acknowledged by the task, guarded by its ackQueue
}

// conn is one network connection of a task's MQTT client.
type conn struct {
	v5 *paho.Client // MQTT v5: paho.golang acknowledges in order itself
	v3 *ackQueue    // MQTT 3.1.1
	// received and acked count the connection's first messages and acknowledgements, which
	// are logged at debug level (traced), to follow a message from the broker to its
	// acknowledgement when a run lost one.
	received, acked atomic.Int32
}

// traced is how many of a connection's first messages and acknowledgements are logged.
const traced = 100

// mqttClient is the version-specific MQTT client of a task: paho.golang's autopaho for MQTT
// v5 (client5.go), paho.mqtt.golang for MQTT 3.1.1 (client3.go). Each connects and reconnects
// with backoff, subscribes on every connection (calling Task.subscribed), hands messages to
// Task.deliver and reports a lost connection to Task.connectionDown; the buffer, Poll,
// records and acknowledgements are the task's, shared by both.
type mqttClient interface {
	// disconnect lets the acknowledgements due go out and disconnects, keeping the session.
	disconnect(ctx context.Context) error
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
	version  string // the protocol version in use: Version5 or Version311
	registry string // the connector's list of client ids (mqtt.session.registry.topic), or ""

	client   mqttClient
	cancel   context.CancelFunc
	msgs     chan *delivery
	done     chan struct{} // closed by Stop
	stopOnce sync.Once
	current  atomic.Pointer[conn] // the connection that is up, or nil
	fatal    chan error           // the first error that must fail the task
	firstSub chan error           // the result of the first subscription
	subOnce  sync.Once

	stale atomic.Int64 // acknowledgements dropped because their connection was gone

	// Poll's goroutine only:
	topics map[string]*topicInfo
	arena  arena
}

var (
	_ connect.SourceTask  = (*Task)(nil)
	_ connect.SourceAcker = (*Task)(nil)
)

// Start connects to the broker and subscribes. It returns once the subscription is in place,
// or fails with the reason the broker or the network gave. With mqtt.protocol.version=auto it
// tries MQTT v5 first and falls back to 3.1.1 when the broker refuses the protocol version.
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
	if cfg.SessionCleanup {
		t.registry = cfg.registryTopic(tc.Connector())
	}
	for _, f := range cfg.Topics {
		if t.shared {
			f = "$share/" + t.shareGroup() + "/" + f
		}
		t.filters = append(t.filters, f)
	}
	t.msgs = make(chan *delivery, cfg.BufferSize)
	t.done = make(chan struct{})
	t.fatal = make(chan error, 1)

	version := cfg.ProtocolVersion
	if version == VersionAuto {
		err = t.connect(ctx, Version5, true)
		var ce *connectError
		if err == nil || !errors.As(err, &ce) || !ce.versionRefused {
			return err
		}
		t.log.Info("the broker does not speak MQTT v5; connecting with MQTT 3.1.1", "client", t.clientID, "reason", ce.reason)
		version = Version311
	}
	return t.connect(ctx, version, false)
}

// connect starts the client of one protocol version and waits for its first subscription.
// With fallback (auto, trying v5) a refusal of the protocol version by every server ends the
// wait at once, with a connectError whose versionRefused is set.
func (t *Task) connect(ctx context.Context, version string, fallback bool) error {
	t.version = version
	t.firstSub = make(chan error, 1)
	t.subOnce = sync.Once{}
	connErrs := make(chan *connectError, 16)
	var connCtx context.Context
	connCtx, t.cancel = context.WithCancel(context.Background())
	onConnectErr := func(ce *connectError) {
		if fallback && versionRefused(ce.err) {
			ce.versionRefused, ce.permanent = true, true
			ce.reason = fmt.Sprintf("the broker refused the MQTT v5 CONNECT (%v)", ce.err)
			t.log.Info("the broker refused MQTT v5", "client", t.clientID, "err", ce)
		} else {
			t.log.Warn("MQTT connection attempt failed", "client", t.clientID, "version", version, "err", ce)
		}
		select {
		case connErrs <- ce:
		default:
		}
	}
	var err error
	if version == Version311 {
		t.client, err = t.start3(connCtx, onConnectErr)
	} else {
		t.client, err = t.start5(connCtx, onConnectErr)
	}
	if err != nil {
		t.cancel()
		t.client = nil
		return fmt.Errorf("mqtt-source: %w", err)
	}
	if err := t.awaitSubscribed(ctx, connErrs); err != nil {
		if fallback {
			t.closeClient()
		} else {
			t.shutdown()
		}
		return err
	}
	t.log.Info("subscribed", "client", t.clientID, "filters", t.filters, "qos", t.cfg.QoS, "mqtt_version", version)
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
				// autopaho reports each server's failure; paho.mqtt.golang one per round.
				if len(permanent) >= len(t.cfg.ServerURIs) || t.version == Version311 {
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

// subscribed takes the result of a subscription on a new connection: the first one answers
// Start, a later failure fails the task.
func (t *Task) subscribed(err error) {
	first := false
	t.subOnce.Do(func() {
		first = true
		t.firstSub <- err
	})
	if err != nil && !first {
		t.fail(err)
	}
}

// connectionDown is called when the connection is lost; it says whether to reconnect.
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

// deliver hands a message to Poll, waiting while the buffer is full (which stops reading
// from the connection). Messages come only on the connection that is up (both clients stop
// handing out a connection's messages before they report it down), so cn is the current one.
func (t *Task) deliver(d *delivery) {
	if t.current.Load() != d.conn {
		t.current.Store(d.conn)
	}
	if d.conn != nil && d.conn.received.Add(1) <= traced && t.log != nil {
		t.log.Debug("message received", "client", t.clientID, "topic", d.pub.Topic, "packet_id", d.pub.PacketID, "qos", d.pub.QoS)
	}
	select {
	case t.msgs <- d:
	case <-t.done:
	}
}

// otherForm is each filter in the other form (shared or plain), to drop subscriptions left
// in a kept session from a run with another tasks.max.
func (t *Task) otherForm() []string {
	var other []string
	for i, f := range t.filters {
		if t.shared {
			other = append(other, t.cfg.Topics[i])
		} else {
			other = append(other, "$share/"+t.shareGroup()+"/"+f)
		}
	}
	return other
}

func (t *Task) shareGroup() string {
	if t.cfg.ShareGroup != "" {
		return t.cfg.ShareGroup
	}
	return strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(t.tc.Connector())
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
	t.arena.reset(n, t.cfg.Headers)
	lingered := false
	d := first
	for {
		if t.internal(d.pub.Topic) {
			t.ack(d) // the connector's own bookkeeping, not data
		} else if rec, bad := t.record(d); bad != nil {
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
		if lingered || !t.linger(ctx, len(records)) {
			break
		}
		lingered = true
		select {
		case d = <-t.msgs:
			continue
		default:
		}
		break
	}
	return records, nil
}

// internal reports whether a message is on the connector's list of client ids or a topic
// below it (sessions.go), which a filter such as # matches too.
func (t *Task) internal(topic string) bool {
	return t.registry != "" && strings.HasPrefix(topic, t.registry) &&
		(len(topic) == len(t.registry) || topic[len(t.registry)] == '/')
}

// Poll lingers for more messages when the buffer runs empty before the batch is full, so
// that a fast stream makes batches rather than a record and a round through the runtime per
// message. It sleeps rather than waiting on the buffer, so that messages arrive without
// waking it, and it sleeps once, for pollLinger: the producer's own linger (linger.ms)
// batches for Kafka after it. At QoS 1 and 2 it does not linger once the broker's window of
// unacknowledged messages (Receive Maximum) is used up, since holding records back then only
// delays the acknowledgements that reopen it.
//
// It lingered up to 5 ms before: at 2,000 frames/s (TestLatencyUnderLoad) a stream kept it
// lingering the whole 5 ms, and publish -> in Kafka took 12.7 ms at the median; with 1 ms,
// 8.3 ms. The throughput against a raw subscriber (TestBenchmarkAgainstRawSubscriber) stayed
// within the noise: 0.83 / 0.77 of raw at QoS 0 / 1 with 1 ms, 0.81 / 0.72 with 5 ms, 0.80 /
// 0.75 without lingering (2026-12-07).
const pollLinger = time.Millisecond

// linger waits pollLinger for more messages; it reports whether any came.
func (t *Task) linger(ctx context.Context, have int) bool {
	if t.cfg.QoS > 0 && have >= t.cfg.ReceiveMaximum {
		return false // the broker sends no more before acknowledgements
	}
	timer := time.NewTimer(pollLinger)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return len(t.msgs) > 0
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
		// The record's AckHandle is its delivery, for Acknowledged. Records have no
		// SourcePartition: MQTT has no offsets to resume from (the broker's session is the
		// position), so the runtime stores nothing for them.
		rec.AckHandle = d
	}
	ti := t.topicInfo(p.Topic)
	if t.cfg.Headers {
		rec.Headers = t.arena.headers(p, ti.bytes)
	}
	bad := func(err error) (connect.Record, error) {
		if !t.cfg.Headers {
			rec.Headers = t.arena.headers(p, ti.bytes)
		}
		rec.Key, rec.Value, rec.Time = nil, p.Payload, d.arrived
		if len(p.Payload) > t.cfg.MaxPayload {
			rec.Value = nil
		}
		rec.Headers = append(rec.Headers, connect.Header{Key: "mqtt.error", Value: []byte(err.Error())})
		return rec, err
	}
	if ti.err != nil {
		return bad(ti.err)
	}
	if ti.mapped {
		rec.Topic = ti.kafka
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
		rec.Key = ti.key
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

// topicInfo is what the records of one MQTT topic share, worked out once.
type topicInfo struct {
	key    any    // the topic as a record key
	bytes  []byte // the topic as a header value (shared: header values are not written to)
	kafka  string // the Kafka topic the mapping rules name, when mapped
	mapped bool
	err    error // applying the mapping rules failed
}

// maxTopics bounds the topics a task remembers; past it, it starts afresh.
const maxTopics = 10000

// topicInfo returns the shared parts of the records of an MQTT topic. Poll's goroutine only.
func (t *Task) topicInfo(topic string) *topicInfo {
	if ti := t.topics[topic]; ti != nil {
		return ti
	}
	if t.topics == nil || len(t.topics) >= maxTopics {
		t.topics = make(map[string]*topicInfo)
	}
	ti := &topicInfo{key: topic, bytes: []byte(topic)}
	if len(t.rules) > 0 {
		ti.kafka, ti.mapped, ti.err = topicFor(t.rules, topic)
	}
	t.topics[topic] = ti
	return ti
}

// arena holds the headers and digits of one Poll's records, so that a record's headers cost
// no allocations of their own. Each record gets a slice capped at its own headers: appending
// to it copies.
type arena struct {
	hs     []connect.Header
	digits []byte
}

// reset starts a batch of n records; the previous batch's records keep their arrays.
func (a *arena) reset(n int, headers bool) {
	if !headers {
		a.hs, a.digits = nil, nil // only records for the error policy get headers then
		return
	}
	a.hs = make([]connect.Header, 0, n*4)
	a.digits = make([]byte, 0, n*5)
}

// headers are a message's MQTT metadata as record headers; topic is its topic as bytes.
func (a *arena) headers(p *paho.Publish, topic []byte) []connect.Header {
	start := len(a.hs)
	a.hs = append(a.hs, connect.Header{Key: "mqtt.topic", Value: topic})
	if int(p.QoS) < len(qosText) {
		a.hs = append(a.hs, connect.Header{Key: "mqtt.qos", Value: qosText[p.QoS]})
	}
	retain := falseText
	if p.Retain {
		retain = trueText
	}
	a.hs = append(a.hs, connect.Header{Key: "mqtt.retain", Value: retain})
	if p.QoS > 0 {
		a.hs = append(a.hs, connect.Header{Key: "mqtt.message.id", Value: a.number(uint64(p.PacketID))})
	}
	if pp := p.Properties; pp != nil {
		if pp.ContentType != "" {
			a.hs = append(a.hs, connect.Header{Key: "mqtt.content.type", Value: []byte(pp.ContentType)})
		}
		if pp.MessageExpiry != nil {
			a.hs = append(a.hs, connect.Header{Key: "mqtt.message.expiry", Value: a.number(uint64(*pp.MessageExpiry))})
		}
		if pp.ResponseTopic != "" {
			a.hs = append(a.hs, connect.Header{Key: "mqtt.response.topic", Value: []byte(pp.ResponseTopic)})
		}
		if pp.CorrelationData != nil {
			a.hs = append(a.hs, connect.Header{Key: "mqtt.correlation.data", Value: pp.CorrelationData})
		}
		if pp.PayloadFormat != nil {
			a.hs = append(a.hs, connect.Header{Key: "mqtt.payload.format", Value: a.number(uint64(*pp.PayloadFormat))})
		}
		for _, u := range pp.User {
			a.hs = append(a.hs, connect.Header{Key: u.Key, Value: []byte(u.Value)})
		}
	}
	return a.hs[start:len(a.hs):len(a.hs)]
}

// number is n in decimal, from the arena.
func (a *arena) number(n uint64) []byte {
	start := len(a.digits)
	a.digits = strconv.AppendUint(a.digits, n, 10)
	return a.digits[start:len(a.digits):len(a.digits)]
}

// Acknowledged acknowledges a record's message to the broker (QoS 1 and 2) once Kafka has
// the record. A message whose connection is gone is not acknowledged: the broker sends it
// again on the new connection, and it is written again (at least once).
func (t *Task) Acknowledged(_ context.Context, rec connect.Record) error {
	if d, ok := rec.AckHandle.(*delivery); ok {
		t.ack(d)
	}
	return nil
}

func (t *Task) ack(d *delivery) {
	if d.pub.QoS == 0 {
		return
	}
	if d.conn != nil && d.conn.acked.Add(1) <= traced && t.log != nil {
		t.log.Debug("message acknowledged", "client", t.clientID, "topic", d.pub.Topic, "packet_id", d.pub.PacketID,
			"stale", t.current.Load() != d.conn)
	}
	if cur := t.current.Load(); cur != d.conn || cur == nil {
		t.stale.Add(1)
		return
	}
	if d.conn.v3 != nil {
		d.conn.v3.ack(d)
		return
	}
	if err := d.conn.v5.Ack(d.pub); err != nil {
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
		t.closeClient()
		if n := t.stale.Load(); n > 0 {
			t.log.Info("messages left unacknowledged because their connection closed; the broker sends them again", "count", n)
		}
	})
}

// closeClient disconnects the client, keeping the session, and stops it.
func (t *Task) closeClient() {
	if t.client == nil {
		if t.cancel != nil {
			t.cancel()
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.client.disconnect(ctx); err != nil {
		t.log.Warn("disconnecting from the MQTT broker", "client", t.clientID, "err", err)
	}
	t.cancel()
	t.client = nil
	t.current.Store(nil)
}
