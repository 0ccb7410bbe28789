package icebergsink_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// Worker-level tests: the connector in real workers, reading real Kafka, writing Iceberg tables
// in a SQLite catalog with a local warehouse.

type lake struct {
	dir, uri, warehouse string
}

func newLake(t *testing.T) lake {
	dir := t.TempDir()
	return lake{dir: dir, uri: "sqlite://" + filepath.Join(dir, "catalog.db"), warehouse: "file://" + filepath.Join(dir, "warehouse")}
}

// load reads the table through its own catalog connection, as another reader would; nil when
// it does not exist yet.
func (l lake) load(t testing.TB, name string) *table.Table {
	t.Helper()
	return loadTable(t, "sqlite", "file:"+filepath.Join(l.dir, "catalog.db")+"?_pragma=busy_timeout(30000)&mode=ro", sqlcat.SQLite, l.warehouse, name)
}

// loadTable reads a table through a SQL catalog connection of its own, as another reader
// would; nil when it does not exist yet.
func loadTable(t testing.TB, driver, dsn string, dialect sqlcat.SupportedDialect, warehouse, name string) *table.Table {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, dialect, iceberg.Properties{"warehouse": warehouse})
	if err != nil {
		return nil
	}
	defer cat.Close()
	tbl, err := cat.LoadTable(context.Background(), catalog.ToIdentifier("sluice", name))
	if err != nil {
		return nil
	}
	return tbl
}

// holdCatalogWrites takes SQLite's write lock on the lake's catalog (BEGIN IMMEDIATE) until
// the returned function is called: readers go on, a commit waits (and, past the worker's busy
// timeout, fails and is retried).
func (l lake) holdCatalogWrites(t *testing.T) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.dir, "catalog.db")+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("taking the catalog's write lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Errorf("releasing the catalog's write lock: %v", err)
			}
			_ = conn.Close()
			_ = db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// committed is the row count of the table's current snapshot, -1 before the first.
func committed(tbl *table.Table) int64 {
	if tbl == nil || tbl.CurrentSnapshot() == nil {
		return -1
	}
	n, _ := strconv.ParseInt(tbl.CurrentSnapshot().Summary.Properties["total-records"], 10, 64)
	return n
}

