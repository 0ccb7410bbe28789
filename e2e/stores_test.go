package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver of the Iceberg SQL catalog

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// ---- Kafka

// createTopics creates topics with the given partition counts on the test Kafka.
func createTopics(t *testing.T, bootstrap string, partitions map[string]int) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var specs []kafka.TopicSpecification
	for topic, n := range partitions {
		specs = append(specs, kafka.TopicSpecification{Topic: topic, NumPartitions: n, ReplicationFactor: -1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			t.Fatalf("create topic %s: %v", r.Topic, r.Error)
		}
	}
}

// readTopic reads every committed record of a topic, from the beginning to the end of each
// partition as it is now (read_committed, so aborted transactions are left out).
func readTopic(t *testing.T, bootstrap, topic string) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": sluicetest.UniqueName("e2e-reader"),
		"auto.offset.reset": "earliest", "enable.auto.commit": false, "enable.partition.eof": true,
		"isolation.level": "read_committed"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var tps []kafka.TopicPartition
	for _, p := range md.Topics[topic].Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetBeginning})
	}
	if len(tps) == 0 {
		t.Fatalf("topic %s has no partitions", topic)
	}
	if err := c.Assign(tps); err != nil {
		t.Fatal(err)
	}
	pending := map[int32]bool{}
	for _, tp := range tps {
		pending[tp.Partition] = true
	}
	var out []*kafka.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not read to its end within 60 s (%d records so far)", topic, len(out))
		}
		switch e := c.Poll(200).(type) {
		case *kafka.Message:
			out = append(out, e)
		case kafka.PartitionEOF:
			delete(pending, e.Partition)
		case kafka.Error:
			if e.IsFatal() {
				t.Fatal(e)
			}
		}
	}
	return out
}

// frameIDs counts the frame_id of each record's JSON value; values without one are counted
// under "".
func frameIDs(msgs []*kafka.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		var v struct {
			FrameID string `json:"frame_id"`
		}
		_ = json.Unmarshal(m.Value, &v)
		out[v.FrameID]++
	}
	return out
}

// ---- MongoDB

func mongoDatabase(t *testing.T, uri string) *mongo.Database {
	t.Helper()
	return sluicetest.MongoDatabase(t, uri, "e2e")
}

// mongoDocs reads a collection's documents matching filter; an error when the server does
// not answer.
func mongoDocs(coll *mongo.Collection, filter any, opts ...options.Lister[options.FindOptions]) ([]bson.M, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	var out []bson.M
	err = cur.All(ctx, &out)
	return out, err
}

// mongoWindows reads the window results of an aggregate collection.
func mongoWindows(coll *mongo.Collection, groupField string) ([]gotWindow, error) {
	docs, err := mongoDocs(coll, bson.D{})
	if err != nil {
		return nil, err
	}
	out := make([]gotWindow, 0, len(docs))
	for _, d := range docs {
		start, err := time.Parse(time.RFC3339, fmt.Sprint(d["window_start"]))
		if err != nil {
			return nil, fmt.Errorf("document %v: window_start: %w", d["_id"], err)
		}
		out = append(out, gotWindow{group: fmt.Sprint(d[groupField]), start: start.UnixMilli(), values: d})
	}
	return out, nil
}

// ---- PostgreSQL

func pgSchema(t *testing.T, url string) (*pgxpool.Pool, string) {
	t.Helper()
	return sluicetest.PostgresSchema(t, url, "e2e")
}

// pgFrameIDs counts the rows per frame_id of a raw table.
func pgFrameIDs(db *pgxpool.Pool, table string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, "SELECT frame_id, count(*) FROM "+table+" GROUP BY frame_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// pgWindows reads the window results of an aggregate table: each row as JSON, with the time
// column (the window start) in milliseconds.
func pgWindows(db *pgxpool.Pool, table, groupColumn string) ([]gotWindow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT (extract(epoch FROM r."time") * 1000)::bigint, to_jsonb(r)::text FROM `+table+` r`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []gotWindow
	for rows.Next() {
		var ms int64
		var js string
		if err := rows.Scan(&ms, &js); err != nil {
			return nil, err
		}
		var values map[string]any
		if err := json.Unmarshal([]byte(js), &values); err != nil {
			return nil, err
		}
		out = append(out, gotWindow{group: fmt.Sprint(values[groupColumn]), start: ms, values: values})
	}
	return out, rows.Err()
}

// ---- Iceberg

// lake is a local Iceberg warehouse with a SQLite SQL catalog.
type lake struct {
	dir, uri, warehouse, namespace, table string
}

func newLake(t *testing.T) lake {
	dir := t.TempDir()
	return lake{dir: dir, uri: "sqlite://" + filepath.Join(dir, "catalog.db"), warehouse: "file://" + filepath.Join(dir, "warehouse"),
		namespace: "e2e", table: "raw"}
}

func (l lake) catalog(readOnly bool) (*sqlcat.Catalog, *sql.DB, error) {
	dsn := "file:" + filepath.Join(l.dir, "catalog.db") + "?_pragma=busy_timeout(30000)"
	props := iceberg.Properties{"warehouse": l.warehouse}
	if readOnly {
		dsn += "&mode=ro"
	} else {
		dsn += "&_pragma=journal_mode(WAL)&_txlock=immediate"
		props["init_catalog_tables"] = "true"
		props[sqlcat.SchemaVersionKey] = sqlcat.SchemaVersionV1
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, err
	}
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, props)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return cat, db, nil
}

// createRawTable makes the raw frames' table before the sink starts. The sink would create
// it from the first record's JSON, where a reading that happens to be whole (21.0 is written
// 21) would make its column a long, and every later 21.5 a bad record; a lake table defined
// up front, with doubles, is the robust way.
func (l lake) createRawTable(t *testing.T) {
	t.Helper()
	cat, db, err := l.catalog(false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer cat.Close()
	sluicetest.CreateFramesTable(t, cat, l.namespace, l.table)
}

// frameIDs scans the raw table and counts the rows per frame_id; an error when it cannot be
// read (yet).
func (l lake) frameIDs() (map[string]int, error) {
	cat, db, err := l.catalog(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer cat.Close()
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, catalog.ToIdentifier(l.namespace, l.table))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	if tbl.CurrentSnapshot() == nil {
		return out, nil
	}
	at, err := tbl.Scan(table.WithSelectedFields("frame_id")).ToArrowTable(ctx)
	if err != nil {
		return nil, err
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 8192)
	defer rdr.Release()
	for rdr.Next() {
		col, ok := rdr.RecordBatch().Column(0).(interface {
			Len() int
			Value(int) string
		})
		if !ok {
			return nil, fmt.Errorf("frame_id column is %T", rdr.RecordBatch().Column(0))
		}
		for i := 0; i < col.Len(); i++ {
			out[col.Value(i)]++
		}
	}
	return out, nil
}

// ---- Prometheus

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promQuery(t *testing.T, prom, q string) ([]promSeries, error) {
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if code := sluicetest.Call(t, "GET", prom+"/api/v1/query?query="+url.QueryEscape(q), nil, &out); code != 200 {
		return nil, fmt.Errorf("query %s: %d", q, code)
	}
	return out.Data.Result, nil
}
