package prometheussink

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sluicehq/sluice/connect"
)

// The metric types.
const (
	TypeGauge   = "gauge"
	TypeCounter = "counter"
)

// Config is the prometheus-sink connector's configuration.
type Config struct {
	Listen string `config:"listen.address" default:"0.0.0.0:9400" group:"Endpoint"`
	Path   string `config:"listen.path" default:"/metrics" pattern:"/.*" group:"Endpoint" doc:"HTTP path of the scrape endpoint. It answers in the Prometheus text format, or OpenMetrics when the scraper asks for it."`
	Scrape bool   `config:"scrape.enable" default:"true" group:"Endpoint"`

	MetricName      string   `config:"metric.name" pattern:"[a-zA-Z_:][a-zA-Z0-9_:]*" group:"Metrics" importance:"high"`
	MetricNameField string   `config:"metric.name.field" group:"Metrics"`
	ValueFields     []string `config:"value.fields" default:"value" group:"Metrics" importance:"high"`
	LabelFields     []string `config:"label.fields" group:"Metrics" importance:"high"`
	MetricType      string   `config:"metric.type" default:"gauge" enum:"gauge,counter" group:"Metrics" doc:"Prometheus type of the metrics: gauge, or counter for values that only grow (name counters with a _total suffix)."`
	Help            string   `config:"metric.help" default:"Served by Sluice's prometheus-sink from Kafka records." group:"Metrics" doc:"HELP text of the metrics."`
	Timestamps      bool     `config:"timestamps.enable" default:"false" group:"Metrics"`
	TimestampField  string   `config:"timestamp.field" group:"Metrics"`

	MaxSeries      int           `config:"series.max" default:"100000" min:"1" group:"Limits"`
	TTL            time.Duration `config:"series.ttl" default:"5m" min:"0" group:"Limits" doc:"A series not updated for this long is removed and counted in sluice_prometheus_sink_series_expired_total; 0 keeps series forever."`
	MaxLabelLength int           `config:"label.value.max.length" default:"2048" min:"1" max:"1048576" group:"Limits"`
	MaxLabels      int           `config:"series.labels.max" default:"30" min:"1" max:"1000" group:"Limits"`

	RemoteWriteURL   string        `config:"remote.write.url" endpoint:"true" group:"Remote write"`
	RemoteInterval   time.Duration `config:"remote.write.interval" default:"15s" min:"1ms" group:"Remote write"`
	RemoteTimeout    time.Duration `config:"remote.write.timeout" default:"30s" min:"1ms" group:"Remote write" doc:"Timeout of one remote-write HTTP request."`
	RemoteBatch      int           `config:"remote.write.batch.size" default:"2000" min:"1" group:"Remote write" doc:"Most samples in one remote-write request; a push sends as many requests as it needs, one after the other."`
	RemoteRetries    int           `config:"remote.write.retries" default:"10" min:"0" group:"Remote write"`
	RemoteBackoff    time.Duration `config:"remote.write.retry.backoff.min" default:"30ms" min:"1ms" group:"Remote write" doc:"Wait before the first retry; it doubles with each retry up to remote.write.retry.backoff.max. A Retry-After in the answer is added to it."`
	RemoteBackoffMax time.Duration `config:"remote.write.retry.backoff.max" default:"5s" min:"1ms" group:"Remote write" doc:"Longest wait between retries."`
	RemoteUser       string        `config:"remote.write.basic.auth.user" group:"Remote write" doc:"User name for HTTP basic authentication to the receiver."`
	RemotePassword   string        `config:"remote.write.basic.auth.password" secret:"true" group:"Remote write" doc:"Password for HTTP basic authentication; needs remote.write.basic.auth.user."`
	RemoteToken      string        `config:"remote.write.bearer.token" secret:"true" group:"Remote write" doc:"Bearer token sent as Authorization: Bearer <token>, instead of basic authentication."`
	RemoteHeaders    []string      `config:"remote.write.headers" group:"Remote write"`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"listen.address": "host:port the scrape endpoint listens on. Task n listens on port + n, so that " +
			"several tasks on one worker do not collide; port 0 picks a free port. A wildcard " +
			"host (0.0.0.0, ::, empty) is published for service discovery as the worker's " +
			"advertised host.",
		"scrape.enable": "Serve the scrape endpoint. Set it to false to use remote write only " +
			"(remote.write.url is then required); the task then publishes no scrape target, and " +
			"its own metrics are remote-written with the samples.",
		"metric.name": "Metric name. With several value fields, each metric is named <name>_<value field>. " +
			"Leave empty to take the name from metric.name.field, or to name each metric after " +
			"its value field.",
		"metric.name.field": "Record field (a dotted path into the value) holding the metric name, instead of a " +
			"fixed metric.name. Names are sanitized to Prometheus' rules: characters other than " +
			"letters, digits, _ and : become _, and a leading digit gets a _ in front.",
		"value.fields": "Record fields (dotted paths into the value) holding sample values; several fields " +
			"make several metrics from one record. A value must be a number, a boolean (1 or 0) " +
			"or a string holding a number; a record whose value field is missing or not numeric " +
			"goes to the error policy.",
		"label.fields": "Record fields (dotted paths into the value) whose values become labels, for example " +
			"sensor_id,place_id. The label is named after the field's last path element, " +
			"sanitized. A record missing one goes to the error policy.",
		"timestamps.enable": "Expose each sample with its record's timestamp (the Kafka record time, or " +
			"timestamp.field). Prometheus drops samples older than its head block (about an " +
			"hour), so leave this off for data that may arrive late.",
		"timestamp.field": "Record field holding the sample time in milliseconds since the epoch (or an RFC 3339 " +
			"string), used when timestamps.enable is true; empty uses the Kafka record timestamp.",
		"series.max": "Most series a task keeps. A sample that would add a series beyond it is dropped and " +
			"counted in sluice_prometheus_sink_series_dropped_total; existing series keep " +
			"updating. While samples are being dropped, the task's status (GET " +
			"/connectors/{name}/status) says so in its trace, naming a dropped series, and a " +
			"warning is logged; the note goes once there is room again (series.ttl removes idle " +
			"series).",
		"label.value.max.length": "Longest label value a record may give, in bytes; a metric name taken from " +
			"metric.name.field counts as one (it is the value of the __name__ label). A record " +
			"with a longer one goes to the error policy, with a reason naming the field, the " +
			"value's length and this limit. With series.max and series.labels.max it bounds the " +
			"memory the series take: at most series.max x (labels + 1) x this many bytes. The " +
			"default is Grafana Mimir's limit.",
		"series.labels.max": "Most labels a series may have, counting the metric name (__name__) as " +
			"Prometheus-compatible stores do: label.fields may name at most one less. The default " +
			"is Grafana Mimir's limit.",
		"remote.write.url": "URL of a Prometheus remote-write receiver (remote write 1.0: snappy-compressed " +
			"protobuf), such as http://prometheus:9090/api/v1/write; empty turns remote write " +
			"off. Prometheus itself must run with --web.enable-remote-write-receiver.",
		"remote.write.interval": "How often the task pushes its samples. Without timestamps.enable every push sends " +
			"every series held, stamped with the push time, as a scrape would; with it, a push " +
			"sends the samples updated since the last one, with their own timestamps.",
		"remote.write.retries": "How many times a request the receiver answers with a 5xx or 429 (or that fails on " +
			"the network) is retried, with exponential backoff and jitter, before it is given up " +
			"and counted in sluice_prometheus_sink_remote_write_failures_total. Samples given up " +
			"are sent again by the next push. 0 retries until the request succeeds or the task " +
			"stops. Other 4xx answers are never retried: they are logged and counted, and their " +
			"samples dropped.",
		"remote.write.headers": "Extra HTTP headers sent with each request, as Name=value pairs separated by commas, " +
			"such as X-Scope-OrgID=tenant1. The protocol's own headers (Content-Type, " +
			"Content-Encoding, X-Prometheus-Remote-Write-Version) and Authorization cannot be set " +
			"this way.",
	}
}

