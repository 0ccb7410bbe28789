// Package influxdbsink is a sink connector that writes Kafka records to InfluxDB as points,
// through influxdb-client-go's blocking write API.
//
// Each record becomes one point of line protocol: the measurement from a fixed name, the
// topic or a record field; tags from the fields listed (or every string field); fields from
// the rest, with their types kept; the time from a record field or the record timestamp. The
// task keeps the lines until batch.size wait, batch.linger passed, or an offset commit comes,
// and commits offsets only for what InfluxDB has. A point written twice (the same series and
// time) overwrites itself, so records delivered again after a crash leave no duplicate.
//
// Records that cannot be points, and points InfluxDB refuses (a 400 names the first line it
// refused; the task finds it, or halves the request until each refused line stands alone),
// go to the error policy; the other points are written. A server that cannot be reached, or
// answers 5xx, 429 or 503, makes Put return a retriable error: the runtime pauses, says so in
// the task's status and hands the records in again, after the Retry-After the server asked
// for.
package influxdbsink

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "influxdb-sink"

func init() {
	connect.Register(connect.Plugin{
		Name:   Name,
		Doc:    pluginDoc,
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and gives every task a copy of it.
type Connector struct{ connect.TypedBase[Config] }

// Connector checks that the server answers before a configuration is stored.
var _ connect.Validator = (*Connector)(nil)

// NewTask returns a task that writes to InfluxDB.
func (*Connector) NewTask() connect.SinkTask { return &Task{} }

// validateTimeout bounds the connection test of config/validate.
const validateTimeout = 5 * time.Second

// Validate is the connection test of PUT /connector-plugins/influxdb-sink/config/validate: it
// asks the server's /ping, and says on influxdb.url why that failed.
func (*Connector) Validate(ctx context.Context, cfg connect.Config) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return err
	}
	client := newClient(c)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, min(c.Timeout, validateTimeout))
	defer cancel()
	if ok, err := client.Ping(ctx); !ok {
		return &connect.FieldError{Key: "influxdb.url", Message: fmt.Sprintf("Cannot reach InfluxDB at %s: %v", c.URL, err)}
	}
	return nil
}

const pluginDoc = "Writes Kafka records to InfluxDB (2.x, 3.x, or 1.8+ through its v1 compatibility path) as points, " +
	"with influxdb-client-go's blocking write API. Each record value (a JSON object or a struct; nested objects " +
	"flattened with `fields.flatten.separator`) becomes one point: the measurement is `measurement.name` " +
	"(`${topic}` by default) or the string in `measurement.field`; the fields listed in `tags` (and every string " +
	"field with `tags.all.strings`) become tags, and must be strings; the rest, or those listed in `fields`, become " +
	"fields with their types kept: floats, integers (for schemaless JSON only with `fields.json.numbers=infer`), " +
	"unsigned integers (2.x and 3.x), booleans and strings; arrays are written as JSON text. The time is " +
	"`time.field` (RFC 3339 text, a number of `time.field.unit` since the epoch, or a Kafka Connect Timestamp) or " +
	"the record timestamp, written at `write.precision`.\n\n" +
	"For InfluxDB 2.x and 3.x set `influxdb.bucket`, `influxdb.org` and `influxdb.token` (as `${env:...}`); for " +
	"1.8+ set `influxdb.database` (and `influxdb.retention.policy`, `influxdb.username`, `influxdb.password`): " +
	"points then go to the bucket database/retention-policy with the token username:password, as InfluxDB's v1 " +
	"compatibility path takes them.\n\n" +
	"**Batching and delivery.** The task keeps the lines until `batch.size` wait, the oldest waited " +
	"`batch.linger`, or the runtime commits offsets; it writes `batch.size` lines per request, gzipped with " +
	"`influxdb.gzip`, and the runtime commits offsets only for what InfluxDB has. A point written twice (the same " +
	"measurement, tag set and time) overwrites itself with the same values, so records delivered again after a " +
	"crash or a retry leave no duplicate. Two records of one series with the same time at `write.precision` are " +
	"one point: the later one wins, as InfluxDB defines it.\n\n" +
	"**Errors.** A record that cannot be a point (no time, no field, a tag that is not a string, NaN) goes to the " +
	"error policy (and the dead-letter topic) with a message naming the field and the value. A 400 from InfluxDB " +
	"(a partial write: it stored the other lines and names the first one it refused) is mapped back to the record " +
	"of the line it names, or the request is halved until each refused line stands alone; those records go to the " +
	"error policy with InfluxDB's message and the rest is written. A server that cannot be reached or answers 5xx, " +
	"429 or 503 makes the runtime pause and retry with backoff, after the `Retry-After` InfluxDB asked for, and the " +
	"task's status says it is retrying. 401, 403 and 404 (no such bucket or database) fail the task with the " +
	"server's message.\n\n" +
	benchDoc
