package mongodbsink

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sluicehq/sluice/connect"
)

func newTestBuilder(t *testing.T, kv ...string) *builder {
	t.Helper()
	c, err := connect.Decode[Config](base(kv...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBuilder(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rec(key, value any) *connect.Record {
	return &connect.Record{Topic: "iot.raw", KafkaPartition: 2, KafkaOffset: 17, Key: key, Value: value, Time: time.UnixMilli(1700000000123)}
}

// extJSON writes BSON as relaxed Extended JSON for comparisons.
func extJSON(t *testing.T, v any) string {
	t.Helper()
	raw, ok := v.(bson.Raw)
	if !ok {
		var err error
		if raw, err = bson.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := bson.MarshalExtJSON(raw, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// modelJSON describes a write model as JSON: its kind, filter and document or update.
func modelJSON(t *testing.T, m mongo.WriteModel) string {
	t.Helper()
	switch w := m.(type) {
	case *mongo.InsertOneModel:
		return "insert " + extJSON(t, w.Document)
	case *mongo.ReplaceOneModel:
		return "replace " + extJSON(t, w.Filter) + " " + extJSON(t, w.Replacement) + upsert(w.Upsert)
	case *mongo.UpdateOneModel:
		return "update " + extJSON(t, w.Filter) + " " + extJSON(t, w.Update) + upsert(w.Upsert)
	case *mongo.DeleteOneModel:
		return "delete " + extJSON(t, w.Filter)
	}
	t.Fatalf("unexpected model %T", m)
	return ""
}

func upsert(b *bool) string {
	if b != nil && *b {
		return " upsert"
	}
	return ""
}

func TestWriteModelsAndIDs(t *testing.T) {
	value := map[string]any{"temp": 21.5, "device": map[string]any{"id": "d1", "place": "p1"}, "_id": "ignored", "seq": int64(3)}
	for _, tc := range []struct {
		name     string
		settings []string
		record   *connect.Record
		want     string
	}{
		{"upsert by string key", nil, rec("dev-1", value),
			`replace {"_id":"dev-1"} {"_id":"dev-1","device":{"id":"d1","place":"p1"},"seq":3,"temp":21.5} upsert`},
		{"insert by byte key", []string{"write.model", "insert"}, rec([]byte("dev-1"), value),
			`insert {"_id":"dev-1","device":{"id":"d1","place":"p1"},"seq":3,"temp":21.5}`},
		{"binary key", []string{"write.model", "insert"}, rec([]byte{0xff, 0x01}, map[string]any{}),
			`insert {"_id":{"$binary":{"base64":"/wE=","subType":"00"}}}`},
		{"numeric key", nil, rec(int64(42), map[string]any{"a": true}),
			`replace {"_id":42} {"_id":42,"a":true} upsert`},
		{"map key sorted", nil, rec(map[string]any{"z": "1", "a": "2"}, map[string]any{}),
			`replace {"_id":{"a":"2","z":"1"}} {"_id":{"a":"2","z":"1"}} upsert`},
		{"update sets fields", []string{"write.model", "update"}, rec("dev-1", map[string]any{"temp": 20.0, "_id": "x"}),
			`update {"_id":"dev-1"} {"$set":{"temp":20.0}} upsert`},
		{"update with nothing to set", []string{"write.model", "update"}, rec("dev-1", map[string]any{}),
			`update {"_id":"dev-1"} {"$setOnInsert":{"_id":"dev-1"}} upsert`},
		{"one id field", []string{"id.strategy", "fields", "id.fields", "device.id"}, rec(nil, value),
			`replace {"_id":"d1"} {"_id":"d1","device":{"id":"d1","place":"p1"},"seq":3,"temp":21.5} upsert`},
		{"several id fields", []string{"id.strategy", "fields", "id.fields", "device.place,seq"}, rec(nil, value),
			`replace {"_id":{"device.place":"p1","seq":3}} {"_id":{"device.place":"p1","seq":3},"device":{"id":"d1","place":"p1"},"seq":3,"temp":21.5} upsert`},
		{"coordinates", []string{"id.strategy", "coordinates", "write.model", "insert"}, rec(nil, map[string]any{"a": int64(1)}),
			`insert {"_id":{"topic":"iot.raw","partition":2,"offset":17},"a":1}`},
		{"tombstone deletes by key", nil, rec("dev-1", nil), `delete {"_id":"dev-1"}`},
		{"tombstone deletes by key fields", []string{"id.strategy", "fields", "id.fields", "device.id"}, rec(map[string]any{"device": map[string]any{"id": "d1"}}, nil),
			`delete {"_id":"d1"}`},
		{"tombstone with a JSON text key", []string{"id.strategy", "fields", "id.fields", "a,b"}, rec(`{"b":2,"a":1}`, nil),
			`delete {"_id":{"a":1,"b":2}}`},
		{"JSON text value keeps its order", nil, rec("k", `{"z":1,"a":{"$date":"2024-06-10T12:00:00Z"}}`),
			`replace {"_id":"k"} {"_id":"k","z":1,"a":{"$date":"2024-06-10T12:00:00Z"}} upsert`},
		{"kafka and timestamp fields", []string{"document.kafka.field", "kafka", "document.timestamp.field", "ts"}, rec("k", map[string]any{}),
			`replace {"_id":"k"} {"_id":"k","kafka":{"topic":"iot.raw","partition":2,"offset":17},"ts":{"$date":"2023-11-14T22:13:20.123Z"}} upsert`},
		{"date fields", []string{"date.fields", "ms,text,device.at"}, rec("k", map[string]any{"ms": int64(0), "text": "2024-06-10T12:00:00.5+02:00", "device": map[string]any{"at": float64(1000)}}),
			`replace {"_id":"k"} {"_id":"k","device":{"at":{"$date":"1970-01-01T00:00:01Z"}},"ms":{"$date":"1970-01-01T00:00:00Z"},"text":{"$date":"2024-06-10T10:00:00.5Z"}} upsert`},
		{"collection map", []string{"collection.map", "iot.raw=raw"}, rec("k", map[string]any{}), `replace {"_id":"k"} {"_id":"k"} upsert`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuilder(t, tc.settings...)
			o, err := b.build(0, tc.record)
			if err != nil {
				t.Fatal(err)
			}
			if got := modelJSON(t, o.model); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestStructValuesKeepTheirSchemaOrder(t *testing.T) {
	s := &connect.Schema{Type: connect.Struct, Fields: []connect.Field{
		{Name: "z", Schema: &connect.Schema{Type: connect.String}},
		{Name: "ts", Schema: &connect.Schema{Type: connect.Int64, Name: timestampSchema}},
		{Name: "a", Schema: &connect.Schema{Type: connect.Int32}},
	}}
	r := rec("k", map[string]any{"a": int32(1), "z": "x", "ts": time.UnixMilli(5).UTC()})
	r.ValueSchema = s
	o, err := newTestBuilder(t, "write.model", "insert").build(0, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := modelJSON(t, o.model), `insert {"_id":"k","z":"x","ts":{"$date":"1970-01-01T00:00:00.005Z"},"a":1}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestObjectIDsAreNew(t *testing.T) {
	b := newTestBuilder(t, "id.strategy", "objectid", "write.model", "insert")
	o1, _ := b.build(0, rec("k", map[string]any{}))
	o2, _ := b.build(1, rec("k", map[string]any{}))
	id1 := o1.model.(*mongo.InsertOneModel).Document.(bson.Raw).Lookup("_id")
	id2 := o2.model.(*mongo.InsertOneModel).Document.(bson.Raw).Lookup("_id")
	if id1.Type != bson.TypeObjectID || id1.Equal(id2) {
		t.Errorf("ids %v and %v: want two new ObjectIds", id1, id2)
	}
}

func TestTombstonesIgnored(t *testing.T) {
	for _, settings := range [][]string{
		{"delete.on.null", "false"},
		{"id.strategy", "coordinates"},
	} {
		o, err := newTestBuilder(t, settings...).build(0, rec("k", nil))
		if o != nil || err != nil {
			t.Errorf("%v: a tombstone gave %v, %v; want it ignored", settings, o, err)
		}
	}
}

func TestMalformedRecordsNameFieldAndValue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []string
		record   *connect.Record
		field    string
		want     string
	}{
		{"not JSON", nil, rec("k", "not json"), "value", `bad value "not json": is not a JSON object`},
		{"JSON array", nil, rec("k", []byte(`[1,2]`)), "value", `bad value "[1,2]": is JSON but not a JSON object`},
		{"binary value", nil, rec("k", []byte{0xff}), "value", "is binary, not a JSON object"},
		{"a number", nil, rec("k", int64(7)), "value", "bad value 7: is a number, not a document"},
		{"no key", nil, rec(nil, map[string]any{}), "key", "is null; id.strategy key takes the _id from the record key"},
		{"array key", nil, rec([]any{"a"}, map[string]any{}), "key", "is an array"},
		{"missing id field", []string{"id.strategy", "fields", "id.fields", "device.id"}, rec(nil, map[string]any{"device": map[string]any{}}),
			"device.id", "is missing or null; it is one of the id.fields"},
		{"tombstone without key fields", []string{"id.strategy", "fields", "id.fields", "id"}, rec("plain", nil),
			"key", `a tombstone with id.strategy fields needs a key with the id.fields (id)`},
		{"bad date", []string{"date.fields", "at"}, rec("k", map[string]any{"at": "yesterday"}), "at", `bad value "yesterday": is not a date in RFC 3339 form`},
		{"time-series time missing", []string{"write.model", "insert", "timeseries.time.field", "time"}, rec("k", map[string]any{"x": 1.0}),
			"time", "is missing; documents of a time-series collection need their time field"},
		{"time-series time not a date", []string{"write.model", "insert", "timeseries.time.field", "time"}, rec("k", map[string]any{"time": true}),
			"time", "is not a date"},
		{"too big for BSON", nil, rec("k", map[string]any{"n": uint64(1 << 63)}), "value", "cannot be written as BSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := newTestBuilder(t, tc.settings...).build(0, tc.record)
			var de *connect.DataError
			if !errors.As(err, &de) {
				t.Fatalf("build = %v, %v; want a DataError", o, err)
			}
			if de.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q on field %q, want one on %q containing %q", err, de.Field, tc.field, tc.want)
			}
		})
	}
}

func TestLanesKeepAnIDTogether(t *testing.T) {
	b := newTestBuilder(t, "max.in.flight", "8", "write.model", "update")
	lanes := map[uint32]bool{}
	for i := range 64 {
		key := string(rune('a' + i%16))
		o1, _ := b.build(i, rec(key, map[string]any{"v": int64(i)}))
		b2 := newTestBuilder(t, "max.in.flight", "8", "write.model", "insert")
		o2, _ := b2.build(i, rec(key, map[string]any{"v": int64(i)}))
		o3, _ := b.build(i, rec(key, nil))
		if o1.lane != o2.lane || o1.lane != o3.lane {
			t.Fatalf("key %q: update in lane %d, insert in lane %d, delete in lane %d", key, o1.lane, o2.lane, o3.lane)
		}
		lanes[o1.lane] = true
	}
	if len(lanes) < 2 {
		t.Errorf("16 keys all in lanes %v of 8", lanes)
	}
}