// reservedHeaders are the headers remote.write.headers may not set.
var reservedHeaders = []string{"Content-Type", "Content-Encoding", "Content-Length", "X-Prometheus-Remote-Write-Version", "Authorization", "Host"}

// Example is a configuration that serves sensor readings from the metrics topic.
func (Config) Example() connect.Config {
	return connect.Config{
		"topics":         "iot.metrics",
		"listen.address": "127.0.0.1:0",
		"metric.name":    "iot_sensor",
		"value.fields":   "temperature,humidity",
		"label.fields":   "sensor_id,place_id",
	}
}

// Validate checks the rules across settings.
func (c Config) Validate() error {
	if c.MetricName != "" && c.MetricNameField != "" {
		return &connect.FieldError{Key: "metric.name.field", Message: "set metric.name or metric.name.field, not both"}
	}
	if len(c.ValueFields) == 0 {
		return &connect.FieldError{Key: "value.fields", Message: "at least one value field is needed"}
	}
	if len(c.LabelFields)+1 > c.MaxLabels {
		return &connect.FieldError{Key: "label.fields", Message: fmt.Sprintf("%d label fields and the metric name make %d labels per series, over series.labels.max %d",
			len(c.LabelFields), len(c.LabelFields)+1, c.MaxLabels)}
	}
	seen := map[string]string{}
	for _, f := range c.LabelFields {
		n := labelName(f)
		if strings.HasPrefix(n, "__") {
			return &connect.FieldError{Key: "label.fields", Message: "label " + n + " (from field " + f + ") starts with __, which Prometheus reserves"}
		}
		if prev, dup := seen[n]; dup {
			return &connect.FieldError{Key: "label.fields", Message: "fields " + prev + " and " + f + " both make label " + n}
		}
		seen[n] = f
	}
	if !c.Timestamps && c.TimestampField != "" {
		return &connect.FieldError{Key: "timestamp.field", Message: "has no effect unless timestamps.enable is true"}
	}
	return c.validateRemoteWrite()
}