// awaitEachOnce waits until the table has committed total rows and checks that they are the
// seqs 0 to total-1, each once; it returns the table as loaded.
func (l *lake) awaitEachOnce(t *testing.T, tbl string, total int) *table.Table {
	t.Helper()
	sluicetest.Eventually(t, 120*time.Second, "every record committed", func() (bool, string) {
		n := committed(l.load(t, tbl))
		return n >= int64(total), fmt.Sprint(n)
	})
	tb := l.load(t, tbl)
	counts := seqCounts(t, tb)
	var dup, missing int
	for s := range total {
		switch counts[int64(s)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if len(counts) != total || dup != 0 || missing != 0 || committed(tb) != int64(total) {
		t.Errorf("%d rows, %d distinct seqs, %d missing, %d written more than once; want %d once each", committed(tb), len(counts), missing, dup, total)
	}
	return tb
}

// seqCounts scans the table and counts each seq value.
func seqCounts(t testing.TB, tbl *table.Table) map[int64]int {
	t.Helper()
	at, err := tbl.Scan(table.WithSelectedFields("seq")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	out := map[int64]int{}
	rdr := array.NewTableReader(at, 8192)
	defer rdr.Release()
	for rdr.Next() {
		switch col := rdr.RecordBatch().Column(0).(type) {
		case *array.Int64: // a schema envelope, or schema.json.numbers=infer
			for i := 0; i < col.Len(); i++ {
				out[col.Value(i)]++
			}
		case *array.Float64: // JSON numbers by default
			for i := 0; i < col.Len(); i++ {
				out[int64(col.Value(i))]++
			}
		default:
			t.Fatalf("seq column is %s", col.DataType())
		}
	}
	return out
}

// dataFiles counts the Parquet files in the warehouse, committed or not.
func (l lake) dataFiles(_ testing.TB) int {
	n := 0
	_ = filepath.Walk(strings.TrimPrefix(l.warehouse, "file://"), func(p string, _ os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			n++
		}
		return nil
	})
	return n
}

func committedFiles(t testing.TB, tbl *table.Table) int {
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}

// frames are JSON sensor frames numbered from first, keyed by device.
func frames(first, n int, extra map[string]any) []*kafka.Message {
	out := make([]*kafka.Message, n)
	for i := range out {
		seq := first + i
		dev := fmt.Sprintf("dev-%d", seq%7)
		v := map[string]any{"seq": seq, "device_id": dev, "place_id": fmt.Sprintf("place-%d", seq%3),
			"event_time": time.UnixMilli(1714564800000 + int64(seq)*60_000).UTC().Format(time.RFC3339Nano), "temperature": 20.05 + float64(seq%100)/10}
		for k, x := range extra {
			v[k] = x
		}
		b, _ := json.Marshal(v)
		out[i] = &kafka.Message{Key: []byte(dev), Value: b}
	}
	return out
}

func sinkConfig(l lake, topic string, extra ...string) map[string]string {
	cfg := map[string]string{
		"connector.class": "iceberg-sink", "tasks.max": "1", "topics": topic,
		"catalog.uri": l.uri, "warehouse": l.warehouse, "commit.interval": "1s",
		"table.partition.by": "day(event_time),place_id", "schema.timestamp.fields": "event_time",
		"consumer.max.batch.records": "500",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i]] = extra[i+1]
	}
	return cfg
}

func tableOf(topic string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(topic) }

// TestKilledWorkersLeaveEveryRecordInTheTableOnce kills the worker process twice mid-stream,
// once at an arbitrary moment (usually with data files written and not committed) and once
// right after a commit, restarting it each time; the table ends with every record exactly once.
func TestKilledWorkersLeaveEveryRecordInTheTableOnce(t *testing.T) {
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"offset.flush.interval.ms": "600000"}
	p := c.StartProcess(settings)
	topic := sluicetest.UniqueName("ice-eos")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 3)
	name := sluicetest.UniqueName("ice-eos")
	sluicetest.CreateConnector(t, p.URL, name, sinkConfig(l, topic))
	sluicetest.WaitState(t, p.URL, name, api.StateRunning, 1)
	tbl := tableOf(topic)

	const first, second, third = 2000, 20000, 5000
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, first, nil)...)
	sluicetest.Eventually(t, 60*time.Second, "the first records in the table", func() (bool, string) {
		n := committed(l.load(t, tbl))
		return n == first, fmt.Sprint(n)
	})
	p.Term()
	// Catalog writes wait while the test holds SQLite's write lock: the restarted worker
	// writes its data files and then waits at the commit, where the test kills it.
	release := l.holdCatalogWrites(t)
	filesAtHold := l.dataFiles(t)
	p = c.StartProcess(settings)
	sluicetest.Produce(t, c.Bootstrap, topic, frames(first, second, nil)...)
	sluicetest.Eventually(t, 60*time.Second, "data files written while the catalog refuses the commit", func() (bool, string) {
		n := l.dataFiles(t)
		return n > filesAtHold, fmt.Sprint(n)
	})
	p.Kill()
	release()
	tb := l.load(t, tbl)
	if files, done := l.dataFiles(t), committedFiles(t, tb); files <= done {
		t.Fatalf("killed with %d data files in the warehouse, %d committed: the kill was not between write and commit", files, done)
	}
	t.Logf("first kill: %d rows committed; %d data files in the warehouse, %d committed", committed(tb), l.dataFiles(t), committedFiles(t, tb))

	p = c.StartProcess(settings)
	sluicetest.Produce(t, c.Bootstrap, topic, frames(first+second, third, nil)...)
	// Kill right after a commit: wait for a new snapshot, then kill at once.
	before := len(l.load(t, tbl).Metadata().Snapshots())
	sluicetest.Eventually(t, 60*time.Second, "a commit after the restart", func() (bool, string) {
		n := len(l.load(t, tbl).Metadata().Snapshots())
		return n > before, fmt.Sprint(n)
	})
	p.Kill()
	tb = l.load(t, tbl)
	t.Logf("second kill: %d rows committed; %d data files in the warehouse, %d committed", committed(tb), l.dataFiles(t), committedFiles(t, tb))

	p = c.StartProcess(settings)
	const total = first + second + third
	l.awaitEachOnce(t, tbl, total)
	sluicetest.WaitState(t, p.URL, name, api.StateRunning, 1)
}

