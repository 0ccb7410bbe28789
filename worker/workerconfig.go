package worker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/kafkaclient"
	"github.com/sluicehq/sluice/worker/task"
)

// WorkerConfig is a worker's settings, with Kafka Connect's names. It is declared once; the
// same declaration validates worker.properties, applies defaults and documents the settings.
type WorkerConfig struct {
	BootstrapServers string `config:"bootstrap.servers" required:"true" doc:"Kafka brokers to connect to, host:port pairs separated by commas."`
	GroupID          string `config:"group.id" default:"connect-cluster" doc:"The worker group: workers with the same group.id share connectors and tasks."`

	ConfigTopic       string `config:"config.storage.topic" default:"connect-configs" doc:"Compacted topic holding connector and task configurations (one partition)."`
	ConfigReplication int    `config:"config.storage.replication.factor" default:"3" min:"-1" doc:"Replication factor of the config topic when the worker creates it; -1 uses the broker default."`
	OffsetTopic       string `config:"offset.storage.topic" default:"connect-offsets" doc:"Compacted topic holding source connector offsets."`
	OffsetReplication int    `config:"offset.storage.replication.factor" default:"3" min:"-1" doc:"Replication factor of the offsets topic when the worker creates it."`
	OffsetPartitions  int    `config:"offset.storage.partitions" default:"25" min:"1" doc:"Partitions of the offsets topic when the worker creates it."`
	StatusTopic       string `config:"status.storage.topic" default:"connect-status" doc:"Compacted topic holding connector and task statuses."`
	StatusReplication int    `config:"status.storage.replication.factor" default:"3" min:"-1" doc:"Replication factor of the status topic when the worker creates it."`
	StatusPartitions  int    `config:"status.storage.partitions" default:"5" min:"1" doc:"Partitions of the status topic when the worker creates it."`

	OffsetFlushInterval time.Duration `config:"offset.flush.interval.ms" default:"60000" min:"1ms" doc:"How often source offsets are stored and sink offsets committed."`
	OffsetFlushTimeout  time.Duration `config:"offset.flush.timeout.ms" default:"5000" min:"1ms" doc:"How long an offset flush may take before it is abandoned and retried at the next interval."`
	ShutdownTimeout     time.Duration `config:"task.shutdown.graceful.timeout.ms" default:"5000" min:"0" doc:"How long, in total, stopping tasks may take before the worker abandons them and reports it."`

	Listeners          []string `config:"listeners" default:"http://:8083" doc:"REST API listeners, as URLs."`
	AdvertisedHost     string   `config:"rest.advertised.host.name" doc:"Host name other workers use to reach this worker's REST API; defaults to the host name."`
	AdvertisedPort     int      `config:"rest.advertised.port" min:"0" max:"65535" doc:"Port other workers use to reach this worker's REST API; defaults to the first listener's port."`
	AdvertisedListener string   `config:"rest.advertised.listener" enum:"http,https" doc:"Scheme of the advertised REST URL."`
	AllowOrigins       []string `config:"access.control.allow.origin"`
	AllowMethods       []string `config:"access.control.allow.methods" doc:"Methods cross-origin requests from access.control.allow.origin may use; empty means GET, POST and HEAD."`
	TLS                RESTTLS  `config:"listeners.https"`
	AuthUsersFile      string   `config:"rest.auth.users.file"`
	AuthTokensFile     string   `config:"rest.auth.tokens.file"`
	AuthAdmins         []string `config:"rest.auth.admin.users" default:"*" doc:"Users and token names with the admin role (every request); * for every authenticated caller."`
	AuthReaders        []string `config:"rest.auth.read.users" doc:"Users and token names with the read role (GET and HEAD only). A caller in neither list is refused (403)."`
	AuthNoneAllowed    bool     `config:"rest.auth.none.allowed" default:"false"`
	AllowedHosts       []string `config:"rest.allowed.hosts"`

	KeyConverter    string `config:"key.converter" default:"org.apache.kafka.connect.json.JsonConverter" doc:"Default converter of record keys; connectors may override it."`
	ValueConverter  string `config:"value.converter" default:"org.apache.kafka.connect.json.JsonConverter" doc:"Default converter of record values; connectors may override it."`
	HeaderConverter string `config:"header.converter" default:"org.apache.kafka.connect.storage.SimpleHeaderConverter" doc:"Converter of header values (headers are passed as bytes)."`

	FileAllowedPaths []string `config:"connector.file.allowed.paths"`

	TopicCreationEnable bool   `config:"topic.creation.enable" default:"true" doc:"Let source connectors create their topics with topic.creation.* settings."`
	OverridePolicy      string `config:"connector.client.config.override.policy" default:"None" enum:"None,Principal,All"`

	KeyTTL                     time.Duration `config:"inter.worker.key.ttl.ms" default:"3600000" min:"1s" max:"2147483647ms"`
	SignatureAlgorithm         string        `config:"inter.worker.signature.algorithm" default:"HmacSHA256" enum:"HmacSHA256" doc:"Algorithm internal requests are signed with."`
	ScheduledRebalanceMaxDelay time.Duration `config:"scheduled.rebalance.max.delay.ms" default:"15000" min:"0"`
	SessionTimeout             time.Duration `config:"session.timeout.ms" default:"10000" min:"1ms" doc:"How long the group waits for a silent worker before it is considered gone."`
	HeartbeatInterval          time.Duration `config:"heartbeat.interval.ms" default:"3000" min:"1ms" doc:"How often a worker heartbeats to the group coordinator."`
	RebalanceTimeout           time.Duration `config:"rebalance.timeout.ms" default:"60000" min:"1ms" doc:"How long a rebalance may take."`

	PluginPath    string `config:"plugin.path" doc:"Accepted for compatibility with Kafka Connect and ignored: Sluice's connectors are compiled in."`
	MetricsEnable bool   `config:"metrics.enable" default:"true" doc:"Serve Prometheus metrics at /metrics on the REST listeners."`

	// Client holds the Kafka client settings given with the producer., consumer. and admin.
	// prefixes, and the security settings (security.protocol, sasl.*, ssl.*) that apply to
	// every client.
	Client kafkaclient.Settings `config:"-"`
	// Raw is every setting as given, for converter settings by prefix.
	Raw map[string]string `config:"-"`
	// Providers are the config providers config.providers enables.
	Providers ConfigProviders `config:"-"`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (WorkerConfig) Docs() map[string]string {
	return map[string]string{
		"access.control.allow.origin": "Origins (scheme://host:port, or * for any) whose web pages may call the REST API " +
			"from a browser. Empty (the default) refuses every cross-origin request with 403: a " +
			"page the worker's user opens cannot drive the worker.",
		"rest.auth.users.file": "htpasswd file of the users who may call the REST API, with bcrypt hashes (htpasswd " +
			"-B); read again when it changes. Turns authentication on (HTTP Basic), with " +
			"rest.auth.tokens.file.",
		"rest.auth.tokens.file": "File of bearer tokens who may call the REST API, one per line as name:sha256:<hex " +
			"SHA-256 of the token>; read again when it changes. Turns authentication on, with " +
			"rest.auth.users.file.",
		"rest.auth.none.allowed": "Serve a REST listener that other machines can reach without authentication. Off by " +
			"default: such a worker refuses to start unless rest.auth.users.file or " +
			"rest.auth.tokens.file is set, or every listener is on a loopback address.",
		"rest.allowed.hosts": "Host names, besides localhost, IP addresses, rest.advertised.host.name and the " +
			"machine's host name, that requests reaching the worker on a loopback address may " +
			"name (refused with 403 otherwise, against DNS rebinding); * allows any.",
		"connector.file.allowed.paths": "Absolute paths of the directories under which connectors may read and write files on " +
			"the worker (the settings a connector declares as paths, such as the file and " +
			"file-source connectors' file), after symbolic links are followed. Empty (the " +
			"default) lets connectors use no file: whoever may create a connector could otherwise " +
			"read or overwrite any file the worker's user can.",
		"connector.client.config.override.policy": "Which producer.override.*, consumer.override.* and admin.override.* settings " +
			"connectors may give: None, only those that say who the client is (Principal: " +
			"security.protocol, the SASL mechanism and credentials), or All. None by default " +
			"(Kafka Connect's is All): with the others a connector can send the worker's clients, " +
			"and its credentials, to another cluster. Settings that run a program or load code on " +
			"the worker (plugin.library.paths, sasl.kerberos.kinit.cmd, ssl.engine.*) are refused " +
			"under every policy.",
		"inter.worker.key.ttl.ms": "How long the leader uses a session key to verify internal requests (the task " +
			"configurations other workers hand it) before it writes a new one to the config topic " +
			"(KIP-507).",
		"scheduled.rebalance.max.delay.ms": "How long a departed worker's connectors and tasks wait for it to come back before " +
			"they move to other workers. Kafka Connect waits 5 minutes; 15 s covers a process " +
			"restart while keeping the data flowing.",
	}
}

// RESTTLS are the settings of https:// REST listeners, with Kafka Connect's listeners.https.
// prefix, in PEM files. The same files make the worker's client when it calls other workers
// (forwarding, task configurations): it trusts the truststore and shows its certificate.
type RESTTLS struct {
	Certificate string `config:"ssl.certificate.location" doc:"PEM file with the certificate chain an https:// listener presents; read again when it changes."`
	Key         string `config:"ssl.key.location" doc:"PEM file with the private key of listeners.https.ssl.certificate.location."`
	Truststore  string `config:"ssl.truststore.location"`
	ClientAuth  string `config:"ssl.client.authentication" default:"none" enum:"none,requested,required"`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (RESTTLS) Docs() map[string]string {
	return map[string]string{
		"ssl.truststore.location": "PEM file of the certificate authorities that sign client certificates, and the other " +
			"workers' certificates; empty trusts the system's authorities for the latter and " +
			"signs no client certificates.",
		"ssl.client.authentication": "Whether an https:// listener asks clients for a certificate signed by the " +
			"truststore: none, requested (checked when given), or required. A verified " +
			"certificate's common name is the caller's name for rest.auth.admin.users and " +
			"rest.auth.read.users.",
	}
}

// passThroughPrefixes are settings not declared above that a worker accepts.
var passThroughPrefixes = []string{
	"producer.", "consumer.", "admin.", "key.converter.", "value.converter.", "header.converter.",
	"security.", "sasl.", "ssl.", "config.providers", "client.",
}

var workerSpec = connect.SpecOf(WorkerConfig{})

// WorkerSpec returns the declaration of the worker's settings.
func WorkerSpec() *connect.Spec { return workerSpec }

// ParseWorkerConfig validates settings and returns the worker configuration. Unknown settings
// are refused with a message that names them.
func ParseWorkerConfig(settings map[string]string) (*WorkerConfig, error) {
	var unknown []string
	for k := range settings {
		if _, ok := workerSpec.Key(k); ok {
			continue
		}
		known := false
		for _, p := range passThroughPrefixes {
			if strings.HasPrefix(k, p) {
				known = true
				break
			}
		}
		if !known {
			unknown = append(unknown, k)
		}
	}
	var errs []error
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, fmt.Errorf("unknown worker settings: %s", strings.Join(unknown, ", ")))
	}
	var cfg WorkerConfig
	if err := workerSpec.Decode(settings, &cfg); err != nil {
		errs = append(errs, err)
	}
	var err error
	if cfg.Providers, err = parseConfigProviders(settings); err != nil {
		errs = append(errs, err)
	}
	if cfg.FileAllowedPaths, err = allowedFilePaths(cfg.FileAllowedPaths); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid worker configuration: %w", errors.Join(errs...))
	}
	cfg.Raw = settings
	cfg.Client = kafkaclient.Settings{Common: map[string]string{}, Producer: map[string]string{}, Consumer: map[string]string{}, Admin: map[string]string{}}
	for k, v := range settings {
		switch {
		case strings.HasPrefix(k, "security."), strings.HasPrefix(k, "sasl."), strings.HasPrefix(k, "ssl."), strings.HasPrefix(k, "client."):
			cfg.Client.Common[k] = v
		case strings.HasPrefix(k, "producer."):
			cfg.Client.Producer[strings.TrimPrefix(k, "producer.")] = v
		case strings.HasPrefix(k, "consumer."):
			cfg.Client.Consumer[strings.TrimPrefix(k, "consumer.")] = v
		case strings.HasPrefix(k, "admin."):
			cfg.Client.Admin[strings.TrimPrefix(k, "admin.")] = v
		}
	}
	if err := task.CheckConsumerSettings(cfg.Client.Consumer); err != nil {
		return nil, fmt.Errorf("invalid worker configuration: %w", err)
	}
	return &cfg, nil
}

