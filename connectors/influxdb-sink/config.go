package influxdbsink

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// TopicToken in measurement.name is replaced by the record's topic.
const TopicToken = "${topic}"

// The time units of a numeric time field and of the write precision.
const (
	UnitSeconds = connect.UnitSeconds
	UnitMillis  = connect.UnitMillis
	UnitMicros  = connect.UnitMicros
	UnitNanos   = connect.UnitNanos
)

// How JSON numbers of schemaless records become fields.
const (
	NumbersDouble = "double"
	NumbersInfer  = "infer"
)

// Config is the influxdb-sink connector's configuration.
type Config struct {
	URL      string        `config:"influxdb.url" required:"true" group:"Connection" display:"InfluxDB URL"`
	Token    string        `config:"influxdb.token" secret:"true" group:"Connection"`
	Org      string        `config:"influxdb.org" group:"Connection" doc:"Organization (name or id) of InfluxDB 2.x; InfluxDB 3 and 1.x ignore it."`
	Bucket   string        `config:"influxdb.bucket" group:"Connection" doc:"Bucket the points go to (InfluxDB 2.x and 3.x: the bucket or database). Set it, or influxdb.database for the InfluxDB 1.x path."`
	Database string        `config:"influxdb.database" group:"InfluxDB 1.x" doc:"Database of InfluxDB 1.8+ (the v1 compatibility path: the bucket is database/retention-policy). Set it instead of influxdb.bucket."`
	RP       string        `config:"influxdb.retention.policy" group:"InfluxDB 1.x" importance:"low" doc:"Retention policy of influxdb.database; empty takes the database's default."`
	Username string        `config:"influxdb.username" group:"InfluxDB 1.x" doc:"User of InfluxDB 1.x with authentication on (sent as the token username:password)."`
	Password string        `config:"influxdb.password" secret:"true" group:"InfluxDB 1.x" doc:"Password of influxdb.username; write it as ${env:NAME} or ${file:path:key}."`
	Timeout  time.Duration `config:"influxdb.timeout" default:"30s" min:"100ms" group:"Connection" importance:"low" doc:"How long one write request may take before it counts as failed and is retried."`
	Gzip     bool          `config:"influxdb.gzip" default:"true" group:"Connection" importance:"low" doc:"Compress write requests with gzip (line protocol shrinks about tenfold; costs some CPU)."`

	Measurement      string   `config:"measurement.name" default:"${topic}" group:"Points" importance:"high" doc:"Measurement of each point; ${topic} is replaced by the record's topic. Overridden by measurement.field when that is set."`
	MeasurementField string   `config:"measurement.field" group:"Points" doc:"Field of the record value whose string value is the measurement (the field is then not written as a field). A record without it is a bad record."`
	Tags             []string `config:"tags" group:"Points" importance:"high"`
	TagStrings       bool     `config:"tags.all.strings" default:"false" group:"Points" doc:"Make every string field a tag, besides the fields listed in tags (and but for the measurement and time fields)."`
	Fields           []string `config:"fields" group:"Points"`
	Separator        string   `config:"fields.flatten.separator" default:"_" group:"Points" importance:"low" doc:"Joins the names of nested fields: {\"reading\": {\"temp\": 21.5}} gives the field reading_temp. Arrays are written as JSON strings."`
	Numbers          string   `config:"fields.json.numbers" default:"double" enum:"double,infer" group:"Points"`
	TimeField        string   `config:"time.field" group:"Time" importance:"high"`
	TimeUnit         string   `config:"time.field.unit" default:"ms" enum:"s,ms,us,ns" group:"Time" importance:"low" doc:"Unit of a numeric time field: seconds, milliseconds, microseconds or nanoseconds since the epoch."`
	Precision        string   `config:"write.precision" default:"ns" enum:"s,ms,us,ns" group:"Time" importance:"low"`

	BatchSize   int           `config:"batch.size" default:"5000" min:"1" max:"1000000" group:"Writes"`
	BatchLinger time.Duration `config:"batch.linger" default:"100ms" min:"0" max:"10m" group:"Writes" doc:"Longest a point waits for more to fill its write request; 0 writes every batch the runtime hands over at once. Offsets are committed only for what was written."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"influxdb.url": "Base URL of the InfluxDB server, such as http://influxdb:8086 or " +
			"https://eu-central-1-1.aws.cloud2.influxdata.com. Points go to its /api/v2/write " +
			"endpoint, which InfluxDB 2.x, 3.x and 1.8+ all serve.",
		"influxdb.token": "API token of InfluxDB 2.x or 3.x, sent as Authorization: Token. Write it as " +
			"${env:NAME} or ${file:path:key}. For InfluxDB 1.x use influxdb.username and " +
			"influxdb.password instead.",
		"tags": "Fields of the record value that become tags, by flattened name (device_id, " +
			"location_site). Their values must be strings; a record whose tag field holds " +
			"anything else is a bad record. A listed field a record lacks is left out of its " +
			"point.",
		"fields": "Fields of the record value that become fields, by flattened name; empty takes every " +
			"field that is not a tag, the time field or the measurement field. A point needs at " +
			"least one field: a record that has none is a bad record.",
		"fields.json.numbers": "Type of the fields that JSON numbers of schemaless records become: double writes " +
			"every number as a float, as sensor readings want (many JSON encoders write 21.0 as " +
			"21, and InfluxDB refuses a field whose type changes); infer writes whole numbers as " +
			"integers and others as floats. Records with a schema keep its types (int8 to int64 " +
			"integers, float32 and float64 floats), as do converters that hand over Go integer " +
			"types; unsigned values are unsigned fields (InfluxDB 2.x and 3.x; the 1.x path " +
			"writes them as integers).",
		"time.field": "Field of the record value that holds the point's time, by flattened name: an RFC " +
			"3339 string (2024-05-01T12:00:00.123Z), a number counting time.field.unit since the " +
			"epoch, or a Kafka Connect Timestamp. The field is not written as a field. Empty " +
			"takes the Kafka record timestamp. A record whose time field is missing or unreadable " +
			"is a bad record.",
		"write.precision": "Precision the points' times are written with; times are truncated to it. Two records " +
			"of one series whose times are equal at this precision are one point: the later " +
			"overwrites the earlier.",
		"batch.size": "Most points in one write request. The task writes when this many are waiting, when " +
			"batch.linger has passed since the oldest waiting one arrived, and before every " +
			"offset commit.",
	}
}

// Example writes per-sensor aggregates to a bucket of InfluxDB 2.x, one measurement per topic,
// tagged by device and place.
func (Config) Example() connect.Config {
	return connect.Config{
		"topics":          "sensor-aggregates-device",
		"influxdb.url":    "http://influxdb:8086",
		"influxdb.token":  "${env:INFLUXDB_TOKEN}",
		"influxdb.org":    "iot",
		"influxdb.bucket": "sensors",
		"tags":            "device_id,place_id",
		"time.field":      "window_start",
	}
}

// Validate checks the rules that tie settings together.
func (c Config) Validate() error {
	var errs connect.FieldProblems
	if c.URL != "" && !connect.HasPlaceholder(c.URL) {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Addf("influxdb.url", "Invalid value %q: must be an http:// or https:// URL with a host", c.URL)
		}
	}
	switch {
	case c.Bucket == "" && c.Database == "":
		errs.Addf("influxdb.bucket", "Missing value: set influxdb.bucket (InfluxDB 2.x and 3.x) or influxdb.database (InfluxDB 1.x)")
	case c.Bucket != "" && c.Database != "":
		errs.Addf("influxdb.database", "Invalid value %q: set influxdb.bucket or influxdb.database, not both", c.Database)
	}
	if c.Token != "" && (c.Username != "" || c.Password != "") {
		errs.Addf("influxdb.token", "Invalid value: a token, or influxdb.username and influxdb.password, not both")
	}
	if c.Password != "" && c.Username == "" {
		errs.Addf("influxdb.username", "Missing value: influxdb.password needs a user")
	}
	if c.Measurement == "" && c.MeasurementField == "" {
		errs.Addf("measurement.name", "Missing value: a point needs a measurement (measurement.name or measurement.field)")
	}
	if c.Separator == "" {
		errs.Addf("fields.flatten.separator", "Invalid value \"\": flattening needs a separator")
	}
	special := map[string]string{c.TimeField: "time.field", c.MeasurementField: "measurement.field"}
	delete(special, "")
	for _, tag := range c.Tags {
		if key, ok := special[tag]; ok {
			errs.Addf("tags", "Invalid value %q: it is the %s", tag, key)
		}
		if slices.Contains(c.Fields, tag) {
			errs.Addf("fields", "Invalid value %q: it is also a tag", tag)
		}
	}
	for _, f := range c.Fields {
		if key, ok := special[f]; ok {
			errs.Addf("fields", "Invalid value %q: it is the %s", f, key)
		}
	}
	if dup := firstDuplicate(c.Tags); dup != "" {
		errs.Addf("tags", "Invalid value %q: %q is listed twice", strings.Join(c.Tags, ","), dup)
	}
	return errs.Err()
}

func firstDuplicate(list []string) string {
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

// bucket is where the points go: the bucket, or database/retention-policy on the 1.x path.
func (c Config) bucket() string {
	if c.Bucket != "" {
		return c.Bucket
	}
	if c.RP != "" {
		return c.Database + "/" + c.RP
	}
	return c.Database
}

// authToken is the Authorization: Token value: the token, or username:password on 1.x.
func (c Config) authToken() string {
	if c.Username != "" {
		return c.Username + ":" + c.Password
	}
	return c.Token
}

// unsigned says whether the server takes unsigned fields (not InfluxDB 1.x).
func (c Config) unsigned() bool { return c.Database == "" }