// TestANewFieldMidStreamAddsAColumn runs records through a worker, then records with a new
// field: the table gains the column, and the rows before read it as null.
func TestANewFieldMidStreamAddsAColumn(t *testing.T) {
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("ice-evolve")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 1)
	name := sluicetest.UniqueName("ice-evolve")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(l, topic))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, 100, nil)...)
	sluicetest.Produce(t, c.Bootstrap, topic, frames(100, 50, map[string]any{"humidity": 41.5})...)
	tbl := tableOf(topic)
	sluicetest.Eventually(t, 60*time.Second, "every record in the table", func() (bool, string) {
		n := committed(l.load(t, tbl))
		return n == 150, fmt.Sprint(n)
	})
	tb := l.load(t, tbl)
	if f, ok := tb.Schema().FindFieldByName("humidity"); !ok || f.Type.String() != "double" {
		t.Fatalf("schema %s has no double humidity", tb.Schema())
	}
	at, err := tb.Scan(table.WithSelectedFields("seq", "humidity")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 1024)
	defer rdr.Release()
	rows := 0
	for rdr.Next() {
		rec := rdr.RecordBatch()
		seq, hum := rec.Column(0).(*array.Float64), rec.Column(1).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			rows++
			if old := seq.Value(i) < 100; old != hum.IsNull(i) || (!old && hum.Value(i) != 41.5) {
				t.Errorf("seq %v: humidity null=%v", seq.Value(i), hum.IsNull(i))
			}
		}
	}
	if rows != 150 {
		t.Errorf("%d rows", rows)
	}
}

