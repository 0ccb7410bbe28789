package mongodbsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// These tests run against the test MongoDB server (SLUICE_TEST_MONGODB), each in a database of
// its own.

var dbSeq int

// testDB names a fresh database on the test server and returns a client for reading back.
func testDB(t *testing.T) (uri, name string, db *mongo.Database) {
	t.Helper()
	uri = connecttest.Env(t, connecttest.EnvMongoDB)
	dbSeq++
	name = fmt.Sprintf("sink_%s_%d", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), dbSeq)
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	db = client.Database(name)
	_ = db.Drop(t.Context())
	t.Cleanup(func() {
		ctx := context.Background()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	return uri, name, db
}

func startOn(t *testing.T, tc connect.SinkTaskContext, uri, db string, kv ...string) *Task {
	t.Helper()
	cfg := connect.Config{"connection.uri": uri, "database": db}
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	task := &Task{}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return task
}

// readAll returns a collection's documents as relaxed Extended JSON, sorted by _id.
func readAll(t *testing.T, db *mongo.Database, coll string) []string {
	t.Helper()
	cur, err := db.Collection(coll).Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = extJSON(t, d)
	}
	return out
}

func at(offset int64, key, value any) connect.Record {
	return connect.Record{Topic: "iot.raw", KafkaPartition: 0, KafkaOffset: offset, Key: key, Value: value}
}

