package icebergsink

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// noteRecorder is the test sink context, counting the notes a task puts in its status.
type noteRecorder struct {
	*connecttest.SinkContext
	mu    sync.Mutex
	notes []string
}

func (n *noteRecorder) SetStatusNote(note string) {
	n.mu.Lock()
	n.notes = append(n.notes, note)
	n.mu.Unlock()
	n.SinkContext.SetStatusNote(note)
}

func (n *noteRecorder) Notes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.notes...)
}

func startRecordedTask(t *testing.T, cfg connect.Config, id int) (*Task, *noteRecorder) {
	t.Helper()
	task := &Task{}
	nr := &noteRecorder{SinkContext: connecttest.NewSinkContext(t, id)}
	if err := task.Start(t.Context(), cfg, nr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop() })
	return task, nr
}

// pgCatalogConfig is a configuration on a SQL catalog in a database of its own on the test
// PostgreSQL (dropped when the test ends) and a warehouse in a temporary directory.
func pgCatalogConfig(t *testing.T, extra connect.Config) connect.Config {
	t.Helper()
	base := connecttest.Env(t, connecttest.EnvPostgres)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := fmt.Sprintf("ice_bounds_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	cfg := localConfig(t, extra)
	cfg["catalog.uri"] = u.String()
	cfg["warehouse"] = "file://" + filepath.Join(t.TempDir(), "warehouse")
	return cfg
}

// TestPublicationsStopAtTheBoundWhileTask0IsAway: task 1 writes while task 0 is absent. It
// publishes up to commit.max.pending.publications batches, then holds its buffer back and says
// so in its status, then, its buffer full, fails Put as retriable; nothing is published beyond
// the bound. Once task 0 is there and commits, task 1 moves again, its note is cleared, and every
// record is in the table exactly once. On a SQLite and a PostgreSQL SQL catalog.
func TestPublicationsStopAtTheBoundWhileTask0IsAway(t *testing.T) {
	extra := connect.Config{"commit.max.pending.publications": "3", "commit.buffer.records": "10"}
	for _, tt := range []struct {
		name string
		cfg  func(t *testing.T) connect.Config
	}{
		{"sqlite", func(t *testing.T) connect.Config { return localConfig(t, extra) }},
		{"postgres", func(t *testing.T) connect.Config { return pgCatalogConfig(t, extra) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t)
			other, notes := startRecordedTask(t, cfg, 1)
			now := time.Now()
			put := func(from, to int64) error { return other.Put(t.Context(), framesOn(1, from, to, now)) }
			// Three batches published, none committed: the bound.
			for b := int64(0); b < 3; b++ {
				if err := put(b*4, b*4+4); err != nil {
					t.Fatal(err)
				}
				tick()
				if _, err := other.PreCommit(t.Context(), connect.Offsets{tp1: b*4 + 4}); err != nil {
					t.Fatal(err)
				}
			}
			if n := pendingPropsOf(t, cfg); n != 3 || len(notes.Notes()) != 0 {
				t.Fatalf("%d publications, notes %q; want 3 and none", n, notes.Notes())
			}
			// The fourth is held back and the status says why.
			if err := put(12, 16); err != nil {
				t.Fatal(err)
			}
			tick()
			safe, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 16})
			if err != nil {
				t.Fatal(err)
			}
			if safe[tp1] != 0 {
				t.Errorf("PreCommit = %v, want %s at 0: nothing is committed", safe, tp1)
			}
			const want = "waiting for task 0 to commit 3 published batches to table sluice.iot_raw"
			if got := notes.Notes(); len(got) != 1 || got[0] != want {
				t.Fatalf("notes %q, want just %q", got, want)
			}
			// It buffers on up to commit.buffer.records, then pushes back.
			for _, b := range [][2]int64{{16, 20}, {20, 24}} {
				tick()
				if err := put(b[0], b[1]); err != nil {
					t.Fatalf("Put %v with room in the buffer: %v", b, err)
				}
			}
			for range 2 {
				tick()
				err := put(24, 28)
				if !connect.IsRetriable(err) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Put with a full buffer = %v, want a retriable error saying %q", err, want)
				}
				if _, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 24}); err != nil {
					t.Fatal(err)
				}
			}
			if n := pendingPropsOf(t, cfg); n != 3 {
				t.Fatalf("%d publications, want them to stop at 3", n)
			}
			if got := notes.Notes(); len(got) != 1 {
				t.Errorf("notes %q, want one (SetStatusNote only when the note changes)", got)
			}
			// Task 0 is back and commits the three; task 1 moves again.
			coord, _ := startTaskID(t, cfg, 0)
			tick()
			if _, err := coord.PreCommit(t.Context(), connect.Offsets{}); err != nil {
				t.Fatal(err)
			}
			if n := committedRows(t, cfg); n != 12 {
				t.Fatalf("task 0 committed %d rows, want the 12 published", n)
			}
			tick()
			if err := put(24, 28); err != nil { // the runtime hands the refused records again
				t.Fatalf("Put after task 0's commit: %v", err)
			}
			if got := notes.Notes(); len(got) != 2 || got[1] != "" {
				t.Errorf("notes %q, want the note cleared", got)
			}
			tick()
			if _, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 28}); err != nil {
				t.Fatal(err)
			}
			tick()
			if _, err := coord.PreCommit(t.Context(), connect.Offsets{}); err != nil {
				t.Fatal(err)
			}
			tbl := openTable(t, cfg, "iot_raw")
			counts := map[any]int{}
			for _, r := range scanRows(t, tbl, "seq") {
				counts[r["seq"]]++
			}
			for s := int64(1000); s < 1028; s++ {
				if counts[s] != 1 {
					t.Errorf("seq %d is in the table %d times", s, counts[s])
				}
			}
			if len(counts) != 28 {
				t.Errorf("%d distinct rows, want 28", len(counts))
			}
			var offs map[string]int64
			_ = json.Unmarshal([]byte(tbl.CurrentSnapshot().Summary.Properties[offsetsKey("test")]), &offs)
			if offs["iot.raw/1"] != 28 || pendingPropsOf(t, cfg) != 0 {
				t.Errorf("offsets %v, %d publications left; want iot.raw/1 at 28 and none", offs, pendingPropsOf(t, cfg))
			}
			tick()
			if safe, _ := other.PreCommit(t.Context(), connect.Offsets{tp1: 28}); safe[tp1] != 28 {
				t.Errorf("PreCommit = %v, want %s at 28", safe, tp1)
			}
			if got := notes.Notes(); len(got) != 2 {
				t.Errorf("notes %q", got)
			}
		})
	}
}

