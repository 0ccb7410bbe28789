package mongodbsink

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sluicehq/sluice/connect"
)

// Names of Kafka Connect's logical types whose values arrive as time.Time.
const (
	timestampSchema = "org.apache.kafka.connect.data.Timestamp"
	dateSchema      = "org.apache.kafka.connect.data.Date"
)

// op is one record's write.
type op struct {
	idx   int // position in the batch handed to Put
	coll  string
	lane  uint32
	model mongo.WriteModel
	// doc is the document of an insert, with its _id first, for telling a replay from a
	// duplicate key; nil for other writes.
	doc bson.Raw
}

// builder turns records into write models, as the configuration says.
type builder struct {
	cfg        Config
	collMap    map[string]string
	idPaths    [][]string
	datePaths  [][]string
	timePath   []string // the time-series time field, nil when not set
	lanes      uint32
	nextObject uint32 // round-robin lane for ids that are generated
}

func newBuilder(c Config) (*builder, error) {
	collMap, err := parseCollectionMap(c.CollectionMap)
	if err != nil {
		return nil, err
	}
	b := &builder{cfg: c, collMap: collMap, lanes: uint32(c.MaxInFlight)}
	for _, f := range c.IDFields {
		b.idPaths = append(b.idPaths, strings.Split(f, "."))
	}
	for _, f := range c.DateFields {
		b.datePaths = append(b.datePaths, strings.Split(f, "."))
	}
	if c.TSTimeField != "" {
		b.timePath = []string{c.TSTimeField}
		if !containsString(c.DateFields, c.TSTimeField) {
			b.datePaths = append(b.datePaths, b.timePath)
		}
	}
	return b, nil
}

// collection is the collection a topic's records go to.
func (b *builder) collection(topic string) string {
	if c, ok := b.collMap[topic]; ok {
		return c
	}
	return strings.ReplaceAll(b.cfg.Collection, TopicToken, topic)
}

// build returns the write of a record, or nil for a tombstone that is ignored. A record that
// cannot be written is a *connect.DataError naming the field and value at fault.
func (b *builder) build(idx int, r *connect.Record) (*op, error) {
	o := &op{idx: idx, coll: b.collection(r.Topic)}
	if r.Value == nil {
		if !b.cfg.DeleteOnNull || b.cfg.IDStrategy == IDCoordinates || b.cfg.IDStrategy == IDObjectID {
			return nil, nil
		}
		id, err := b.tombstoneID(r)
		if err != nil {
			return nil, err
		}
		filter, err := marshal("key", r.Key, bson.D{{Key: "_id", Value: id}})
		if err != nil {
			return nil, err
		}
		o.lane = b.laneOf(filter)
		o.model = mongo.NewDeleteOneModel().SetFilter(filter)
		return o, nil
	}
	doc, err := b.document(r)
	if err != nil {
		return nil, err
	}
	id, err := b.id(r, doc)
	if err != nil {
		return nil, err
	}
	doc = withID(doc, id)
	if b.cfg.KafkaField != "" {
		doc = setField(doc, b.cfg.KafkaField, bson.D{{Key: "topic", Value: r.Topic}, {Key: "partition", Value: r.KafkaPartition}, {Key: "offset", Value: r.KafkaOffset}})
	}
	if b.cfg.TimestampField != "" && !r.Time.IsZero() {
		doc = setField(doc, b.cfg.TimestampField, r.Time.UTC())
	}
	if b.timePath != nil {
		if v, ok := lookup(doc, b.timePath); !ok {
			return nil, connect.BadField(b.cfg.TSTimeField, nil, "is missing; documents of a time-series collection need their time field")
		} else if _, isTime := v.(time.Time); !isTime {
			return nil, connect.BadField(b.cfg.TSTimeField, v, "is not a date; the time field of a time-series collection must be one")
		}
	}

	if b.cfg.IDStrategy == IDObjectID {
		o.lane = b.nextObject % b.lanes
		b.nextObject++
	}
	switch b.cfg.Model {
	case ModelInsert:
		raw, err := marshal("value", r.Value, doc)
		if err != nil {
			return nil, err
		}
		if b.cfg.IDStrategy != IDObjectID {
			o.lane = b.laneOf(raw)
		}
		o.model, o.doc = mongo.NewInsertOneModel().SetDocument(raw), raw
	case ModelUpsert:
		raw, err := marshal("value", r.Value, doc)
		if err != nil {
			return nil, err
		}
		filter := idFilter(raw)
		o.lane = b.laneOf(filter)
		o.model = mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(raw).SetUpsert(true)
	case ModelUpdate:
		fields := doc[1:] // withID put the _id first
		update := bson.D{{Key: "$set", Value: fields}}
		if len(fields) == 0 { // nothing to set: only make sure the document exists
			update = bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "_id", Value: id}}}}
		}
		raw, err := marshal("value", r.Value, update)
		if err != nil {
			return nil, err
		}
		filter, err := marshal("key", r.Key, bson.D{{Key: "_id", Value: id}})
		if err != nil {
			return nil, err
		}
		o.lane = b.laneOf(filter)
		o.model = mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(raw).SetUpsert(true)
	}
	return o, nil
}