func TestEachWriteModelAndIDStrategyOnTheServer(t *testing.T) {
	frame := func(dev string, seq int64, temp float64) map[string]any {
		return map[string]any{"device": dev, "seq": seq, "temp": temp}
	}
	batch := []connect.Record{
		at(0, "d1", frame("d1", 1, 20)),
		at(1, "d2", frame("d2", 1, 30)),
		at(2, "d1", map[string]any{"device": "d1", "seq": int64(2)}), // no temp
		at(3, "d3", frame("d3", 1, 40)),
		at(4, "d3", nil), // tombstone
	}
	for _, tc := range []struct {
		name     string
		settings []string
		want     []string
		// replays: the batch written again (after a crash) leaves the same documents
		replays bool
	}{
		{"upsert by key", []string{"write.model", "upsert", "id.strategy", "key"}, []string{
			`{"_id":"d1","device":"d1","seq":2}`,
			`{"_id":"d2","device":"d2","seq":1,"temp":30.0}`,
		}, true},
		{"update by key", []string{"write.model", "update", "id.strategy", "key"}, []string{
			`{"_id":"d1","device":"d1","seq":2,"temp":20.0}`,
			`{"_id":"d2","device":"d2","seq":1,"temp":30.0}`,
		}, true},
		{"upsert by fields", []string{"write.model", "upsert", "id.strategy", "fields", "id.fields", "device,seq", "delete.on.null", "false"}, []string{
			`{"_id":{"device":"d1","seq":1},"device":"d1","seq":1,"temp":20.0}`,
			`{"_id":{"device":"d1","seq":2},"device":"d1","seq":2}`,
			`{"_id":{"device":"d2","seq":1},"device":"d2","seq":1,"temp":30.0}`,
			`{"_id":{"device":"d3","seq":1},"device":"d3","seq":1,"temp":40.0}`,
		}, true},
		{"update by one field", []string{"write.model", "update", "id.strategy", "fields", "id.fields", "device", "delete.on.null", "false"}, []string{
			`{"_id":"d1","device":"d1","seq":2,"temp":20.0}`,
			`{"_id":"d2","device":"d2","seq":1,"temp":30.0}`,
			`{"_id":"d3","device":"d3","seq":1,"temp":40.0}`,
		}, true},
		{"upsert by coordinates", []string{"write.model", "upsert", "id.strategy", "coordinates"}, []string{
			`{"_id":{"topic":"iot.raw","partition":0,"offset":0},"device":"d1","seq":1,"temp":20.0}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":1},"device":"d2","seq":1,"temp":30.0}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":2},"device":"d1","seq":2}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":3},"device":"d3","seq":1,"temp":40.0}`,
		}, true},
		{"insert by coordinates", []string{"write.model", "insert", "id.strategy", "coordinates"}, []string{
			`{"_id":{"topic":"iot.raw","partition":0,"offset":0},"device":"d1","seq":1,"temp":20.0}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":1},"device":"d2","seq":1,"temp":30.0}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":2},"device":"d1","seq":2}`,
			`{"_id":{"topic":"iot.raw","partition":0,"offset":3},"device":"d3","seq":1,"temp":40.0}`,
		}, false}, // replayed inserts: see TestReplayedInsertsAreStoredOnceWithoutErrors
		{"insert with new ObjectIds", []string{"write.model", "insert", "id.strategy", "objectid"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri, dbName, db := testDB(t)
			sc := connecttest.NewSinkContext(t, 0)
			task := startOn(t, sc, uri, dbName, tc.settings...)
			if err := task.Put(t.Context(), batch); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got := readAll(t, db, "iot.raw")
			if tc.want == nil { // new ObjectIds: compare without them
				for i, d := range got {
					var m bson.D
					_ = bson.UnmarshalExtJSON([]byte(d), false, &m)
					if m[0].Key != "_id" || !strings.Contains(d, `"$oid"`) {
						t.Errorf("document %s has no ObjectId", d)
					}
					got[i] = extJSON(t, m[1:])
				}
				tc.want = []string{`{"device":"d1","seq":1,"temp":20.0}`, `{"device":"d2","seq":1,"temp":30.0}`,
					`{"device":"d1","seq":2}`, `{"device":"d3","seq":1,"temp":40.0}`}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("collection holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(sc.Reported) > 0 {
				t.Errorf("reported %v", sc.Reasons)
			}
			if !tc.replays {
				return
			}
			if err := task.Put(t.Context(), batch); err != nil {
				t.Fatalf("Put again: %v", err)
			}
			if again := readAll(t, db, "iot.raw"); strings.Join(again, "\n") != strings.Join(got, "\n") {
				t.Errorf("after a replay the collection holds\n%s\nwant\n%s", strings.Join(again, "\n"), strings.Join(got, "\n"))
			}
		})
	}
}

// Inserts replayed after a crash, or after a bulk write that timed out but was applied, find
// their documents stored already: that is no error, and each document is stored once.
func TestReplayedInsertsAreStoredOnceWithoutErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []string
	}{
		{"by key, ordered", []string{"id.strategy", "key"}},
		{"by key, unordered", []string{"id.strategy", "key", "bulk.ordered", "false"}},
		{"by fields, in small bulk writes", []string{"id.strategy", "fields", "id.fields", "device,seq", "batch.size", "3"}},
		{"by coordinates", []string{"id.strategy", "coordinates"}},
		{"with the kafka and timestamp fields, two lanes", []string{"id.strategy", "key", "document.kafka.field", "kafka",
			"document.timestamp.field", "ts", "max.in.flight", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri, dbName, db := testDB(t)
			var batch []connect.Record
			for i := range 12 {
				r := at(int64(i), fmt.Sprintf("d%d", i), map[string]any{"device": fmt.Sprintf("d%d", i), "seq": int64(i),
					"temp": 20.5, "tags": []any{"a", int64(i)}, "place": map[string]any{"id": "p1", "floor": int64(2)}})
				r.Time = time.UnixMilli(1717000000000 + int64(i)).UTC()
				batch = append(batch, r)
			}
			settings := append([]string{"write.model", "insert", "collection", "frames"}, tc.settings...)
			sc := connecttest.NewSinkContext(t, 0)
			task := startOn(t, sc, uri, dbName, settings...)
			if err := task.Put(t.Context(), batch[:8]); err != nil {
				t.Fatalf("Put: %v", err)
			}
			want := readAll(t, db, "frames")
			if len(want) != 8 {
				t.Fatalf("collection holds %d documents, want 8", len(want))
			}
			// The same batch again (the runtime redelivers after a timed-out write), then by a
			// new task (a restart after a crash) with the records after it too.
			if err := task.Put(t.Context(), batch[:8]); err != nil {
				t.Fatalf("Put of the replayed batch: %v", err)
			}
			restarted := startOn(t, sc, uri, dbName, settings...)
			if err := restarted.Put(t.Context(), batch); err != nil {
				t.Fatalf("Put of the replayed batch by a new task: %v", err)
			}
			got := readAll(t, db, "frames")
			if len(got) != 12 || slices.ContainsFunc(want, func(d string) bool { return !slices.Contains(got, d) }) {
				t.Errorf("collection holds\n%s\nwant the first 8 documents unchanged and 4 more", strings.Join(got, "\n"))
			}
			if len(sc.Reported) > 0 {
				t.Errorf("reported %v, want no errors for replayed inserts", sc.Reasons)
			}
		})
	}
}