// TestARebalanceWhileHeldBackReadsTheBufferAgain: a task that holds its buffer back when its
// partitions are revoked publishes nothing more: it drops the buffer, so the records are read
// again (by it or the partitions' next task) from the last committed Kafka offset.
func TestARebalanceWhileHeldBackReadsTheBufferAgain(t *testing.T) {
	cfg := localConfig(t, connect.Config{"commit.max.pending.publications": "1"})
	other, notes := startRecordedTask(t, cfg, 1)
	now := time.Now()
	if err := other.Put(t.Context(), framesOn(1, 0, 4, now)); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 4}); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(t.Context(), framesOn(1, 4, 8, now)); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 8}); err != nil {
		t.Fatal(err)
	}
	if notes.Note() == "" {
		t.Fatal("not held back")
	}
	if err := other.Close(t.Context(), []connect.TopicPartition{tp1}); err != nil {
		t.Fatal(err)
	}
	if n := pendingPropsOf(t, cfg); n != 1 {
		t.Errorf("%d publications after the rebalance, want 1", n)
	}
	if notes.SinkContext.Seeks[tp1] != 4 {
		t.Errorf("seeks %v, want %s at 4, after the publication", notes.SinkContext.Seeks, tp1)
	}
	if other.buffered.Load() != 0 || notes.Note() != "" {
		t.Errorf("%d records buffered, note %q; want none", other.buffered.Load(), notes.Note())
	}
}