// ReadProperties reads a Java-style .properties file: key=value or key: value lines, # and !
// comments, and lines continued with a trailing backslash.
func ReadProperties(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	var pending string
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if pending == "" && (line == "" || line[0] == '#' || line[0] == '!') {
			continue
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			pending += strings.TrimSuffix(line, `\`)
			continue
		}
		line, pending = pending+line, ""
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, fmt.Errorf("line %d: %q is not key=value", n, line)
		}
		out[strings.TrimSpace(line[:i])] = strings.TrimSpace(line[i+1:])
	}
	return out, sc.Err()
}

// LoadWorkerSettings reads worker settings from a properties file (if path is not empty),
// then applies environment variables SLUICE_WORKER_<SETTING> (upper case, dots as
// underscores: SLUICE_WORKER_BOOTSTRAP_SERVERS sets bootstrap.servers), then overrides (from
// flags).
func LoadWorkerSettings(path string, environ []string, overrides map[string]string) (map[string]string, error) {
	settings := map[string]string{}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read worker config: %w", err)
		}
		defer f.Close()
		if settings, err = ReadProperties(f); err != nil {
			return nil, fmt.Errorf("read worker config %s: %w", path, err)
		}
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		name, ok2 := strings.CutPrefix(k, "SLUICE_WORKER_")
		if !ok || !ok2 {
			continue
		}
		settings[strings.ToLower(strings.ReplaceAll(name, "_", "."))] = v
	}
	for k, v := range overrides {
		settings[k] = v
	}
	return settings, nil
}

// converterSettings is what a connector's converters fall back on: the worker's converter
// settings as given, with the declared defaults for the classes left out (a worker.properties
// without key.converter must still run connectors).
func (c *WorkerConfig) converterSettings() map[string]string {
	out := make(map[string]string, len(c.Raw)+3)
	for k, v := range c.Raw {
		out[k] = v
	}
	out["key.converter"] = c.KeyConverter
	out["value.converter"] = c.ValueConverter
	out["header.converter"] = c.HeaderConverter
	return out
}