// validateRemoteWrite checks the remote-write settings.
func (c Config) validateRemoteWrite() error {
	if c.RemoteWriteURL == "" {
		if !c.Scrape {
			return &connect.FieldError{Key: "scrape.enable", Message: "with scraping off, remote.write.url is needed: the samples would go nowhere"}
		}
		return nil
	}
	u, err := url.Parse(c.RemoteWriteURL)
	if err != nil {
		return &connect.FieldError{Key: "remote.write.url", Message: err.Error()}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &connect.FieldError{Key: "remote.write.url", Message: "want an http:// or https:// URL with a host"}
	}
	if u.User != nil {
		return &connect.FieldError{Key: "remote.write.url", Message: "put credentials in remote.write.basic.auth.user and remote.write.basic.auth.password, not in the URL"}
	}
	if c.RemoteBackoffMax < c.RemoteBackoff {
		return &connect.FieldError{Key: "remote.write.retry.backoff.max", Message: "is less than remote.write.retry.backoff.min"}
	}
	if c.RemotePassword != "" && c.RemoteUser == "" {
		return &connect.FieldError{Key: "remote.write.basic.auth.password", Message: "needs remote.write.basic.auth.user"}
	}
	if c.RemoteUser != "" && c.RemoteToken != "" {
		return &connect.FieldError{Key: "remote.write.bearer.token", Message: "set basic authentication or a bearer token, not both"}
	}
	_, err = c.remoteHeaders()
	return err
}

// remoteHeaders parses remote.write.headers.
func (c Config) remoteHeaders() (http.Header, error) {
	h := http.Header{}
	for _, kv := range c.RemoteHeaders {
		name, value, ok := strings.Cut(kv, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, &connect.FieldError{Key: "remote.write.headers", Message: fmt.Sprintf("%q is not a Name=value header", kv)}
		}
		for _, r := range reservedHeaders {
			if strings.EqualFold(name, r) {
				return nil, &connect.FieldError{Key: "remote.write.headers", Message: "header " + name + " cannot be set here"}
			}
		}
		h.Add(name, value)
	}
	return h, nil
}

// sanitizeName turns s into a valid Prometheus metric name (colons allowed) or label name:
// other characters become _, and a leading digit gets a _ in front. A valid s is returned as
// it is, without allocating.
func sanitizeName(s string, colons bool) string {
	valid := func(c byte, first bool) bool {
		return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colons && c == ':') || (!first && c >= '0' && c <= '9')
	}
	ok := s != ""
	for i := 0; ok && i < len(s); i++ {
		ok = valid(s[i], i == 0)
	}
	if ok {
		return s
	}
	b := make([]byte, 0, len(s)+1)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case valid(c, false):
			if i == 0 && c >= '0' && c <= '9' {
				b = append(b, '_')
			}
		default:
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// labelName is the label a label field makes: its last path element, sanitized.
func labelName(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	return sanitizeName(field, false)
}