// TestTwoTasksOnTwoWorkersMakeOneSnapshotPerInterval runs two tasks on two workers into one
// table: task 0 commits the data files of both in one snapshot per commit interval, with both
// partitions' offsets; every record ends in the table exactly once, and pyiceberg (when the
// test environment has it) reads the same rows.
func TestTwoTasksOnTwoWorkersMakeOneSnapshotPerInterval(t *testing.T) {
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	w1 := c.StartWorker(nil)
	c.StartWorker(nil)
	topic := sluicetest.UniqueName("ice-two")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ice-two")
	const interval = 2 * time.Second
	sluicetest.CreateConnector(t, w1.URL, name, sinkConfig(l, topic, "tasks.max", "2", "commit.interval", interval.String()))
	st := sluicetest.WaitState(t, w1.URL, name, api.StateRunning, 2)
	if st.Tasks[0].WorkerID == st.Tasks[1].WorkerID {
		t.Logf("both tasks on %s", st.Tasks[0].WorkerID)
	}
	const bursts, per = 5, 400
	start := time.Now()
	for b := range bursts {
		sluicetest.Produce(t, c.Bootstrap, topic, frames(b*per, per, nil)...)
		time.Sleep(interval)
	}
	tname := tableOf(topic)
	sluicetest.Eventually(t, 60*time.Second, "every record committed", func() (bool, string) {
		n := committed(l.load(t, tname))
		return n == bursts*per, fmt.Sprint(n)
	})
	tb := l.load(t, tname)
	counts := seqCounts(t, tb)
	for s := range bursts * per {
		if counts[int64(s)] != 1 {
			t.Errorf("seq %d is in the table %d times", s, counts[int64(s)])
		}
	}
	// Snapshots: at least an interval apart (one per interval), and the data of both tasks
	// together in one snapshot.
	snaps := tb.Metadata().Snapshots()
	perInterval := map[int64]int{}
	both := 0
	var prev map[string]int64
	for i, s := range snaps {
		perInterval[(s.TimestampMs-start.UnixMilli())/interval.Milliseconds()]++
		var offs map[string]int64
		if err := json.Unmarshal([]byte(s.Summary.Properties["sluice.kafka.offsets."+name]), &offs); err != nil {
			t.Fatalf("snapshot %d: offsets: %v", s.SnapshotID, err)
		}
		moved := 0
		for k, v := range offs {
			if v > prev[k] {
				moved++
			}
		}
		if moved == 2 {
			both++
		}
		prev = offs
		if i > 0 {
			if gap := time.Duration(s.TimestampMs-snaps[i-1].TimestampMs) * time.Millisecond; gap < interval*8/10 {
				t.Errorf("snapshots %d and %d are %v apart, less than the %v commit interval", i-1, i, gap, interval)
			}
		}
	}
	if len(prev) != 2 {
		t.Errorf("offsets in the last snapshot = %v, want both partitions", prev)
	}
	if both == 0 {
		t.Errorf("no snapshot holds records of both partitions")
	}
	t.Logf("%d snapshots over %v (%d with both tasks' records); per %v interval: %v", len(snaps), time.Since(start).Round(time.Second), both, interval, perInterval)
	if python := os.Getenv(envPyIceberg); python != "" {
		got := pyIcebergRead(t, python, l, tname)
		if got.Count != bursts*per {
			t.Errorf("pyiceberg reads %d rows, want %d", got.Count, bursts*per)
		}
	}
}

// TestKillingWorkersOfTwoTasksLeavesEveryRecordOnce runs two tasks on two worker processes
// and kills each process in turn mid-stream (with data files written, published or held by
// the coordinator), restarting it; the table ends with every record exactly once.
func TestKillingWorkersOfTwoTasksLeavesEveryRecordOnce(t *testing.T) {
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	settings := map[string]string{"offset.flush.interval.ms": "600000"}
	p1, p2 := c.StartProcess(settings), c.StartProcess(settings)
	topic := sluicetest.UniqueName("ice-kill2")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ice-kill2")
	sluicetest.CreateConnector(t, p1.URL, name, sinkConfig(l, topic, "tasks.max", "2"))
	sluicetest.WaitState(t, p1.URL, name, api.StateRunning, 2)
	tbl := tableOf(topic)
	const step = 6000
	total := 0
	for round, kill := range []**sluicetest.Process{&p1, &p2} {
		sluicetest.Produce(t, c.Bootstrap, topic, frames(total, step, nil)...)
		total += step
		// Kill once something of this round is committed, mid-stream of the rest.
		before := committed(l.load(t, tbl))
		sluicetest.Eventually(t, 2*time.Minute, "a commit in this round", func() (bool, string) {
			n := committed(l.load(t, tbl))
			return n > before, fmt.Sprint(n)
		})
		sluicetest.Produce(t, c.Bootstrap, topic, frames(total, step, nil)...)
		total += step
		(*kill).Kill()
		t.Logf("round %d: killed a worker with %d rows committed", round, committed(l.load(t, tbl)))
		*kill = c.StartProcess(settings)
	}
	sluicetest.Produce(t, c.Bootstrap, topic, frames(total, step, nil)...)
	total += step
	tb := l.awaitEachOnce(t, tbl, total)
	for k := range tb.Properties() {
		if strings.HasPrefix(k, "sluice.pending.") {
			t.Logf("publication still in the table: %s", k)
		}
	}
}
