package icebergsink

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

var tp1 = connect.TopicPartition{Topic: "iot.raw", Partition: 1}

func startTaskID(t *testing.T, cfg connect.Config, id int) (*Task, *connecttest.SinkContext) {
	t.Helper()
	task := &Task{}
	sc := connecttest.NewSinkContext(t, id)
	if err := task.Start(t.Context(), cfg, sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop() })
	return task, sc
}

func framesOn(partition int32, from, to int64, when time.Time) []connect.Record {
	var out []connect.Record
	for off := from; off < to; off++ {
		r := frame(off, fmt.Sprintf("dev%d", off%3), float64(off), when.Add(time.Duration(off)*10*time.Hour))
		r.KafkaPartition = partition
		r.Value.(map[string]any)["seq"] = int64(partition)*1000 + off
		out = append(out, r)
	}
	return out
}

func pendingProps(t *testing.T, cfg connect.Config) int {
	n := 0
	for k := range openTable(t, cfg, "iot_raw").Properties() {
		if strings.HasPrefix(k, pendingKey("test")) {
			n++
		}
	}
	return n
}

func tick() { time.Sleep(2 * time.Millisecond) } // the tests' commit interval, 1 ms, is up

// TestTasksHandTheirDataFilesToTheCoordinator: task 1 writes its data files and publishes
// them; task 0 commits them with its own in one snapshot, with both partitions' offsets, and
// removes the publication; only then does task 1 let its offsets be committed to Kafka.
func TestTasksHandTheirDataFilesToTheCoordinator(t *testing.T) {
	cfg := localConfig(t, connect.Config{"table.partition.by": "day(event_time),place_id", "schema.timestamp.fields": "event_time"})
	coord, _ := startTaskID(t, cfg, 0)
	other, _ := startTaskID(t, cfg, 1)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := other.Put(t.Context(), framesOn(1, 0, 4, day)); err != nil {
		t.Fatal(err)
	}
	if err := coord.Put(t.Context(), framesOn(0, 0, 3, day)); err != nil {
		t.Fatal(err)
	}
	tick()
	safe, err := other.PreCommit(t.Context(), connect.Offsets{tp1: 4})
	if err != nil {
		t.Fatal(err)
	}
	if safe[tp1] != 0 {
		t.Errorf("published, not committed: PreCommit = %v, want %s at 0", safe, tp1)
	}
	tbl := openTable(t, cfg, "iot_raw")
	if tbl.CurrentSnapshot() != nil || pendingProps(t, cfg) != 1 {
		t.Fatalf("after publishing: snapshot %v, %d publications; want none and 1", tbl.CurrentSnapshot(), pendingProps(t, cfg))
	}
	if _, err := coord.PreCommit(t.Context(), connect.Offsets{tp0: 3}); err != nil {
		t.Fatal(err)
	}
	tbl = openTable(t, cfg, "iot_raw")
	if n := numSnapshots(tbl); n != 1 {
		t.Errorf("%d snapshots, want 1", n)
	}
	var offs map[string]int64
	_ = json.Unmarshal([]byte(tbl.CurrentSnapshot().Summary.Properties[offsetsKey("test")]), &offs)
	if offs["iot.raw/0"] != 3 || offs["iot.raw/1"] != 4 {
		t.Errorf("snapshot offsets = %v", offs)
	}
	if n := pendingProps(t, cfg); n != 0 {
		t.Errorf("%d publications left", n)
	}
	rows := scanRows(t, tbl, "seq")
	var seqs []string
	for _, r := range rows {
		seqs = append(seqs, fmt.Sprint(r["seq"]))
		if r["event_time"] == nil || r["place_id"] == nil {
			t.Errorf("row %v", r)
		}
	}
	if got := strings.Join(seqs, " "); got != "0 1 1000 1001 1002 1003 2" {
		t.Errorf("seq = %s", got)
	}
	// The published files keep their partitions: day x place.
	tasks, err := tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]bool{}
	for _, ft := range tasks {
		parts[fmt.Sprint(ft.File.Partition())] = true
	}
	if len(parts) != 4 || len(tasks) != 7 {
		t.Errorf("%d data files in partitions %v, want 7 files (3 + 4) in 4 partitions", len(tasks), parts)
	}
	tick()
	if safe, _ := other.PreCommit(t.Context(), connect.Offsets{tp1: 4}); safe[tp1] != 4 {
		t.Errorf("committed: PreCommit = %v, want %s at 4", safe, tp1)
	}
}

