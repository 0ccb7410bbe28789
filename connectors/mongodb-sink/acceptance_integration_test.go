package mongodbsink_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	mongodbsink "github.com/sluicehq/sluice/connectors/mongodb-sink"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// mongodb-sink against the test MongoDB server (mongo-java-server), a database of its own per
// case: the documents are read back with a client of the test's own. Each document carries
// the record's coordinates and timestamp (document.kafka.field, document.timestamp.field), so
// those round-trip too. Every id strategy but objectid promises one document per _id after a
// replay; objectid gives every write a new _id, so a replay inserts the records again.
func TestAcceptance(t *testing.T) {
	uri := connecttest.Env(t, connecttest.EnvMongoDB)
	for _, tc := range []struct {
		name       string
		cfg        connect.Config
		idempotent bool
	}{
		{"upsert by key", connect.Config{"write.model": "upsert", "id.strategy": "key"}, true},
		{"update by id field", connect.Config{"write.model": "update", "id.strategy": "fields", "id.fields": "id"}, true},
		{"insert by coordinates", connect.Config{"write.model": "insert", "id.strategy": "coordinates"}, true},
		{"insert with new object ids", connect.Config{"write.model": "insert", "id.strategy": "objectid", "max.in.flight": "4"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := sluicetest.MongoDatabase(t, uri, "acc")
			tc.cfg["connection.uri"] = uri
			tc.cfg["database"] = db.Name()
			tc.cfg["collection"] = "acceptance"
			tc.cfg["document.kafka.field"] = "kafka"
			tc.cfg["document.timestamp.field"] = "stored_time"
			connecttest.CheckSink(t, connecttest.Registered(t, mongodbsink.Name), connecttest.SinkAcceptance{
				Config: tc.cfg,
				Read: func(ctx context.Context, _ connect.SinkTask) ([]map[string]any, error) {
					return readDocuments(ctx, db.Collection("acceptance"))
				},
				Idempotent: tc.idempotent,
			})
		})
	}
}

// readDocuments returns the collection's documents as rows: their fields, with the record
// coordinates and time the sink stored as the Meta keys.
func readDocuments(ctx context.Context, coll *mongo.Collection) ([]map[string]any, error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", coll.Name(), err)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading %s: %w", coll.Name(), err)
	}
	rows := make([]map[string]any, len(docs))
	for i, d := range docs {
		row := plain(d).(map[string]any)
		if k, ok := row["kafka"].(map[string]any); ok {
			row[connecttest.MetaTopic], row[connecttest.MetaPartition], row[connecttest.MetaOffset] = k["topic"], k["partition"], k["offset"]
		}
		row[connecttest.MetaTime] = row["stored_time"]
		rows[i] = row
	}
	return rows, nil
}

// plain turns BSON values into plain Go ones: documents into maps, dates into times.
func plain(v any) any {
	switch v := v.(type) {
	case bson.D:
		m := make(map[string]any, len(v))
		for _, e := range v {
			m[e.Key] = plain(e.Value)
		}
		return m
	case bson.A:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plain(e)
		}
		return out
	case bson.DateTime:
		return v.Time()
	}
	return v
}
