// Package check is the chaos suite's independent checker: it reads the list of frames the
// simulator says it sent and counts each of them in the stores, with nothing but the stores'
// own clients (pgx for PostgreSQL, the MongoDB Go driver, confluent-kafka-go for the raw topic)
// and pyiceberg, run as a Python script, for the Iceberg table. It imports no Sluice package
// (runtime, connect, the connectors or anything internal), so a bug in Sluice's code cannot
// hide itself from the check; the chaos tests assert that.
package check

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Frame is one line of the sent file: a frame the simulator published and had acknowledged.
type Frame struct {
	ID     string
	Device string
	Topic  string
	SentAt time.Time
}

// WriteFrame writes f as one line of a sent file: frame id, device, MQTT topic and the
// publish time in Unix milliseconds, tab-separated.
func WriteFrame(w *bufio.Writer, f Frame) error {
	_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", f.ID, f.Device, f.Topic, f.SentAt.UnixMilli())
	return err
}

// ReadSent reads a sent file; a frame id may appear more than once (the simulator may send a
// frame again), the first line counts.
func ReadSent(path string) (map[string]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]Frame{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 4", path, n, len(parts))
		}
		ms, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if _, ok := out[parts[0]]; !ok {
			out[parts[0]] = Frame{ID: parts[0], Device: parts[1], Topic: parts[2], SentAt: time.UnixMilli(ms)}
		}
	}
	return out, sc.Err()
}

// Config says where the stores are.
type Config struct {
	SentFile string

	Kafka, Topic string // the raw topic mqtt-source writes

	Postgres, PGTable string // schema.table of the timescale-sink

	MongoDB, MongoDatabase, MongoCollection string // the mongodb-sink's, _id = frame_id

	// SinkGroups names each store's sink consumer group (store name -> group id), to tell
	// frames a sink has not read yet (lag) from frames it read and did not write.
	SinkGroups map[string]string

	Python                         string // a Python with pyiceberg
	IcebergCatalog                 string // path of the SQLite catalog file
	IcebergWarehouse, IcebergTable string // warehouse URI; namespace.table
}

// Store is what one store holds of the frames sent.
type Store struct {
	Name       string
	Rows       int // rows or records with a frame id
	Found      int // distinct frames sent that are there
	Lost       int // frames sent that are not there
	Duplicated int // rows beyond the first of a frame
	Unexpected int // distinct frame ids there that were never sent
	// Against is set for Iceberg: frames whose row count differs from their record count in
	// the raw topic (the sink is exactly once with respect to the topic).
	Against int
	// Lag is how many records of the topic the store's sink has not committed yet (-1: not
	// known).
	Lag     int64
	LostIDs []string // sorted
}

// Result is one check.
type Result struct {
	Sent   map[string]Frame
	Topic  Store   // the raw topic
	Stores []Store // PostgreSQL, MongoDB, Iceberg
	Took   time.Duration
}

// Clean says whether every store holds every frame, and the idempotent stores (PostgreSQL and
// MongoDB) and the Iceberg table (against the topic) hold nothing twice.
func (r *Result) Clean() bool {
	if r.Topic.Lost > 0 {
		return false
	}
	for _, s := range r.Stores {
		if s.Lost > 0 || s.Unexpected > 0 || s.Against > 0 || (s.Name != "iceberg" && s.Duplicated > 0) {
			return false
		}
	}
	return true
}

// Run reads the sent file and every store once.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	began := time.Now()
	sent, err := ReadSent(cfg.SentFile)
	if err != nil {
		return nil, err
	}
	res := &Result{Sent: sent}
	topic, err := topicCounts(ctx, cfg.Kafka, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka topic %s: %w", cfg.Topic, err)
	}
	res.Topic = compare("topic", topic, sent)
	pg, err := pgCounts(ctx, cfg.Postgres, cfg.PGTable)
	if err != nil {
		return nil, fmt.Errorf("postgresql %s: %w", cfg.PGTable, err)
	}
	mg, err := mongoCounts(ctx, cfg.MongoDB, cfg.MongoDatabase, cfg.MongoCollection)
	if err != nil {
		return nil, fmt.Errorf("mongodb %s.%s: %w", cfg.MongoDatabase, cfg.MongoCollection, err)
	}
	ice, err := icebergCounts(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("iceberg %s: %w", cfg.IcebergTable, err)
	}
	is := compare("iceberg", ice, sent)
	for id, n := range topic {
		if ice[id] != n {
			is.Against++
		}
	}
	for id := range ice {
		if _, ok := topic[id]; !ok {
			is.Against++
		}
	}
	res.Stores = []Store{compare("postgresql", pg, sent), compare("mongodb", mg, sent), is}
	for i := range res.Stores {
		res.Stores[i].Lag = -1
		if g := cfg.SinkGroups[res.Stores[i].Name]; g != "" {
			if lag, err := groupLag(ctx, cfg.Kafka, g, cfg.Topic); err == nil {
				res.Stores[i].Lag = lag
			}
		}
	}
	res.Took = time.Since(began)
	return res, nil
}