// TestTableCapRejectsARecordForOneTableTooMany: with table.route=field, a task writes at most
// table.max.open tables at a time; a record naming one more is a bad record naming the field,
// the value and the limit, and its table is not created. Once the tables are committed they are
// closed and others can be written.
func TestTableCapRejectsARecordForOneTableTooMany(t *testing.T) {
	cfg := localConfig(t, connect.Config{"table.route": "field", "table.route.field": "kind", "table.max.open": "2", "commit.interval": "1h"})
	task, sc := startTask(t, cfg)
	rec := func(off int64, kind string) connect.Record {
		return connect.Record{Topic: "iot.raw", KafkaOffset: off, Value: map[string]any{"kind": kind, "v": off}}
	}
	if err := task.Put(t.Context(), []connect.Record{rec(0, "temp"), rec(1, "hum"), rec(2, "temp"), rec(3, "co2"), rec(4, "hum")}); err != nil {
		t.Fatal(err)
	}
	if len(sc.Reasons) != 1 || sc.Reported[0].KafkaOffset != 3 {
		t.Fatalf("reported %v %v, want the co2 record", sc.Reported, sc.Reasons)
	}
	var de *connect.DataError
	if reason := sc.Reasons[0]; !errors.As(reason, &de) || de.Field != "kind" || de.Value != "co2" || !strings.Contains(reason.Error(), "table.max.open=2") {
		t.Errorf("reason %q, want it to name the field kind, the value co2 and table.max.open=2", reason)
	}
	if tbl := loadIfExists(t, cfg, "co2"); tbl {
		t.Error("the table of the rejected record was created")
	}
	// Committed, the two tables are closed: the next interval may write two others.
	task.lastCommit = time.Time{}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 5}); err != nil {
		t.Fatal(err)
	}
	if err := task.Put(t.Context(), []connect.Record{rec(5, "co2"), rec(6, "pm25"), rec(7, "temp")}); err != nil {
		t.Fatal(err)
	}
	if len(sc.Reasons) != 2 || sc.Reported[1].KafkaOffset != 7 {
		t.Fatalf("reported %v %v, want the second temp record too", sc.Reported, sc.Reasons)
	}
	if len(task.tables) > 2 {
		t.Errorf("%d tables kept, want at most 2", len(task.tables))
	}
	task.lastCommit = time.Time{}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{tp0: 8}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"temp": 2, "hum": 2, "co2": 1, "pm25": 1} {
		if n := len(scanRows(t, openTable(t, cfg, name), "v")); n != want {
			t.Errorf("%s has %d rows, want %d", name, n, want)
		}
	}
}

// TestBufferAllocatesLittlePerRecord: buffering a record of a known table derives no columns,
// boxes no value again, and copies no table name.
func TestBufferAllocatesLittlePerRecord(t *testing.T) {
	for _, route := range []connect.Config{{"table.route": "topic"}, {"table.route": "field", "table.route.field": "kind"}} {
		t.Run(route["table.route"], func(t *testing.T) {
			route["commit.interval"] = "1h"
			task, _ := startTask(t, localConfig(t, route))
			r := connect.Record{Topic: "iot.raw", Value: map[string]any{"kind": "frames", "device_id": "dev-1", "temperature": 21.5, "seq": int64(7)}}
			if err := task.buffer(t.Context(), r, tp0); err != nil {
				t.Fatal(err)
			}
			off := int64(1)
			allocs := testing.AllocsPerRun(1000, func() {
				r.KafkaOffset = off
				off++
				if err := task.buffer(t.Context(), r, tp0); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%.2f allocations per record", allocs)
			// It was 6 (topic) and 12 (field): the record's columns derived, its values boxed
			// again, a slice of them, the routed name copied.
			if allocs > 1 {
				t.Errorf("%.1f allocations per record, want at most 1", allocs)
			}
		})
	}
}

func pendingPropsOf(t *testing.T, cfg connect.Config) int {
	n := 0
	for k := range openTable(t, cfg, "iot_raw").Properties() {
		if strings.HasPrefix(k, pendingKey("test")) {
			n++
		}
	}
	return n
}

func committedRows(t *testing.T, cfg connect.Config) int {
	return len(scanRows(t, openTable(t, cfg, "iot_raw"), "seq"))
}

func loadIfExists(t *testing.T, cfg connect.Config, name string) bool {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := openCatalog(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeCatalog(cat) }()
	_, err = cat.LoadTable(t.Context(), []string{c.Namespace, name})
	return err == nil
}
