package mongodbsink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

func TestConformance(t *testing.T) {
	connecttest.CheckPlugin(t, connecttest.Registered(t, Name), nil)
}

// base is a valid configuration that tests change one setting of.
func base(kv ...string) connect.Config {
	cfg := connect.Config{"connection.uri": "mongodb://127.0.0.1:1", "database": "iot"}
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	return cfg
}

func TestBadConfigsNameTheSettingAndValue(t *testing.T) {
	for _, tc := range []struct {
		cfg       connect.Config
		key, want string
	}{
		{connect.Config{"database": "iot"}, "connection.uri", "Missing required"},
		{base("database", "a.b"), "database", `"a.b"`},
		{base("connection.uri", "http://example.com"), "connection.uri", "not a MongoDB connection string"},
		{base("connection.uri", "mongodb://h:99999999"), "connection.uri", "not a MongoDB connection string"},
		{base("write.model", "merge"), "write.model", `"merge"`},
		{base("id.strategy", "fields"), "id.fields", "id.strategy fields needs"},
		{base("id.fields", "a"), "id.fields", `"a": id.fields is only used with id.strategy fields, not key`},
		{base("id.strategy", "fields", "id.fields", "a..b"), "id.fields", `"a..b"`},
		{base("date.fields", "$t"), "date.fields", `"$t"`},
		{base("id.strategy", "objectid"), "write.model", `"upsert": with id.strategy objectid`},
		{base("collection", "system.x"), "collection", `"system.x"`},
		{base("collection", "a$b"), "collection", `"a$b"`},
		{base("collection.map", "iot.raw"), "collection.map", `"iot.raw": must be topic=collection`},
		{base("collection.map", "a=x,a=y"), "collection.map", `topic "a" is mapped twice`},
		{base("indexes", "a:up"), "indexes", `order "up" of field "a"`},
		{base("timeseries.time.field", "t"), "write.model", `"upsert": time-series collections (timeseries.time.field "t") take write.model insert`},
		{base("timeseries.meta.field", "m"), "timeseries.meta.field", "set timeseries.time.field too"},
		{base("write.model", "insert", "timeseries.time.field", "t", "timeseries.granularity", "days"), "timeseries.granularity", `"days"`},
		{base("write.model", "insert", "timeseries.time.field", "t", "timeseries.expire.after", "1500ms"), "timeseries.expire.after", "whole seconds"},
		{base("batch.size", "0"), "batch.size", "at least 1"},
		{base("max.in.flight", "100"), "max.in.flight", "at most 64"},
		{base("document.kafka.field", "a.b"), "document.kafka.field", `"a.b"`},
	} {
		err := (&Connector{}).Start(t.Context(), tc.cfg, &connecttest.ConnectorContext{T: t})
		if err == nil {
			t.Errorf("Start(%v) accepted it", tc.cfg)
			continue
		}
		byKey, _ := connect.FieldErrors(err)
		if msgs := strings.Join(byKey[tc.key], "; "); !strings.Contains(msgs, tc.want) {
			t.Errorf("%v: errors on %s are %q, want one containing %q (all: %v)", tc.cfg, tc.key, msgs, tc.want, err)
		}
	}
}

func TestGoodConfigsDecode(t *testing.T) {
	c, err := connect.Decode[Config](base("collection.map", "iot.raw=raw, iot.agg=agg", "indexes", "device:1+time:-1,serial!unique,loc:2dsphere",
		"write.model", "insert", "timeseries.time.field", "time", "timeseries.meta.field", "device", "timeseries.expire.after", "24h"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := parseCollectionMap(c.CollectionMap)
	if m["iot.raw"] != "raw" || m["iot.agg"] != "agg" || len(m) != 2 {
		t.Errorf("collection.map = %v", m)
	}
	idx, _ := parseIndexes(c.Indexes)
	got := []bson.D{}
	for _, s := range idx {
		got = append(got, indexModel(s).Keys.(bson.D))
	}
	want := []bson.D{
		{{Key: "device", Value: int32(1)}, {Key: "time", Value: int32(-1)}},
		{{Key: "serial", Value: int32(1)}},
		{{Key: "loc", Value: "2dsphere"}},
	}
	if !equalBSON(t, got, want) || !idx[1].unique || idx[0].unique {
		t.Errorf("indexes = %v (unique %v %v), want %v", got, idx[0].unique, idx[1].unique, want)
	}
	if _, fixed := c.fixedCollection(); fixed {
		t.Error("a collection map is taken for one fixed collection")
	}
	if c.TSExpire != 24*time.Hour {
		t.Errorf("timeseries.expire.after = %v", c.TSExpire)
	}
}

func TestTimeSeriesCreateCommand(t *testing.T) {
	c, err := connect.Decode[Config](base("write.model", "insert", "timeseries.time.field", "time", "timeseries.meta.field", "device",
		"timeseries.granularity", "minutes", "timeseries.expire.after", "168h"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := bson.MarshalExtJSON(createCommand("readings", c), false, false)
	want := `{"create":"readings","timeseries":{"timeField":"time","metaField":"device","granularity":"minutes"},"expireAfterSeconds":604800}`
	if string(got) != want {
		t.Errorf("create command\n%s\nwant\n%s", got, want)
	}
	c, _ = connect.Decode[Config](base("write.model", "insert", "timeseries.time.field", "t"))
	got, _ = bson.MarshalExtJSON(createCommand("r", c), false, false)
	if want := `{"create":"r","timeseries":{"timeField":"t","granularity":"seconds"}}`; string(got) != want {
		t.Errorf("create command %s, want %s", got, want)
	}
}

func TestTransientErrors(t *testing.T) {
	if transient(errors.New("boom")) || transient(nil) {
		t.Error("a plain error counts as transient")
	}
	if !transient(connect.Retriable(errors.Join(errors.New("x"), contextDeadline()))) {
		t.Error("a deadline does not count as transient")
	}
}

func contextDeadline() error {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	return ctx.Err()
}

func equalBSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := bson.MarshalExtJSON(bson.D{{Key: "v", Value: a}}, true, false)
	y, err2 := bson.MarshalExtJSON(bson.D{{Key: "v", Value: b}}, true, false)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(x) == string(y)
}
