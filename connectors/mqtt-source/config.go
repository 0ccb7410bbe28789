package mqttsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Key, timestamp and payload choices.
const (
	KeyTopic = "topic"
	KeyField = "field"
	KeyNone  = "none"

	TimeArrival = "arrival"
	TimeField   = "field"

	FormatBytes  = "bytes"
	FormatString = "string"
	FormatJSON   = "json"

	VersionAuto = "auto"
	Version5    = "5"
	Version311  = "3.1.1"

	SharedAuto   = "auto"
	SharedAlways = "always"
	SharedNever  = "never"
)

// Config is the mqtt-source connector's configuration.
type Config struct {
	ServerURIs      []string      `config:"mqtt.server.uris" endpoint:"true" required:"true" group:"Connection" display:"Server URIs"`
	ProtocolVersion string        `config:"mqtt.protocol.version" default:"auto" enum:"auto,5,3.1.1" group:"Connection" display:"MQTT protocol version"`
	ClientIDPrefix  string        `config:"mqtt.client.id.prefix" default:"sluice-" group:"Connection"`
	KeepAlive       time.Duration `config:"mqtt.keepalive" default:"30s" min:"1s" max:"65535s" group:"Connection" doc:"MQTT keep-alive: the broker drops the connection when it hears nothing for one and a half times this, and the task pings within it."`
	SessionExpiry   time.Duration `config:"mqtt.session.expiry" default:"24h" min:"0" max:"4294967295s" importance:"high" group:"Connection"`
	CleanStart      bool          `config:"mqtt.clean.start" default:"false" group:"Connection"`
	ConnectTimeout  time.Duration `config:"mqtt.connect.timeout" default:"30s" min:"100ms" max:"1h" group:"Connection"`
	BackoffMin      time.Duration `config:"mqtt.reconnect.backoff.min" default:"500ms" min:"10ms" max:"1h" importance:"low" group:"Connection" doc:"First wait before reconnecting after the connection was lost; the waits double up to mqtt.reconnect.backoff.max."`
	BackoffMax      time.Duration `config:"mqtt.reconnect.backoff.max" default:"30s" min:"10ms" max:"1h" importance:"low" group:"Connection" doc:"Longest wait between reconnection attempts."`
	ReceiveMaximum  int           `config:"mqtt.receive.maximum" default:"1000" min:"1" max:"65535" importance:"low" group:"Connection"`
	SessionCleanup  bool          `config:"mqtt.session.cleanup" default:"true" group:"Connection"`
	RegistryTopic   string        `config:"mqtt.session.registry.topic" default:"sluice/mqtt-source/{connector}/sessions" importance:"low" group:"Connection"`
	TestConnect     bool          `config:"mqtt.validate.connection" default:"true" importance:"low" group:"Connection"`

	Username      string `config:"mqtt.username" group:"Security" doc:"User name to connect with; none when empty."`
	Password      string `config:"mqtt.password" secret:"true" group:"Security" doc:"Password to connect with."`
	TLSCA         string `config:"mqtt.tls.ca" group:"Security" display:"TLS CA file" doc:"PEM file of the CA certificates that sign the broker's certificate, for ssl:// and wss:// servers; the system's CAs when empty."`
	TLSCert       string `config:"mqtt.tls.cert" group:"Security" display:"TLS client certificate" doc:"PEM file of the client certificate, for brokers that require mutual TLS; give mqtt.tls.key with it."`
	TLSKey        string `config:"mqtt.tls.key" group:"Security" display:"TLS client key" doc:"PEM file of the client certificate's private key (unencrypted)."`
	TLSInsecure   bool   `config:"mqtt.tls.insecure.skip.verify" default:"false" importance:"low" group:"Security" doc:"Accept any server certificate without checking it. For tests only: it lets anyone in the middle read the data."`
	TLSServerName string `config:"mqtt.tls.server.name" importance:"low" group:"Security" doc:"Name to check the broker's certificate against, when it differs from the host of the server URI."`

	Topics     []string `config:"mqtt.topics" required:"true" group:"Subscription" display:"Topic filters" doc:"MQTT topic filters to subscribe to, with + (one level) and # (the rest) wildcards: sensors/+/reading, plant/#."`
	QoS        int      `config:"mqtt.qos" default:"1" min:"0" max:"2" importance:"high" group:"Subscription" display:"QoS"`
	Shared     string   `config:"mqtt.shared.subscription" default:"auto" enum:"auto,always,never" group:"Subscription"`
	ShareGroup string   `config:"mqtt.shared.group" pattern:"[^/+#]*" group:"Subscription" doc:"Name of the shared subscription group; the connector's name when empty. Connectors with the same group split one stream."`
	Mappings   []string `config:"kafka.topic.mappings" group:"Records"`
	Topic      string   `config:"kafka.topic" pattern:"[a-zA-Z0-9._-]{1,249}" group:"Records" doc:"Kafka topic of the messages no mapping rule matches. Give this, kafka.topic.mappings, or both."`
	KeySource  string   `config:"key.source" default:"topic" enum:"topic,field,none" group:"Records" doc:"The record key: the MQTT topic; a field of the JSON payload (key.field), so that one device's readings stay in order on one partition; or none."`
	KeyField   string   `config:"key.field" group:"Records"`
	TimeSource string   `config:"timestamp.source" default:"arrival" enum:"arrival,field" group:"Records" doc:"The record timestamp: when the message arrived, or a field of the JSON payload (timestamp.field), the reading's event time."`
	TimeField  string   `config:"timestamp.field" group:"Records"`
	TimeFormat string   `config:"timestamp.format" default:"auto" enum:"auto,iso8601,epoch.seconds,epoch.millis,epoch.micros,epoch.nanos" group:"Records"`
	Format     string   `config:"payload.format" default:"bytes" enum:"bytes,string,json" group:"Records"`
	MaxPayload int      `config:"payload.max.bytes" default:"900000" min:"0" max:"268435455" group:"Records"`
	Headers    bool     `config:"headers.enable" default:"true" group:"Records"`
	BatchSize  int      `config:"batch.size" default:"1000" min:"1" max:"100000" importance:"low" group:"Records" doc:"Most records one poll returns."`
	BufferSize int      `config:"buffer.size" default:"10000" min:"1" max:"1000000" importance:"low" group:"Records" doc:"Messages a task holds between the MQTT connection and the runtime. When it is full the task stops reading from the connection until the runtime catches up."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"mqtt.server.uris": "MQTT servers to connect to, tried in order: tcp:// (or mqtt://), ssl:// (or tls://, " +
			"mqtts://), ws:// and wss:// URIs with a host and port, such as tcp://broker:1883. A " +
			"task connects to the first that answers and goes down the list when it reconnects.",
		"mqtt.protocol.version": "MQTT version to speak: 5, 3.1.1, or auto, which tries 5 and falls back to 3.1.1 when " +
			"the broker refuses the protocol version (CONNACK 0x84 Unsupported Protocol Version, " +
			"a 3.1.1 broker's return code 1, or the connection closed on the v5 CONNECT); a task " +
			"keeps the version it started with. On 3.1.1 there is no session expiry " +
			"(mqtt.session.expiry 0 means clean session, anything else a persistent session the " +
			"broker keeps by its own rules), no Receive Maximum (the broker's in-flight limit " +
			"applies), no user properties or other v5 metadata headers, and shared subscriptions " +
			"are a broker extension ($share/ works for 3.1.1 clients on Mosquitto, HiveMQ, EMQX " +
			"and VerneMQ).",
		"mqtt.client.id.prefix": "Start of each task's MQTT client id; the id is this prefix, the connector's name, a " +
			"dash and the task number (sluice-mqtt-in-0). The id names the task's persistent " +
			"session on the broker, so it stays the same when the task restarts or moves to " +
			"another worker.",
		"mqtt.session.expiry": "How long the broker keeps a task's session (its subscriptions and the QoS 1 and 2 " +
			"messages not yet acknowledged) after the task disconnects. A task that is restarted " +
			"or moved within this time loses nothing; 0 ends the session with the connection, so " +
			"messages published while a task is down are lost. MQTT 3.1.1 has no session expiry: " +
			"there 0 means clean session on, and any other value a persistent session that the " +
			"broker keeps by its own rules.",
		"mqtt.clean.start": "Discard the session the broker kept for a task when the task starts, and with it " +
			"every message published while the task was down. Leave it off to lose nothing. On " +
			"MQTT 3.1.1, which has no clean start, the task ends the kept session with a " +
			"clean-session connection first.",
		"mqtt.connect.timeout": "How long a starting task tries to connect and subscribe before it fails with the " +
			"reason. A refusal that trying again cannot fix (a certificate or password the broker " +
			"rejects) fails it at once.",
		"mqtt.receive.maximum": "Most QoS 1 and 2 messages the broker may send a task before the task acknowledges " +
			"them (MQTT v5 Receive Maximum). A task acknowledges a message once Kafka has it, so " +
			"this bounds the messages in flight.",
		"mqtt.session.cleanup": "End the broker sessions of tasks that no longer exist: after tasks.max was lowered, " +
			"mqtt.client.id.prefix changed, or the connector was deleted. Such a session stays a " +
			"member of the shared subscription group and the broker goes on handing it its share " +
			"of the messages, which nobody reads and which are lost when the session expires. The " +
			"connector keeps the list of client ids it gave its tasks on " +
			"mqtt.session.registry.topic, ends the sessions of the ids that left the list (and of " +
			"task numbers just above the current ones), and ends all of its sessions when it is " +
			"deleted; the messages already queued for those sessions are dropped with them. Turn " +
			"it off only when another tool manages the sessions.",
		"mqtt.session.registry.topic": "Topic of the retained message that lists the client ids the connector gave its " +
			"tasks, for mqtt.session.cleanup; {connector} stands for the connector's name. The " +
			"connector's MQTT user must be allowed to publish and subscribe to it and to the " +
			"topics below it. Tasks skip messages on these topics when a filter of theirs matches " +
			"them. Two Sluice clusters that share a broker and have connectors of the same name " +
			"must give them different topics.",
		"mqtt.validate.connection": "Try the servers when the configuration is validated, and so when the connector is " +
			"created or changed: a refusal that retrying cannot fix (a certificate, user name or " +
			"password the broker rejects) makes the configuration invalid. An unreachable broker " +
			"does not. Turn it off to create connectors for a broker that is not set up yet.",
		"mqtt.qos": "Quality of service of the subscriptions. With 1 or 2 a message is acknowledged to " +
			"the broker only once Kafka acknowledged its record (or the error policy dealt with " +
			"it), so nothing the broker accepted is lost; 0 is at most once.",
		"mqtt.shared.subscription": "Subscribe through MQTT v5 shared subscriptions ($share/group/filter; on MQTT 3.1.1 a " +
			"broker extension that Mosquitto, HiveMQ, EMQX and VerneMQ offer), so that the broker " +
			"splits the messages between the tasks, on whichever workers they run. auto shares " +
			"when the connector runs more than one task; never makes every task get every " +
			"message.",
		"kafka.topic.mappings": "Rules from MQTT topic filters to Kafka topics, filter=topic, tried in order; the " +
			"first whose filter matches a message's topic names its Kafka topic. In the Kafka " +
			"topic, {1}, {2}, ... stand for the levels the filter's wildcards matched (those of # " +
			"joined with dots), with characters Kafka does not allow replaced by _: " +
			"sensors/+/temperature=iot.temperature.{1}.",
		"key.field": "With key.source=field: the payload field that holds the key, with dots for nested " +
			"objects (device.id). Its text is the key; a payload that is not JSON or lacks the " +
			"field goes to the error policy.",
		"timestamp.field": "With timestamp.source=field: the payload field that holds the event time, with dots " +
			"for nested objects. A payload that is not JSON, lacks it, or holds no time goes to " +
			"the error policy.",
		"timestamp.format": "How timestamp.field is written: iso8601 text (2024-05-01T12:00:00.5Z; without a zone " +
			"it is UTC), or a number since the Unix epoch in the unit named. auto reads text as " +
			"ISO 8601 and a number as epoch seconds, milliseconds, microseconds or nanoseconds by " +
			"its size.",
		"payload.format": "The record value: the payload's bytes (pair with value.converter=bytearray to write " +
			"them unchanged); a string (the payload must be UTF-8); or json, the parsed payload " +
			"(maps, lists, strings, numbers), for the JSON converter and transformations.",
		"payload.max.bytes": "Largest payload turned into a record; a larger one goes to the error policy with its " +
			"size, without its payload. The default leaves room for key and headers below the " +
			"producer's message.max.bytes of 1000000.",
		"headers.enable": "Add the message's MQTT metadata as headers: mqtt.topic, mqtt.qos, mqtt.retain, " +
			"mqtt.message.id (QoS 1 and 2), and when the publisher set them mqtt.content.type, " +
			"mqtt.message.expiry (seconds left), mqtt.response.topic, mqtt.correlation.data and " +
			"mqtt.payload.format; each MQTT v5 user property becomes a header of its own name.",
	}
}

// Example is a configuration that reads sensor readings into one topic, keyed by device.
func (Config) Example() connect.Config {
	return connect.Config{
		"mqtt.server.uris": "tcp://localhost:1883",
		"mqtt.topics":      "sensors/+/reading",
		"kafka.topic":      "iot.raw",
		"key.source":       "field",
		"key.field":        "device_id",
	}
}

// Validate checks the rules across settings and what a single setting's declaration cannot
// say: URI and filter syntax, the mapping rules, and that the TLS files can be read.
func (c Config) Validate() error {
	var errs connect.FieldProblems
	for _, u := range c.ServerURIs {
		if _, err := parseServerURI(u); err != nil {
			errs.Addf("mqtt.server.uris", "%v", err)
		}
	}
	if len(c.ServerURIs) == 0 {
		errs.Addf("mqtt.server.uris", "Give at least one server URI, such as tcp://localhost:1883")
	}
	for _, f := range c.Topics {
		if err := checkFilter(f); err != nil {
			errs.Addf("mqtt.topics", "Invalid topic filter %q: %v", f, err)
		}
	}
	if len(c.Topics) == 0 {
		errs.Addf("mqtt.topics", "Give at least one topic filter, such as sensors/#")
	}
	if _, err := parseMappings(c.Mappings); err != nil {
		errs.Addf("kafka.topic.mappings", "%v", err)
	}
	if c.Topic == "" && len(c.Mappings) == 0 {
		errs.Addf("kafka.topic", "Give kafka.topic, kafka.topic.mappings or both: records need a Kafka topic")
	}
	if c.KeySource == KeyField && c.KeyField == "" {
		errs.Addf("key.field", "key.source is field: name the payload field that holds the key")
	}
	if c.TimeSource == TimeField && c.TimeField == "" {
		errs.Addf("timestamp.field", "timestamp.source is field: name the payload field that holds the event time")
	}
	switch rt := c.RegistryTopic; {
	case rt == "" && c.SessionCleanup:
		errs.Addf("mqtt.session.registry.topic", "mqtt.session.cleanup is on: name the topic of the list of client ids, such as sluice/mqtt-source/{connector}/sessions")
	case strings.ContainsAny(rt, "+#"):
		errs.Addf("mqtt.session.registry.topic", "Invalid topic %q: a topic to publish to has no wildcards (+ or #)", rt)
	case strings.HasPrefix(rt, "$"):
		errs.Addf("mqtt.session.registry.topic", "Invalid topic %q: topics that start with $ are the broker's ($SYS)", rt)
	}
	if c.BackoffMax < c.BackoffMin {
		errs.Addf("mqtt.reconnect.backoff.max", "Invalid value %s: must be at least mqtt.reconnect.backoff.min (%s)", c.BackoffMax, c.BackoffMin)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		key := "mqtt.tls.key"
		if c.TLSCert == "" {
			key = "mqtt.tls.cert"
		}
		errs.Addf(key, "mqtt.tls.cert and mqtt.tls.key go together: give both or neither")
	}
	if len(errs) == 0 {
		if _, err := c.tlsConfig(""); err != nil {
			errs.Add(err)
		}
	}
	return errs.Err()
}

// clientID is the MQTT client id of a task: stable across restarts and moves, so the task
// finds its session again.
func (c Config) clientID(connector string, task int) string {
	return fmt.Sprintf("%s%s-%d", c.ClientIDPrefix, connector, task)
}

// tlsConfig builds the TLS configuration for ssl:// and wss:// servers from the files named;
// host is the server's host, checked against its certificate unless mqtt.tls.server.name is
// set. Errors name the setting and the file.
func (c Config) tlsConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: c.TLSInsecure} //nolint:gosec // the user's choice, documented as unsafe
	if c.TLSServerName != "" {
		cfg.ServerName = c.TLSServerName
	}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, &connect.FieldError{Key: "mqtt.tls.ca", Message: fmt.Sprintf("Cannot read the CA file %q: %v", c.TLSCA, unwrapPath(err))}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &connect.FieldError{Key: "mqtt.tls.ca", Message: fmt.Sprintf("The CA file %q holds no PEM certificate", c.TLSCA)}
		}
		cfg.RootCAs = pool
	}
	if c.TLSCert != "" && c.TLSKey != "" {
		for key, path := range map[string]string{"mqtt.tls.cert": c.TLSCert, "mqtt.tls.key": c.TLSKey} {
			if _, err := os.Stat(path); err != nil {
				return nil, &connect.FieldError{Key: key, Message: fmt.Sprintf("Cannot read %q: %v", path, unwrapPath(err))}
			}
		}
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, &connect.FieldError{Key: "mqtt.tls.cert", Message: fmt.Sprintf("Cannot use the client certificate %q with the key %q: %v", c.TLSCert, c.TLSKey, err)}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// unwrapPath drops the path from an *os.PathError, which the message names already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// servers parses mqtt.server.uris, and reports whether any of them speaks TLS.
func (c *Config) servers() (servers []*url.URL, anyTLS bool, err error) {
	for _, s := range c.ServerURIs {
		u, err := parseServerURI(s)
		if err != nil {
			return nil, false, err
		}
		anyTLS = anyTLS || usesTLS(u)
		servers = append(servers, u)
	}
	return servers, anyTLS, nil
}

// parseServerURI checks one server URI: a known scheme, a host and a port.
func parseServerURI(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("Invalid server URI %q: %v", s, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("Invalid server URI %q: the scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss", s)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("Invalid server URI %q: give a host and a port, as in tcp://broker:1883", s)
	}
	return u, nil
}

// usesTLS reports whether a server URI's scheme is a TLS one.
func usesTLS(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "ssl", "tls", "mqtts", "wss":
		return true
	}
	return false
}
