package mqttsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestFilterSyntax(t *testing.T) {
	for _, f := range []string{"a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "$SYS/#"} {
		if err := checkFilter(f); err != nil {
			t.Errorf("checkFilter(%q) = %v, want valid", f, err)
		}
	}
	for _, f := range []string{"", "a/#/c", "a#", "a/b+", "+a/b", "$share/g/a", "a\x00b"} {
		if err := checkFilter(f); err == nil {
			t.Errorf("checkFilter(%q) accepted it", f)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          []string
		ok            bool
	}{
		{"a/b", "a/b", nil, true},
		{"a/b", "a/c", nil, false},
		{"a/+/c", "a/x/c", []string{"x"}, true},
		{"a/+/c", "a/x/d", nil, false},
		{"a/+", "a/x/y", nil, false},
		{"a/#", "a/x/y", []string{"x/y"}, true},
		{"a/#", "a", []string{""}, true},
		{"#", "a/b", []string{"a/b"}, true},
		{"+/+", "a/b", []string{"a", "b"}, true},
		{"+/b/#", "a/b/c/d", []string{"a", "c/d"}, true},
		{"a/+", "a/", []string{""}, true},
		{"#", "$SYS/x", nil, false},
		{"+/x", "$SYS/x", nil, false},
		{"$SYS/#", "$SYS/x", []string{"x"}, true},
		{"a/b/c", "a/b", nil, false},
	}
	for _, tt := range tests {
		got, ok := match(tt.filter, tt.topic)
		if ok != tt.ok || ok && !slices.Equal(got, tt.want) {
			t.Errorf("match(%q, %q) = %q, %v; want %q, %v", tt.filter, tt.topic, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMappings(t *testing.T) {
	rules, err := parseMappings([]string{
		"sensors/+/temperature=iot.temperature.{1}",
		"plant/+/line/#=plant.{1}.{2}",
		"alarms/#=iot.alarms",
	})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"sensors/dev-7/temperature": "iot.temperature.dev-7",
		"sensors/d ü:1/temperature": "iot.temperature.d___1",
		"plant/p1/line/a/b":         "plant.p1.a.b",
		"alarms/x/y":                "iot.alarms",
	} {
		got, ok, err := topicFor(rules, topic)
		if !ok || err != nil || got != want {
			t.Errorf("topicFor(%q) = %q, %v, %v; want %q", topic, got, ok, err, want)
		}
	}
	if _, ok, _ := topicFor(rules, "other/x"); ok {
		t.Error("an unmatched topic matched")
	}
	for _, bad := range []string{"no-equals", "a/+=t.{2}", "a/+=t.{x}", "a/+=t.{1", "a=bad topic", "a/#/b=t", "a=.."} {
		if _, err := parseMappings([]string{bad}); err == nil {
			t.Errorf("parseMappings(%q) accepted it", bad)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	tests := []struct {
		v      any
		format string
	}{
		{"2024-05-01T12:00:00.5Z", "auto"},
		{"2024-05-01T14:00:00.5+02:00", "iso8601"},
		{"2024-05-01T12:00:00.5", "auto"},
		{"2024-05-01 12:00:00.5Z", "auto"},
		{jsonNum("1714564800.5"), "auto"},
		{jsonNum("1714564800500"), "auto"},
		{jsonNum("1714564800500000"), "auto"},
		{jsonNum("1714564800500000000"), "auto"},
		{jsonNum("1714564800500"), "epoch.millis"},
		{"1714564800500", "auto"},
		{jsonNum("1714564800.5"), "epoch.seconds"},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.v, tt.format)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%v, %s) = %v, %v; want %v", tt.v, tt.format, got, err, want)
		}
	}
	for _, bad := range []struct {
		v      any
		format string
	}{{"yesterday", "auto"}, {jsonNum("17"), "iso8601"}, {true, "auto"}, {nil, "auto"}, {"x", "epoch.millis"}, {jsonNum("1e300"), "epoch.seconds"}} {
		if got, err := parseTime(bad.v, bad.format); err == nil {
			t.Errorf("parseTime(%v, %s) = %v, want an error", bad.v, bad.format, got)
		}
	}
}

// newTestTask is a task with a decoded configuration and no connection, for record tests.
func newTestTask(t *testing.T, settings connect.Config) *Task {
	t.Helper()
	cfg := connect.Config{"mqtt.server.uris": "tcp://127.0.0.1:1", "mqtt.topics": "#", "kafka.topic": "iot.raw"}
	for k, v := range settings {
		cfg[k] = v
	}
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parseMappings(c.Mappings)
	if err != nil {
		t.Fatal(err)
	}
	return &Task{cfg: c, rules: rules}
}

func msg(topic, payload string, qos byte) *delivery {
	return &delivery{pub: &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, PacketID: 7}, arrived: time.Unix(1000, 0)}
}

func TestRecordDefaults(t *testing.T) {
	task := newTestTask(t, nil)
	d := msg("sensors/a/reading", `{"x":1}`, 1)
	d.pub.Retain = true
	expiry, format := uint32(60), byte(1)
	d.pub.Properties = &paho.PublishProperties{ContentType: "application/json", MessageExpiry: &expiry, PayloadFormat: &format,
		ResponseTopic: "reply/here", CorrelationData: []byte("c1"), User: paho.UserProperties{{Key: "site", Value: "berlin"}}}
	rec, err := task.record(d)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "iot.raw" || rec.Key != "sensors/a/reading" || string(rec.Value.([]byte)) != `{"x":1}` || !rec.Time.Equal(d.arrived) {
		t.Errorf("record %+v", rec)
	}
	if rec.SourcePartition != nil || rec.SourceOffset != nil || rec.AckHandle != d {
		t.Errorf("source partition %v offset %v handle %v: want no partition or offset, and the delivery", rec.SourcePartition, rec.SourceOffset, rec.AckHandle)
	}
	want := map[string]string{"mqtt.topic": "sensors/a/reading", "mqtt.qos": "1", "mqtt.retain": "true", "mqtt.message.id": "7",
		"mqtt.content.type": "application/json", "mqtt.message.expiry": "60", "mqtt.response.topic": "reply/here",
		"mqtt.correlation.data": "c1", "mqtt.payload.format": "1", "site": "berlin"}
	for k, v := range want {
		if got, ok := rec.Header(k); !ok || string(got) != v {
			t.Errorf("header %s = %q, %v; want %q", k, got, ok, v)
		}
	}
	if len(rec.Headers) != len(want) {
		t.Errorf("headers %v, want %d", rec.Headers, len(want))
	}
	// QoS 0: nothing to acknowledge.
	rec, _ = task.record(msg("a", "x", 0))
	if rec.SourceOffset != nil {
		t.Errorf("QoS 0 record has a delivery: %v", rec.SourceOffset)
	}
	if _, ok := rec.Header("mqtt.message.id"); ok {
		t.Error("QoS 0 record has a message id")
	}
}

func TestRecordKeyTimeAndFormats(t *testing.T) {
	task := newTestTask(t, connect.Config{"key.source": "field", "key.field": "device.id", "timestamp.source": "field",
		"timestamp.field": "ts", "payload.format": "json", "headers.enable": "false",
		"kafka.topic.mappings": "sensors/+/reading=iot.{1}"})
	rec, err := task.record(msg("sensors/b1/reading", `{"device":{"id":42},"ts":"2024-05-01T12:00:00Z","t":21.5,"n":3}`, 1))
	if err != nil {
		t.Fatal(err)
	}
	v := rec.Value.(map[string]any)
	if rec.Topic != "iot.b1" || rec.Key != "42" || !rec.Time.Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)) ||
		v["t"] != 21.5 || v["n"] != int64(3) || rec.Headers != nil {
		t.Errorf("record %+v", rec)
	}
	// Unmapped topics go to kafka.topic.
	rec, err = task.record(msg("other", `{"device":{"id":"x"},"ts":1714564800}`, 1))
	if err != nil || rec.Topic != "iot.raw" || rec.Key != "x" {
		t.Errorf("unmapped: %+v, %v", rec, err)
	}
	s := newTestTask(t, connect.Config{"payload.format": "string", "key.source": "none"})
	rec, err = s.record(msg("a", "héllo", 0))
	if err != nil || rec.Value != "héllo" || rec.Key != nil {
		t.Errorf("string format: %+v, %v", rec, err)
	}
}

