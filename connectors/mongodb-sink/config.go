package mongodbsink

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect"
)

// The write models.
const (
	ModelInsert = "insert"
	ModelUpsert = "upsert"
	ModelUpdate = "update"
)

// The id strategies.
const (
	IDKey         = "key"
	IDFields      = "fields"
	IDCoordinates = "coordinates"
	IDObjectID    = "objectid"
)

// TopicToken in the collection setting is replaced by the record's topic.
const TopicToken = "{topic}"

// Config is the mongodb-sink connector's configuration.
type Config struct {
	URI        string `config:"connection.uri" required:"true" secret:"true" group:"Connection" display:"Connection URI"`
	Database   string `config:"database" required:"true" pattern:"[^/\\\\. \"$]{1,63}" group:"Connection" doc:"Database the collections are in."`
	Collection string `config:"collection" default:"{topic}" group:"Connection"`
	// CollectionMap overrides Collection for the topics it names.
	CollectionMap []string      `config:"collection.map" default:"" group:"Connection"`
	Timeout       time.Duration `config:"timeout" default:"30s" min:"100ms" max:"10m" group:"Connection" importance:"low"`

	Model          string   `config:"write.model" default:"upsert" enum:"insert,upsert,update" group:"Writes" importance:"high"`
	IDStrategy     string   `config:"id.strategy" default:"key" enum:"key,fields,coordinates,objectid" group:"Writes" importance:"high"`
	IDFields       []string `config:"id.fields" default:"" group:"Writes"`
	DeleteOnNull   bool     `config:"delete.on.null" default:"true" group:"Writes"`
	Ordered        bool     `config:"bulk.ordered" default:"true" group:"Writes"`
	BatchSize      int      `config:"batch.size" default:"1000" min:"1" max:"100000" group:"Writes" doc:"Most documents in one bulk write. The runtime hands the task at most consumer.max.batch.records records at a time, so raise that too for bigger bulk writes."`
	MaxInFlight    int      `config:"max.in.flight" default:"1" min:"1" max:"64" group:"Writes" doc:"Bulk writes a task runs at once. Records are spread over them by _id, so the records of one _id are still written in order."`
	DateFields     []string `config:"date.fields" default:"" group:"Document" importance:"low"`
	KafkaField     string   `config:"document.kafka.field" default:"" pattern:"[^$.][^.]*|" group:"Document" importance:"low" doc:"Name of a field added to each document holding where the record was read from: {topic, partition, offset}. Empty adds none."`
	TimestampField string   `config:"document.timestamp.field" default:"" pattern:"[^$.][^.]*|" group:"Document" importance:"low" doc:"Name of a field added to each document holding the record's Kafka timestamp as a date. Empty adds none."`

	Indexes     []string      `config:"indexes" default:"" group:"Collections"`
	TSTimeField string        `config:"timeseries.time.field" default:"" pattern:"[^$.][^.]*|" group:"Collections"`
	TSMetaField string        `config:"timeseries.meta.field" default:"" pattern:"[^$.][^.]*|" group:"Collections" doc:"Meta field of new time-series collections: the field that identifies a series, such as the device id. Empty sets none."`
	TSGranular  string        `config:"timeseries.granularity" default:"seconds" enum:"seconds,minutes,hours" group:"Collections" doc:"Granularity of new time-series collections: about how often one series gets a reading."`
	TSExpire    time.Duration `config:"timeseries.expire.after" default:"0" min:"0" group:"Collections" importance:"low" doc:"Delete documents of new time-series collections this long after their time (expireAfterSeconds, whole seconds). 0 keeps them."`
}