func compare(name string, got map[string]int, sent map[string]Frame) Store {
	s := Store{Name: name}
	for id, n := range got {
		s.Rows += n
		if _, ok := sent[id]; !ok {
			s.Unexpected++
			continue
		}
		s.Found++
		s.Duplicated += n - 1
	}
	for id := range sent {
		if got[id] == 0 {
			s.Lost++
			s.LostIDs = append(s.LostIDs, id)
		}
	}
	slices.Sort(s.LostIDs)
	return s
}

// topicCounts reads the topic from the beginning to the current end of every partition and
// counts the records per frame_id of their JSON values.
func topicCounts(ctx context.Context, bootstrap, topic string) (map[string]int, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap,
		"group.id": fmt.Sprintf("chaos-check-%d", time.Now().UnixNano()), "enable.auto.commit": false,
		"enable.partition.eof": true, "auto.offset.reset": "earliest"})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		return nil, err
	}
	var tps []kafka.TopicPartition
	for _, p := range md.Topics[topic].Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetBeginning})
	}
	if len(tps) == 0 {
		return nil, fmt.Errorf("no partitions")
	}
	if err := c.Assign(tps); err != nil {
		return nil, err
	}
	pending := map[int32]bool{}
	for _, tp := range tps {
		pending[tp.Partition] = true
	}
	out := map[string]int{}
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch e := c.Poll(200).(type) {
		case *kafka.Message:
			var v struct {
				FrameID string `json:"frame_id"`
			}
			_ = json.Unmarshal(e.Value, &v)
			out[v.FrameID]++
		case kafka.PartitionEOF:
			delete(pending, e.Partition)
		case kafka.Error:
			if e.IsFatal() {
				return nil, e
			}
		}
	}
	return out, nil
}

// groupLag is how many records of the topic a consumer group has not committed: the sum over
// partitions of the end offset less the committed one (the whole partition when none is).
func groupLag(_ context.Context, bootstrap, group, topic string) (int64, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		return 0, err
	}
	var tps []kafka.TopicPartition
	for _, p := range md.Topics[topic].Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p.ID})
	}
	committed, err := c.Committed(tps, 10000)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, tp := range committed {
		lo, hi, err := c.QueryWatermarkOffsets(topic, tp.Partition, 10000)
		if err != nil {
			return 0, err
		}
		from := int64(tp.Offset)
		if from < 0 {
			from = lo
		}
		lag += max(0, hi-from)
	}
	return lag, nil
}

func pgCounts(ctx context.Context, url, table string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT frame_id, count(*) FROM "+table+" GROUP BY frame_id")
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

func mongoCounts(ctx context.Context, uri, db, coll string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	cur, err := client.Database(db).Collection(coll).Find(ctx, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(10000))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[string]int{}
	for cur.Next(ctx) {
		id, err := cur.Current.LookupErr("_id")
		if err != nil {
			return nil, err
		}
		s, ok := id.StringValueOK()
		if !ok {
			s = id.String()
		}
		out[s]++
	}
	return out, cur.Err()
}

//go:embed iceberg_counts.py
var icebergScript []byte

func icebergCounts(ctx context.Context, cfg Config) (map[string]int, error) {
	dir, err := os.MkdirTemp("", "chaos-check")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "iceberg_counts.py")
	if err := os.WriteFile(script, icebergScript, 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, cfg.Python, script, cfg.IcebergCatalog, cfg.IcebergWarehouse, cfg.IcebergTable)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pyiceberg: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := map[string]int{}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("pyiceberg's output: %w", err)
	}
	return out, nil
}