// A duplicate key that is no replay stays a bad record: another document under the same _id,
// or the same value of another unique index.
func TestDuplicateKeysThatAreNoReplayAreReported(t *testing.T) {
	for _, ordered := range []string{"true", "false"} {
		t.Run("ordered="+ordered, func(t *testing.T) {
			uri, dbName, db := testDB(t)
			sc := connecttest.NewSinkContext(t, 0)
			task := startOn(t, sc, uri, dbName, "write.model", "insert", "collection", "devices", "indexes", "serial:1!unique",
				"bulk.ordered", ordered, "document.kafka.field", "kafka")
			first := []connect.Record{
				at(0, "a", map[string]any{"serial": "s-a", "n": int64(1)}),
				at(1, "b", map[string]any{"serial": "s-b", "n": int64(1)}),
			}
			if err := task.Put(t.Context(), first); err != nil {
				t.Fatal(err)
			}
			second := []connect.Record{
				first[0], // a replay
				at(2, "a", map[string]any{"serial": "s-a2", "n": int64(2)}), // another record with _id a
				at(3, "c", map[string]any{"serial": "s-b", "n": int64(1)}),  // serial s-b is b's
				first[1], // a replay
				at(4, "a", map[string]any{"serial": "s-a", "n": int64(1)}), // a's document, but from another record
				at(5, "d", map[string]any{"serial": "s-d", "n": int64(1)}),
			}
			if err := task.Put(t.Context(), second); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := readAll(t, db, "devices"); len(got) != 3 || !strings.Contains(got[0], `"_id":"a","n":1,"serial":"s-a"`) {
				t.Errorf("collection holds %v, want a (unchanged), b and d", got)
			}
			var offsets []int64
			for _, r := range sc.Reported {
				offsets = append(offsets, r.KafkaOffset)
			}
			if fmt.Sprint(offsets) != "[2 3 4]" {
				t.Fatalf("reported offsets %v (%v), want [2 3 4]", offsets, sc.Reasons)
			}
			for i, reason := range sc.Reasons {
				if !strings.Contains(reason.Error(), "collection devices rejected the document (code 11000)") ||
					!strings.Contains(reason.Error(), "duplicate key") {
					t.Errorf("reason %d is %q, want the server's duplicate key error", i, reason)
				}
			}
		})
	}
}