// Docs documents the settings whose text is too long for a tag (see connect.SpecOf).
func (Config) Docs() map[string]string {
	return map[string]string{
		"connection.uri": "MongoDB connection string, such as " +
			"mongodb://user:pass@host1:27017,host2:27017/?replicaSet=rs0. Write ${env:NAME} or " +
			"${file:/path:key} in place of the password to keep it out of the configuration.",
		"collection": "Collection each record is written to; {topic} is replaced by the record's topic, so " +
			"the default writes each topic to a collection of its name. Topics named in " +
			"collection.map go where it says.",
		"collection.map": "Collections for particular topics, as topic=collection pairs separated by commas, " +
			"such as iot.raw=raw,iot.agg.sensor=sensor_agg. Other topics go to the collection " +
			"setting.",
		"timeout": "How long one bulk write, and finding a server to send it to, may take before it " +
			"counts as failed and is retried. A server that is down is noticed after this long at " +
			"most.",
		"write.model": "How a record is written. insert adds a new document: an insert whose _id is stored " +
			"already is written when the stored document is the same (or, with id.strategy " +
			"coordinates or document.kafka.field, comes from the same Kafka record), as when " +
			"records are replayed after a crash, and is otherwise a duplicate key that goes to " +
			"the error policy, as is a duplicate key on another unique index; upsert replaces the " +
			"document with the record's _id, or inserts it; update sets the record's fields " +
			"($set) in the document with the record's _id, keeping fields the record lacks, or " +
			"inserts it. Replaying records after a crash leaves one document per _id with every " +
			"model.",
		"id.strategy": "Where a document's _id comes from. key: the record key (a string, number, or a map " +
			"that becomes a subdocument with its keys sorted); fields: the value fields named in " +
			"id.fields; coordinates: the record's Kafka topic, partition and offset, as {topic, " +
			"partition, offset}; objectid: a new ObjectId per write, so replays insert the record " +
			"again. Any other _id in the value is overwritten.",
		"id.fields": "Value fields the _id is made of with id.strategy fields; a dot reaches into a " +
			"subdocument (device.id). One field's value is the _id itself; several make a " +
			"subdocument of them in this order. Tombstones take the fields from the record key.",
		"delete.on.null": "A tombstone (a record with a null value) deletes the document with the record's _id; " +
			"false ignores tombstones. Tombstones have no _id with id.strategy coordinates or " +
			"objectid, and are ignored then.",
		"bulk.ordered": "Send ordered bulk writes: the server applies them in order, so the last record of an " +
			"_id wins. After a document the server rejects, the rest of the bulk write is sent " +
			"again. Unordered bulk writes let the server apply the documents in any order, which " +
			"is faster on a sharded cluster but may apply two records of one _id in either order.",
		"date.fields": "Value fields stored as BSON dates: numbers are milliseconds since the epoch, text is " +
			"RFC 3339 (2024-06-10T12:00:00Z). A dot reaches into a subdocument. Timestamp and " +
			"Date values of a schema become dates without this.",
		"indexes": "Indexes to create in each collection before the first write to it (at task start for " +
			"a fixed collection), separated by commas; each is one or more field:order pairs " +
			"joined by +, with order 1, -1 or an index type such as 2dsphere, and an optional " +
			"!unique at the end: deviceId:1+time:-1,serial:1!unique. Existing indexes are kept.",
		"timeseries.time.field": "Create collections that do not exist yet as time-series collections with this time " +
			"field, which must then be a date in every document (see date.fields). Needs a server " +
			"with time-series collections (MongoDB 5.0 or later) and write.model insert. Empty " +
			"creates ordinary collections.",
	}
}

// Example is a configuration that writes raw frames to the iot database, one document per
// device with the latest frame.
func (Config) Example() connect.Config {
	return connect.Config{"topics": "iot.raw", "connection.uri": "mongodb://localhost:27017", "database": "iot",
		"collection": "raw", "write.model": "upsert", "id.strategy": "key"}
}

// Validate checks the rules across settings.
func (c Config) Validate() error {
	var errs connect.FieldProblems
	if err := checkURI(c.URI); err != nil {
		errs.Add(err)
	}
	if _, err := parseCollectionMap(c.CollectionMap); err != nil {
		errs.Add(err)
	}
	if err := checkCollectionName("collection", c.Collection); err != nil {
		errs.Add(err)
	}
	if _, err := parseIndexes(c.Indexes); err != nil {
		errs.Add(err)
	}
	if c.IDStrategy == IDFields && len(c.IDFields) == 0 {
		errs.Addf("id.fields", "Missing value: id.strategy fields needs the fields the _id is made of")
	}
	if c.IDStrategy != IDFields && len(c.IDFields) > 0 {
		errs.Addf("id.fields", "Invalid value %q: id.fields is only used with id.strategy fields, not %s", strings.Join(c.IDFields, ","), c.IDStrategy)
	}
	for _, f := range append(append([]string(nil), c.IDFields...), c.DateFields...) {
		if err := checkFieldPath(f); err != nil {
			key := "id.fields"
			if !containsString(c.IDFields, f) {
				key = "date.fields"
			}
			errs.Addf(key, "Invalid value %q: %v", f, err)
		}
	}
	if c.IDStrategy == IDObjectID && c.Model != ModelInsert {
		errs.Addf("write.model", "Invalid value %q: with id.strategy objectid every write has a new _id, so only write.model insert makes sense", c.Model)
	}
	if c.TSTimeField != "" && c.Model != ModelInsert {
		errs.Addf("write.model", "Invalid value %q: time-series collections (timeseries.time.field %q) take write.model insert", c.Model, c.TSTimeField)
	}
	if c.TSTimeField == "" && c.TSMetaField != "" {
		errs.Addf("timeseries.meta.field", "Invalid value %q: set timeseries.time.field too", c.TSMetaField)
	}
	if c.TSTimeField != "" && c.TSTimeField == c.TSMetaField {
		errs.Addf("timeseries.meta.field", "Invalid value %q: must differ from timeseries.time.field", c.TSMetaField)
	}
	if c.TSExpire%time.Second != 0 {
		errs.Addf("timeseries.expire.after", "Invalid value %s: must be whole seconds", c.TSExpire)
	}
	return errs.Err()
}