func TestBadMessagesGoToTheErrorPolicyWithTheReason(t *testing.T) {
	keyed := connect.Config{"key.source": "field", "key.field": "device_id"}
	tests := []struct {
		name     string
		settings connect.Config
		topic    string
		payload  string
		reason   string
	}{
		{"not JSON", keyed, "s/1", "21.5", "the payload has no field"},
		{"broken JSON", keyed, "s/1", `{"device_id":`, "the payload is not JSON"},
		{"no key field", keyed, "s/1", `{"id":"x"}`, `the payload has no field "device_id"`},
		{"object key", keyed, "s/1", `{"device_id":{"a":1}}`, "the key must be a string, number or boolean"},
		{"bad time", connect.Config{"timestamp.source": "field", "timestamp.field": "ts"}, "s/1", `{"ts":"soon"}`, "not an ISO 8601 time"},
		{"oversize", connect.Config{"payload.max.bytes": "4"}, "s/1", "12345", "larger than payload.max.bytes (4 bytes)"},
		{"not UTF-8", connect.Config{"payload.format": "string"}, "s/1", "\xff\xfe", "not UTF-8"},
		{"not JSON value", connect.Config{"payload.format": "json"}, "s/1", "{", "not JSON"},
		{"no topic", connect.Config{"kafka.topic": "", "kafka.topic.mappings": "x/#=t"}, "s/1", "x", "no rule of kafka.topic.mappings matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := newTestTask(t, tt.settings).record(msg(tt.topic, tt.payload, 1))
			if err == nil || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), tt.topic) {
				t.Fatalf("error %v, want one naming the MQTT topic %q and saying %q", err, tt.topic, tt.reason)
			}
			if h, _ := rec.Header("mqtt.topic"); string(h) != tt.topic {
				t.Errorf("mqtt.topic header %q", h)
			}
			if h, _ := rec.Header("mqtt.error"); string(h) != err.Error() {
				t.Errorf("mqtt.error header %q, want %q", h, err)
			}
			if tt.name == "oversize" && rec.Value != nil {
				t.Errorf("an oversize payload is kept on the reported record")
			} else if tt.name != "oversize" && string(rec.Value.([]byte)) != tt.payload {
				t.Errorf("reported value %q, want the payload", rec.Value)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := connect.Config{"mqtt.server.uris": "tcp://h:1883", "mqtt.topics": "a/#", "kafka.topic": "t"}
	tests := []struct {
		change connect.Config
		key    string
		says   string
	}{
		{connect.Config{"mqtt.qos": "3"}, "mqtt.qos", "at most 2"},
		{connect.Config{"mqtt.server.uris": "http://h:80"}, "mqtt.server.uris", "scheme"},
		{connect.Config{"mqtt.server.uris": "tcp://h"}, "mqtt.server.uris", "port"},
		{connect.Config{"mqtt.topics": "a/#/b"}, "mqtt.topics", `"a/#/b"`},
		{connect.Config{"kafka.topic": ""}, "kafka.topic", "Give kafka.topic"},
		{connect.Config{"kafka.topic": "bad topic"}, "kafka.topic", "must match"},
		{connect.Config{"kafka.topic.mappings": "a/+=x.{3}"}, "kafka.topic.mappings", "{3}"},
		{connect.Config{"key.source": "field"}, "key.field", "name the payload field"},
		{connect.Config{"timestamp.source": "field"}, "timestamp.field", "name the payload field"},
		{connect.Config{"mqtt.tls.ca": filepath.Join(dir, "missing.pem")}, "mqtt.tls.ca", "no such file"},
		{connect.Config{"mqtt.tls.ca": notPEM}, "mqtt.tls.ca", "no PEM certificate"},
		{connect.Config{"mqtt.tls.cert": notPEM}, "mqtt.tls.key", "give both"},
		{connect.Config{"mqtt.tls.cert": notPEM, "mqtt.tls.key": notPEM}, "mqtt.tls.cert", "Cannot use the client certificate"},
		{connect.Config{"mqtt.reconnect.backoff.min": "10s", "mqtt.reconnect.backoff.max": "1s"}, "mqtt.reconnect.backoff.max", "at least"},
		{connect.Config{"mqtt.shared.subscription": "sometimes"}, "mqtt.shared.subscription", "one of auto, always, never"},
	}
	spec := connect.SpecOf(Config{})
	for _, tt := range tests {
		cfg := connect.Config{}
		for k, v := range base {
			cfg[k] = v
		}
		for k, v := range tt.change {
			cfg[k] = v
		}
		byKey, other := connect.FieldErrors(spec.Validate(cfg))
		msgs := strings.Join(byKey[tt.key], "; ")
		if len(other) > 0 || !strings.Contains(msgs, tt.says) {
			t.Errorf("%v: errors %v %v; want on %s one saying %q", tt.change, byKey, other, tt.key, tt.says)
		}
	}
	if err := spec.Validate(base); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestTaskConfigsShareOnlyWithSeveralTasks(t *testing.T) {
	p := connecttest.Registered(t, Name)
	for _, tt := range []struct {
		shared   string
		maxTasks int
		tasks    int
		want     string
	}{
		{"auto", 1, 1, "never"}, {"auto", 3, 3, "always"}, {"never", 3, 1, "never"}, {"always", 1, 1, "always"},
	} {
		c := &Connector{}
		cfg := p.ExampleConfig()
		cfg["mqtt.shared.subscription"] = tt.shared
		if err := c.Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err != nil {
			t.Fatal(err)
		}
		tasks, err := c.TaskConfigs(tt.maxTasks)
		if err != nil || len(tasks) != tt.tasks || tasks[0]["mqtt.shared.subscription"] != tt.want {
			t.Errorf("%s with tasks.max %d: %d tasks %v, %v; want %d sharing %s", tt.shared, tt.maxTasks, len(tasks), tasks, err, tt.tasks, tt.want)
		}
	}
}

func TestConnectorRejectsABadConfig(t *testing.T) {
	for _, cfg := range []connect.Config{
		{},
		{"mqtt.server.uris": "tcp://h:1", "mqtt.topics": "a"},
		{"mqtt.server.uris": "tcp://h:1", "mqtt.topics": "a", "kafka.topic": "t", "mqtt.qos": "-1"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}

func TestExplainSaysWhatToFix(t *testing.T) {
	noCert, withCert := &Config{}, &Config{TLSCert: "/c.pem"}
	tests := []struct {
		err   error
		cfg   *Config
		tls   bool
		says  string
		final bool
	}{
		{errors.New("remote error: tls: certificate required"), noCert, true, "requires a client certificate (mutual TLS) and refused the connection because the task presented none (TLS alert: certificate required); set mqtt.tls.cert and mqtt.tls.key", true},
		{errors.New("remote error: tls: unknown certificate authority"), withCert, true, "refused the client certificate /c.pem", true},
		{fmt.Errorf("dial: %w", errConnRefused()), noCert, false, "connection refused", false},
		{autopaho.NewConnackError(errors.New("x"), &paho.Connack{ReasonCode: 0x86}), noCert, false, "bad user name or password", true},
		{autopaho.NewConnackError(errors.New("x"), &paho.Connack{ReasonCode: 0x89}), noCert, false, "server busy", false},
	}
	for _, tt := range tests {
		ce := explain("ssl://b:8883", tt.err, tt.cfg, tt.tls)
		if !strings.Contains(ce.Error(), tt.says) || ce.permanent != tt.final || !strings.Contains(ce.Error(), "ssl://b:8883") {
			t.Errorf("explain(%v) = %q permanent %v; want %q permanent %v", tt.err, ce.Error(), ce.permanent, tt.says, tt.final)
		}
	}
}

func TestBackoffDoublesUpToTheMaximum(t *testing.T) {
	b := backoff(100*time.Millisecond, time.Second)
	if b(0) != 0 {
		t.Errorf("first attempt waits %v", b(0))
	}
	for attempt, lo := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 9: time.Second} {
		if d := b(attempt); d < lo || d > lo+lo/5 {
			t.Errorf("attempt %d waits %v, want %v plus at most a fifth", attempt, d, lo)
		}
	}
}

// TestBatchRecordsShareNothingWritable: the records of one Poll take their headers from one
// array and share per-topic parts; each record's headers are its own (appending to one copies)
// and its values are right.
func TestBatchRecordsShareNothingWritable(t *testing.T) {
	task := newTestTask(t, connect.Config{"kafka.topic.mappings": "s/+/r=t.{1}"})
	task.arena.reset(3, true)
	var recs []connect.Record
	for i, topic := range []string{"s/a/r", "s/b/r", "s/a/r"} {
		d := msg(topic, "x", 1)
		d.pub.PacketID = uint16(100 + i)
		rec, err := task.record(d)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	recs[0].Headers = append(recs[0].Headers, connect.Header{Key: "extra", Value: []byte("y")})
	for i, want := range []struct{ topic, kafka, id string }{{"s/a/r", "t.a", "100"}, {"s/b/r", "t.b", "101"}, {"s/a/r", "t.a", "102"}} {
		r := recs[i]
		if r.Topic != want.kafka || r.Key != want.topic {
			t.Errorf("record %d: topic %s key %v", i, r.Topic, r.Key)
		}
		if got, _ := r.Header("mqtt.topic"); string(got) != want.topic {
			t.Errorf("record %d: mqtt.topic %q", i, got)
		}
		if got, _ := r.Header("mqtt.message.id"); string(got) != want.id {
			t.Errorf("record %d: mqtt.message.id %q, want %s", i, got, want.id)
		}
		if _, ok := r.Header("extra"); ok != (i == 0) {
			t.Errorf("record %d: the header appended to record 0 shows: %v", i, ok)
		}
	}
	if err := acknowledge(t.Context(), task, recs...); err != nil {
		t.Fatal(err)
	}
}

// TestPollBatchesAStreamAndReturnsALoneMessage: when messages keep coming, Poll lingers a
// moment on an empty buffer and returns them as one batch, rather than a record per message;
// a lone message comes back on its own at once. The stream is a goroutine that starts sending
// once Poll took the first message; a loaded machine may not run it within Poll's linger, so
// the stream gets five tries to be batched.
func TestPollBatchesAStreamAndReturnsALoneMessage(t *testing.T) {
	for _, qos := range []string{"0", "1"} {
		t.Run("qos"+qos, func(t *testing.T) {
			var sizes []int
			for range 5 {
				task := newTestTask(t, connect.Config{"mqtt.qos": qos})
				task.msgs = make(chan *delivery, 1000)
				task.msgs <- msg("a", "0", 0)
				go func() {
					for len(task.msgs) > 0 { // Poll took the first
						time.Sleep(50 * time.Microsecond)
					}
					for i := 1; i < 100; i++ {
						task.msgs <- msg("a", fmt.Sprint(i), 0)
					}
				}()
				recs, err := task.Poll(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if sizes = append(sizes, len(recs)); len(recs) >= 2 {
					break
				}
			}
			if sizes[len(sizes)-1] < 2 {
				t.Errorf("Poll returned %v records of streams of 100; want a batch", sizes)
			}
			task := newTestTask(t, connect.Config{"mqtt.qos": qos})
			task.msgs = make(chan *delivery, 1000)
			task.msgs <- msg("a", "lone", 0)
			begin := time.Now()
			recs, _ := task.Poll(t.Context())
			if d := time.Since(begin); len(recs) != 1 || d > 500*time.Millisecond {
				t.Errorf("a lone message: %d records after %v", len(recs), d)
			}
		})
	}
}

// acknowledge hands records to Acknowledged one by one, as the runtime does.
func acknowledge(ctx context.Context, task *Task, recs ...connect.Record) error {
	for _, r := range recs {
		if err := task.Acknowledged(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