// marshal turns a document into BSON here, record by record, so that a value BSON cannot
// hold is the error of its record and not of a whole bulk write.
func marshal(field string, value any, doc bson.D) (bson.Raw, error) {
	raw, err := bson.Marshal(doc)
	if err != nil {
		return nil, connect.BadField(field, value, "cannot be written as BSON: %v", err)
	}
	return raw, nil
}

// idFilter is {_id: <the document's _id>}, reusing its bytes.
func idFilter(doc bson.Raw) bson.Raw {
	elem := doc.Index(0) // withID put the _id first
	raw := make([]byte, 0, 4+len(elem)+1)
	raw = append(raw, 0, 0, 0, 0)
	raw = append(raw, elem...)
	raw = append(raw, 0)
	n := len(raw)
	raw[0], raw[1], raw[2], raw[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return raw
}

// laneSeed seeds the hash of laneOf, the same for every task of the process.
var laneSeed = maphash.MakeSeed()

// laneOf spreads writes over the in-flight bulk writes by _id, so the writes of one _id stay
// in one lane, in order. doc is a document or filter with the _id first.
func (b *builder) laneOf(doc bson.Raw) uint32 {
	if b.lanes <= 1 {
		return 0
	}
	return uint32(maphash.Bytes(laneSeed, doc.Index(0)) % uint64(b.lanes))
}

// document is the record value as a BSON document.
func (b *builder) document(r *connect.Record) (bson.D, error) {
	var doc bson.D
	switch v := r.Value.(type) {
	case map[string]any:
		doc = toDoc(v, r.ValueSchema)
	case string:
		d, err := parseJSONDoc(v)
		if err != nil {
			return nil, err
		}
		doc = d
	case []byte:
		if !utf8.Valid(v) {
			return nil, connect.BadField("value", v, "is binary, not a JSON object")
		}
		d, err := parseJSONDoc(string(v))
		if err != nil {
			return nil, err
		}
		doc = d
	default:
		return nil, connect.BadField("value", v, "is a %s, not a document (a JSON object or a struct)", kindOf(v))
	}
	for _, path := range b.datePaths {
		var err error
		if doc, err = convertDate(doc, path); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// parseJSONDoc reads a JSON object (MongoDB Extended JSON too: {"$date": ...} and the like).
func parseJSONDoc(s string) (bson.D, error) {
	var doc bson.D
	trimmed := strings.TrimSpace(s)
	if !strings.HasPrefix(trimmed, "{") {
		if json.Valid([]byte(trimmed)) {
			return nil, connect.BadField("value", s, "is JSON but not a JSON object")
		}
		return nil, connect.BadField("value", s, "is not a JSON object: not JSON")
	}
	if err := bson.UnmarshalExtJSON([]byte(trimmed), false, &doc); err != nil {
		return nil, connect.BadField("value", s, "is not a JSON object: %v", err)
	}
	return doc, nil
}

// toDoc turns a map into a document: in the order of its struct schema's fields when it has
// one, else with the keys sorted, so the same data always makes the same document (and the
// same _id).
func toDoc(m map[string]any, s *connect.Schema) bson.D {
	doc := make(bson.D, 0, len(m))
	if s != nil && s.Type == connect.Struct && len(s.Fields) > 0 {
		for _, f := range s.Fields {
			if v, ok := m[f.Name]; ok {
				doc = append(doc, bson.E{Key: f.Name, Value: toBSON(v, f.Schema)})
			}
		}
		if len(doc) == len(m) {
			return doc
		}
		doc = doc[:0]
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var values *connect.Schema
	if s != nil && s.Type == connect.Map {
		values = s.Values
	}
	for _, k := range keys {
		doc = append(doc, bson.E{Key: k, Value: toBSON(m[k], values)})
	}
	return doc
}

func toBSON(v any, s *connect.Schema) any {
	switch x := v.(type) {
	case map[string]any:
		return toDoc(x, s)
	case []any:
		var items *connect.Schema
		if s != nil {
			items = s.Items
		}
		out := make(bson.A, len(x))
		for i, item := range x {
			out[i] = toBSON(item, items)
		}
		return out
	}
	return v
}

// id is the record's _id under the id strategy.
func (b *builder) id(r *connect.Record, doc bson.D) (any, error) {
	switch b.cfg.IDStrategy {
	case IDKey:
		return keyID(r)
	case IDFields:
		return b.fieldsID(doc, "")
	case IDCoordinates:
		return bson.D{{Key: "topic", Value: r.Topic}, {Key: "partition", Value: r.KafkaPartition}, {Key: "offset", Value: r.KafkaOffset}}, nil
	default:
		return bson.NewObjectID(), nil
	}
}

// tombstoneID is the _id a tombstone deletes: its key, or the id fields taken from its key.
func (b *builder) tombstoneID(r *connect.Record) (any, error) {
	if b.cfg.IDStrategy == IDKey {
		return keyID(r)
	}
	switch k := r.Key.(type) {
	case map[string]any:
		return b.fieldsID(toDoc(k, r.KeySchema), "key.")
	case string:
		if doc, err := parseJSONDoc(k); err == nil {
			return b.fieldsID(doc, "key.")
		}
	case []byte:
		if doc, err := parseJSONDoc(string(k)); err == nil {
			return b.fieldsID(doc, "key.")
		}
	}
	return nil, connect.BadField("key", r.Key, "a tombstone with id.strategy fields needs a key with the id.fields (%s) to find the document to delete", strings.Join(b.cfg.IDFields, ", "))
}

func keyID(r *connect.Record) (any, error) {
	switch k := r.Key.(type) {
	case nil:
		return nil, connect.BadField("key", nil, "is null; id.strategy key takes the _id from the record key")
	case []byte:
		if utf8.Valid(k) {
			return string(k), nil
		}
		return bson.Binary{Data: k}, nil
	case map[string]any:
		return toDoc(k, r.KeySchema), nil
	case []any:
		return nil, connect.BadField("key", k, "is an array, which cannot be an _id")
	default:
		return k, nil
	}
}

// fieldsID takes the id fields from doc: one field's value, or a subdocument of several.
func (b *builder) fieldsID(doc bson.D, prefix string) (any, error) {
	var id bson.D
	for i, path := range b.idPaths {
		name := b.cfg.IDFields[i]
		v, ok := lookup(doc, path)
		if !ok || v == nil {
			return nil, connect.BadField(prefix+name, nil, "is missing or null; it is one of the id.fields the _id is made of")
		}
		if _, isArray := v.(bson.A); isArray {
			return nil, connect.BadField(prefix+name, v, "is an array, which cannot be part of an _id")
		}
		if len(b.idPaths) == 1 {
			return v, nil
		}
		id = append(id, bson.E{Key: name, Value: v})
	}
	return id, nil
}

// lookup finds a field by its path.
func lookup(doc bson.D, path []string) (any, bool) {
	for i, name := range path {
		j := slices.IndexFunc(doc, func(e bson.E) bool { return e.Key == name })
		if j < 0 {
			return nil, false
		}
		if i == len(path)-1 {
			return doc[j].Value, true
		}
		sub, ok := doc[j].Value.(bson.D)
		if !ok {
			return nil, false
		}
		doc = sub
	}
	return nil, false
}

// withID puts id first in the document as its _id, in place of any _id it had.
func withID(doc bson.D, id any) bson.D {
	out := make(bson.D, 0, len(doc)+1)
	out = append(out, bson.E{Key: "_id", Value: id})
	for _, e := range doc {
		if e.Key != "_id" {
			out = append(out, e)
		}
	}
	return out
}

// setField sets a top-level field, replacing one of that name.
func setField(doc bson.D, name string, v any) bson.D {
	if i := slices.IndexFunc(doc, func(e bson.E) bool { return e.Key == name }); i >= 0 {
		doc[i].Value = v
		return doc
	}
	return append(doc, bson.E{Key: name, Value: v})
}

// convertDate makes the field at path a date; a missing field is left missing.
func convertDate(doc bson.D, path []string) (bson.D, error) {
	name := path[0]
	i := slices.IndexFunc(doc, func(e bson.E) bool { return e.Key == name })
	if i < 0 {
		return doc, nil
	}
	if len(path) > 1 {
		sub, ok := doc[i].Value.(bson.D)
		if !ok {
			return doc, nil
		}
		conv, err := convertDate(sub, path[1:])
		if err != nil {
			return nil, err
		}
		doc[i].Value = conv
		return doc, nil
	}
	t, err := asTime(doc[i].Value)
	if err != nil {
		return nil, connect.BadField(strings.Join(path, "."), doc[i].Value, "%v", err)
	}
	doc[i].Value = t
	return doc, nil
}

// asTime reads a date: milliseconds since the epoch, or RFC 3339 text.
func asTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case bson.DateTime:
		return x.Time().UTC(), nil
	case int64:
		return time.UnixMilli(x).UTC(), nil
	case int32:
		return time.UnixMilli(int64(x)).UTC(), nil
	case int:
		return time.UnixMilli(int64(x)).UTC(), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1e15*1e3 {
			break
		}
		return time.UnixMilli(int64(math.Round(x))).UTC(), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("is not a date in RFC 3339 form (2024-06-10T12:00:00Z)")
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("is not a date: want milliseconds since the epoch or RFC 3339 text")
}

func kindOf(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case int64, int32, int16, int8, int, float64, float32:
		return "number"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