// fixedCollection reports the one collection every record goes to, when the configuration
// names one, so that the task can prepare it at start.
func (c Config) fixedCollection() (string, bool) {
	if len(c.CollectionMap) > 0 || strings.Contains(c.Collection, TopicToken) {
		return "", false
	}
	return c.Collection, true
}

// checkURI parses a connection string, without the DNS lookups of mongodb+srv://. The
// message leaves the string out: it may hold a password.
func checkURI(uri string) error {
	switch {
	case strings.HasPrefix(uri, "mongodb+srv://"):
		return nil
	case !strings.HasPrefix(uri, "mongodb://"):
		return &connect.FieldError{Key: "connection.uri", Message: "Invalid value: not a MongoDB connection string: it must start with mongodb:// or mongodb+srv://"}
	}
	if err := options.Client().ApplyURI(uri).Validate(); err != nil {
		return &connect.FieldError{Key: "connection.uri", Message: fmt.Sprintf("Invalid value: not a MongoDB connection string: %v", err)}
	}
	return nil
}

// parseCollectionMap reads topic=collection pairs.
func parseCollectionMap(pairs []string) (map[string]string, error) {
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		topic, coll, ok := strings.Cut(p, "=")
		topic, coll = strings.TrimSpace(topic), strings.TrimSpace(coll)
		if !ok || topic == "" || coll == "" {
			return nil, &connect.FieldError{Key: "collection.map", Message: fmt.Sprintf("Invalid value %q: must be topic=collection", p)}
		}
		if err := checkCollectionName("collection.map", coll); err != nil {
			return nil, err
		}
		if _, dup := out[topic]; dup {
			return nil, &connect.FieldError{Key: "collection.map", Message: fmt.Sprintf("Invalid value %q: topic %q is mapped twice", p, topic)}
		}
		out[topic] = coll
	}
	return out, nil
}

// checkCollectionName rejects names MongoDB does not take, with the topic token standing for
// a topic name (which never has the characters MongoDB refuses).
func checkCollectionName(key, name string) error {
	bad := func(why string) error {
		return &connect.FieldError{Key: key, Message: fmt.Sprintf("Invalid value %q: %s", name, why)}
	}
	switch {
	case name == "":
		return bad("a collection name cannot be empty")
	case strings.ContainsAny(name, "$\x00"):
		return bad("a collection name cannot contain $ or a NUL character")
	case strings.HasPrefix(name, "system."):
		return bad("collections named system.* are reserved")
	case len(name) > 255:
		return bad("a collection name has at most 255 bytes")
	}
	return nil
}

// checkFieldPath rejects field paths with empty parts or that start with $.
func checkFieldPath(path string) error {
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			return errors.New("a field path has no empty parts")
		}
		if strings.HasPrefix(part, "$") {
			return errors.New("a field name cannot start with $")
		}
	}
	return nil
}

// indexSpec is one index to create.
type indexSpec struct {
	keys   []indexKey
	unique bool
}

type indexKey struct {
	field string
	order any // int32 1 or -1, or an index type such as "2dsphere"
}

// parseIndexes reads the indexes setting: field:order pairs joined by +, then !unique.
func parseIndexes(specs []string) ([]indexSpec, error) {
	var out []indexSpec
	for _, s := range specs {
		bad := func(why string) error {
			return &connect.FieldError{Key: "indexes", Message: fmt.Sprintf("Invalid value %q: %s", s, why)}
		}
		var spec indexSpec
		body := strings.TrimSpace(s)
		if rest, ok := strings.CutSuffix(body, "!unique"); ok {
			spec.unique, body = true, rest
		}
		for _, part := range strings.Split(body, "+") {
			field, order, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok {
				order = "1"
			}
			if err := checkFieldPath(field); err != nil {
				return nil, bad(fmt.Sprintf("field %q: %v", field, err))
			}
			k := indexKey{field: field}
			switch order {
			case "1":
				k.order = int32(1)
			case "-1":
				k.order = int32(-1)
			case "2d", "2dsphere", "text", "hashed":
				k.order = order
			default:
				return nil, bad(fmt.Sprintf("order %q of field %q must be 1, -1, 2d, 2dsphere, text or hashed", order, field))
			}
			spec.keys = append(spec.keys, k)
		}
		out = append(out, spec)
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