// TestAZombieTaskCannotDuplicateRecords: a task that lost its partition without knowing it
// keeps publishing; the task that has the partition now resumes after the publications in the
// table, finds its next range overlapping the zombie's, drops it and reads again from the
// chain's end. Every record is committed once.
func TestAZombieTaskCannotDuplicateRecords(t *testing.T) {
	cfg := localConfig(t, nil)
	coord, _ := startTaskID(t, cfg, 0)
	zombie, _ := startTaskID(t, cfg, 1)
	now := time.Now()
	if err := zombie.Put(t.Context(), framesOn(1, 0, 2, now)); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, err := zombie.PreCommit(t.Context(), connect.Offsets{tp1: 2}); err != nil {
		t.Fatal(err)
	}
	// The partition moves to a new task 1, which resumes after the zombie's publication.
	owner, so := startTaskID(t, cfg, 1)
	if err := owner.Open(t.Context(), []connect.TopicPartition{tp1}); err != nil {
		t.Fatal(err)
	}
	if so.Seeks[tp1] != 2 {
		t.Fatalf("the new owner resumed at %v, want %s at 2", so.Seeks, tp1)
	}
	// The zombie publishes one more; the owner reads the same records and more.
	if err := zombie.Put(t.Context(), framesOn(1, 2, 3, now)); err != nil {
		t.Fatal(err)
	}
	if err := owner.Put(t.Context(), framesOn(1, 2, 4, now)); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, err := zombie.PreCommit(t.Context(), connect.Offsets{tp1: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.PreCommit(t.Context(), connect.Offsets{tp1: 4}); err == nil {
		t.Fatal("the owner published records the zombie had published")
	}
	if so.Seeks[tp1] != 3 {
		t.Errorf("the owner seeked to %v, want %s at 3", so.Seeks, tp1)
	}
	if err := owner.Put(t.Context(), framesOn(1, 3, 4, now)); err != nil {
		t.Fatal(err)
	}
	tick()
	if _, err := owner.PreCommit(t.Context(), connect.Offsets{tp1: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.PreCommit(t.Context(), connect.Offsets{}); err != nil {
		t.Fatal(err)
	}
	tbl := openTable(t, cfg, "iot_raw")
	var seqs []string
	for _, r := range scanRows(t, tbl, "seq") {
		seqs = append(seqs, fmt.Sprint(r["seq"]))
	}
	if got := strings.Join(seqs, " "); got != "1000 1001 1002 1003" {
		t.Errorf("seq = %s, want 1000..1003 once each", got)
	}
	if n := numSnapshots(tbl); n != 1 {
		t.Errorf("%d snapshots, want 1", n)
	}
}

func TestChainTakesOnlyPublicationsThatContinueTheOffsets(t *testing.T) {
	pubs := map[string]*publication{
		"a": {Ranges: map[string][2]int64{"t/0": {10, 20}, "t/1": {5, 8}}},
		"b": {Ranges: map[string][2]int64{"t/0": {20, 25}}},
		"c": {Ranges: map[string][2]int64{"t/0": {10, 15}}}, // raced a for the same records
		"d": {Ranges: map[string][2]int64{"t/2": {40, 50}}}, // a partition new to the table
		"e": {Ranges: map[string][2]int64{"t/1": {9, 12}}},  // a gap: waits
	}
	next, cursor, stale := chain(map[string]int64{"t/0": 10, "t/1": 5}, pubs)
	if fmt.Sprint(next) != "[a b d]" || fmt.Sprint(stale) != "[c]" {
		t.Errorf("next %v, stale %v", next, stale)
	}
	if cursor["t/0"] != 25 || cursor["t/1"] != 8 || cursor["t/2"] != 50 {
		t.Errorf("cursor %v", cursor)
	}
}

// TestARangeStartsOnlyWhereTheTaskHasReadEverything: a task may bring the table's offset of a
// partition to its buffer's end only when it read every record from the table's offset on.
func TestARangeStartsOnlyWhereTheTaskHasReadEverything(t *testing.T) {
	ts := &tableState{start: map[connect.TopicPartition]int64{tp0: 12}, end: map[connect.TopicPartition]int64{tp0: 20}}
	from := func(off int64) func(connect.TopicPartition) int64 {
		return func(connect.TopicPartition) int64 { return off }
	}
	for _, c := range []struct {
		cursor   map[string]int64
		readFrom int64
		want     string
	}{
		{map[string]int64{"iot.raw/0": 10}, 10, "map[iot.raw/0:[10 20]] false <nil>"}, // 10, 11 skipped
		{map[string]int64{"iot.raw/0": 10}, 12, "overlap"},                            // 10, 11 unseen
		{map[string]int64{"iot.raw/0": 15}, 10, "overlap"},                            // inside the buffer
		{map[string]int64{"iot.raw/0": 20}, 10, "map[] true <nil>"},                   // all in already
		{map[string]int64{}, 11, "map[iot.raw/0:[11 20]] false <nil>"},                // new partition
	} {
		r, done, err := ts.ranges(c.cursor, from(c.readFrom))
		got := fmt.Sprint(r, " ", done, " ", err)
		if errors.Is(err, errOverlap) {
			got = "overlap"
		}
		if got != c.want {
			t.Errorf("cursor %v, read from %d: %s, want %s", c.cursor, c.readFrom, got, c.want)
		}
	}
}