// The comparison of a stored document with an insert's ignores field order, not types.
func TestSameDocument(t *testing.T) {
	raw := func(d bson.D) bson.Raw {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := bson.D{{Key: "_id", Value: "a"}, {Key: "x", Value: int64(1)}, {Key: "sub", Value: bson.D{{Key: "p", Value: 1.5}, {Key: "q", Value: "s"}}},
		{Key: "arr", Value: bson.A{"u", "v"}}}
	for _, tt := range []struct {
		name  string
		other bson.D
		same  bool
	}{
		{"equal", base, true},
		{"fields reordered", bson.D{base[0], base[2], base[3], base[1]}, true},
		{"subdocument reordered", bson.D{base[0], base[1], {Key: "sub", Value: bson.D{{Key: "q", Value: "s"}, {Key: "p", Value: 1.5}}}, base[3]}, true},
		{"array reordered", bson.D{base[0], base[1], base[2], {Key: "arr", Value: bson.A{"v", "u"}}}, false},
		{"another type", bson.D{base[0], {Key: "x", Value: int32(1)}, base[2], base[3]}, false},
		{"another value", bson.D{base[0], {Key: "x", Value: int64(2)}, base[2], base[3]}, false},
		{"a field more", append(bson.D{{Key: "y", Value: 1}}, base...), false},
		{"a field less", base[:3], false},
	} {
		if got := sameDocument(raw(base), raw(tt.other)); got != tt.same {
			t.Errorf("%s: sameDocument = %v, want %v", tt.name, got, tt.same)
		}
	}
}

func TestRejectedDocumentsGoToTheErrorPolicyAndTheRestIsWritten(t *testing.T) {
	for _, ordered := range []string{"true", "false"} {
		t.Run("ordered="+ordered, func(t *testing.T) {
			uri, dbName, db := testDB(t)
			sc := connecttest.NewSinkContext(t, 0)
			// One bulk write at a time: which of the records sharing serial s0 the unique index
			// takes first must not depend on how two lanes race.
			task := startOn(t, sc, uri, dbName, "collection", "devices", "indexes", "serial:1!unique", "bulk.ordered", ordered,
				"batch.size", "3", "max.in.flight", "1")
			var batch []connect.Record
			for i := range 10 {
				serial := fmt.Sprintf("s%d", i)
				if i == 4 || i == 7 {
					serial = "s0" // the unique index refuses it
				}
				batch = append(batch, at(int64(i), fmt.Sprintf("d%d", i), map[string]any{"serial": serial}))
			}
			batch = append(batch, at(10, "d10", "{not json"), at(11, nil, map[string]any{"serial": "s11"}))
			if err := task.Put(t.Context(), batch); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got := readAll(t, db, "devices")
			if len(got) != 8 {
				t.Errorf("collection holds %d documents, want the 8 good ones: %v", len(got), got)
			}
			var offsets []int64
			for _, r := range sc.Reported {
				offsets = append(offsets, r.KafkaOffset)
			}
			if fmt.Sprint(offsets) != "[4 7 10 11]" {
				t.Fatalf("reported offsets %v (%v), want [4 7 10 11]", offsets, sc.Reasons)
			}
			for i, want := range []string{"collection devices rejected the document (code 11000)", "collection devices rejected the document (code 11000)",
				`record iot.raw/0@10: field "value": bad value "{not json"`, `record iot.raw/0@11: field "key": bad value <nil>: is null`} {
				if !strings.Contains(sc.Reasons[i].Error(), want) {
					t.Errorf("reason %d is %q, want it to contain %q", i, sc.Reasons[i], want)
				}
			}
		})
	}
}

func TestAnIntolerantErrorPolicyFailsPut(t *testing.T) {
	uri, dbName, _ := testDB(t)
	sc := connecttest.NewSinkContext(t, 0)
	sc.ReportErr = errors.New("tolerance exceeded")
	task := startOn(t, sc, uri, dbName)
	if err := task.Put(t.Context(), []connect.Record{at(0, nil, map[string]any{})}); !errors.Is(err, sc.ReportErr) {
		t.Errorf("Put = %v, want the error policy's answer", err)
	}
}

func TestTopicsGoToTheirCollections(t *testing.T) {
	uri, dbName, db := testDB(t)
	task := startOn(t, connecttest.NewSinkContext(t, 0), uri, dbName, "collection", "c_{topic}", "collection.map", "iot.agg=aggregates")
	r1, r2 := at(0, "a", map[string]any{}), at(0, "b", map[string]any{})
	r2.Topic = "iot.agg"
	if err := task.Put(t.Context(), []connect.Record{r1, r2}); err != nil {
		t.Fatal(err)
	}
	if a, b := readAll(t, db, "c_iot.raw"), readAll(t, db, "aggregates"); len(a) != 1 || len(b) != 1 {
		t.Errorf("c_iot.raw holds %v and aggregates %v, want one document each", a, b)
	}
}

func TestIndexesAreCreatedAtStart(t *testing.T) {
	uri, dbName, db := testDB(t)
	startOn(t, connecttest.NewSinkContext(t, 0), uri, dbName, "collection", "frames", "indexes", "device:1+time:-1,serial!unique")
	specs, err := db.Collection("frames").Indexes().ListSpecifications(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs {
		got = append(got, fmt.Sprintf("%s unique=%v", extJSON(t, s.KeysDocument), s.Unique != nil && *s.Unique))
	}
	slices.Sort(got)
	want := `{"_id":1} unique=false` + "\n" + `{"device":1,"time":-1} unique=false` + "\n" + `{"serial":1} unique=true`
	if strings.Join(got, "\n") != want {
		t.Errorf("indexes\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// The test server (mongo-java-server) has no time-series collections: it takes the create
// command and makes an ordinary collection. The task must say so rather than write to it.
func TestTimeSeriesCollectionsTheServerLacksAreDetected(t *testing.T) {
	uri, dbName, _ := testDB(t)
	cfg := connect.Config{"connection.uri": uri, "database": dbName, "collection": "readings", "write.model": "insert",
		"timeseries.time.field": "time", "timeseries.meta.field": "device"}
	err := (&Task{}).Start(t.Context(), cfg, connecttest.NewSinkContext(t, 0))
	if !errors.Is(err, errTimeSeriesUnsupported) || !strings.Contains(err.Error(), "collection readings") {
		t.Fatalf("Start = %v, want a clear error that the server lacks time-series collections", err)
	}
	t.Log(err)

	// With a collection per topic the check happens before the first write, and fails Put.
	cfg["collection"] = "{topic}"
	task := startOn(t, connecttest.NewSinkContext(t, 0), uri, dbName, flatten(cfg)...)
	err = task.Put(t.Context(), []connect.Record{at(0, "d1", map[string]any{"time": "2024-06-10T12:00:00Z"})})
	if !errors.Is(err, errTimeSeriesUnsupported) || connect.IsRetriable(err) {
		t.Fatalf("Put = %v, want a lasting error that the server lacks time-series collections", err)
	}
}

func flatten(cfg connect.Config) []string {
	var kv []string
	for k, v := range cfg {
		kv = append(kv, k, v)
	}
	return kv
}

func TestAServerThatCannotBeReachedIsRetriable(t *testing.T) {
	connecttest.Env(t, connecttest.EnvMongoDB)
	task := startOn(t, connecttest.NewSinkContext(t, 0), "mongodb://127.0.0.1:1/?connectTimeoutMS=200", "nowhere", "timeout", "500ms")
	err := task.Put(t.Context(), []connect.Record{at(0, "a", map[string]any{})})
	if !connect.IsRetriable(err) {
		t.Fatalf("Put = %v, want a retriable error", err)
	}
	t.Log(err)
}

func TestConnectionTest(t *testing.T) {
	uri, dbName, _ := testDB(t)
	if err := (&Connector{}).Validate(t.Context(), connect.Config{"connection.uri": uri, "database": dbName}); err != nil {
		t.Errorf("Validate against the test server: %v", err)
	}
	err := (&Connector{}).Validate(t.Context(), connect.Config{"connection.uri": "mongodb://127.0.0.1:1", "database": dbName, "timeout": "300ms"})
	byKey, _ := connect.FieldErrors(err)
	if msgs := byKey["connection.uri"]; len(msgs) != 1 || !strings.Contains(msgs[0], "Cannot reach MongoDB") {
		t.Errorf("Validate of a closed port = %v, want an error on connection.uri", err)
	}
}
