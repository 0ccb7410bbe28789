package file

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// startTask starts a file task with the given settings; Stop runs at the end of the test.
func startTask(t *testing.T, tc *connecttest.SinkContext, settings connect.Config) *Task {
	t.Helper()
	task := &Task{}
	if err := task.Start(t.Context(), settings, tc); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return task
}

func put(t *testing.T, task *Task, batch ...connect.Record) {
	t.Helper()
	if err := task.Put(t.Context(), batch); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

// commit runs PreCommit as the runtime does and checks that it lets everything be committed.
func commit(t *testing.T, task *Task) {
	t.Helper()
	offsets := connect.Offsets{{Topic: "iot.raw", Partition: 0}: 42}
	got, err := task.PreCommit(t.Context(), offsets)
	if err != nil {
		t.Fatalf("PreCommit: %v", err)
	}
	if len(got) != 1 || got[connect.TopicPartition{Topic: "iot.raw"}] != 42 {
		t.Fatalf("PreCommit returned %v, want the offsets it was given", got)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func record(offset int64, key, value any) connect.Record {
	return connect.Record{Topic: "iot.raw", KafkaPartition: 3, KafkaOffset: offset, Key: key, Value: value,
		Time: time.UnixMilli(1700000000123)}
}

func TestJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	task := startTask(t, connecttest.NewSinkContext(t, 0), connect.Config{"file": path})
	noTime := record(4, nil, nil)
	noTime.Time = time.Time{}
	put(t, task,
		record(1, "dev-1", map[string]any{"temp": 21.5, "ok": true, "tags": []any{"a<b"}}),
		record(2, []byte("dev-2"), []byte{0xff, 0x00}),
		record(3, int64(7), "text"),
		noTime,
	)
	commit(t, task)
	want := []string{
		`{"topic":"iot.raw","partition":3,"offset":1,"key":"dev-1","value":{"ok":true,"tags":["a<b"],"temp":21.5},"timestamp":1700000000123}`,
		`{"topic":"iot.raw","partition":3,"offset":2,"key":"dev-2","value":"/wA=","timestamp":1700000000123}`,
		`{"topic":"iot.raw","partition":3,"offset":3,"key":7,"value":"text","timestamp":1700000000123}`,
		`{"topic":"iot.raw","partition":3,"offset":4,"key":null,"value":null,"timestamp":null}`,
	}
	if got := readLines(t, path); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("file holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestValueFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "values.jsonl")
	task := startTask(t, connecttest.NewSinkContext(t, 0), connect.Config{"file": path, "format": "value"})
	put(t, task, record(1, "k", map[string]any{"seq": int64(1)}), record(2, "k", []byte(`{"raw":true}`)), record(3, "k", nil))
	commit(t, task)
	want := []string{`{"seq":1}`, `"{\"raw\":true}"`, `null`}
	if got := readLines(t, path); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("file holds %q, want %q", got, want)
	}
}

func TestLinesAreWrittenWhenBufferedEnoughOrCommitted(t *testing.T) {
	dir := t.TempDir()
	buffered := filepath.Join(dir, "buffered.jsonl")
	task := startTask(t, connecttest.NewSinkContext(t, 0), connect.Config{"file": buffered, "buffer.bytes": "1000", "fsync": "false"})
	put(t, task, record(1, "k", "v"))
	if n := len(readLines(t, buffered)); n != 0 {
		t.Fatalf("%d lines on file before buffer.bytes collected or a commit", n)
	}
	commit(t, task)
	if n := len(readLines(t, buffered)); n != 1 {
		t.Fatalf("%d lines on file after a commit, want 1", n)
	}
	for i := range 20 { // about 100 bytes a line
		put(t, task, record(int64(i), "k", "v"))
	}
	if n := len(readLines(t, buffered)); n < 10 {
		t.Errorf("%d lines on file after 20 Puts with buffer.bytes 1000, want them written", n)
	}

	unbuffered := filepath.Join(dir, "unbuffered.jsonl")
	task = startTask(t, connecttest.NewSinkContext(t, 0), connect.Config{"file": unbuffered, "buffer.bytes": "0"})
	put(t, task, record(1, "k", "v"))
	if n := len(readLines(t, unbuffered)); n != 1 {
		t.Errorf("buffer.bytes 0: %d lines on file after a Put, want 1", n)
	}
}

func TestTaskTokenGivesEachTaskItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "out-{task}.jsonl")
	for id := range 3 {
		task := startTask(t, connecttest.NewSinkContext(t, id), connect.Config{"file": pattern})
		put(t, task, record(int64(id), "k", "v"))
		commit(t, task)
	}
	for id := range 3 {
		if n := len(readLines(t, filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", id)))); n != 1 {
			t.Errorf("task %d's file has %d lines, want 1", id, n)
		}
	}
}

func TestTasksSharingAFileWriteWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.jsonl")
	const tasks, batches, perBatch = 4, 25, 10
	payload := strings.Repeat("x", 700) // long lines, a few to each write
	var wg sync.WaitGroup
	for id := range tasks {
		task := startTask(t, connecttest.NewSinkContext(t, id), connect.Config{"file": path, "buffer.bytes": "2048", "fsync": "false"})
		wg.Go(func() {
			for b := range batches {
				batch := make([]connect.Record, perBatch)
				for i := range batch {
					batch[i] = record(int64(b*perBatch+i), fmt.Sprint(id), payload)
				}
				if err := task.Put(t.Context(), batch); err != nil {
					t.Error(err)
					return
				}
			}
			if _, err := task.PreCommit(t.Context(), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(openFiles.byPath); n != 1 {
		t.Errorf("%d files open for one path, want 1 shared", n)
	}
	perTask := map[string]int{}
	for _, l := range readLines(t, path) {
		var line jsonLine
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Value != payload {
			t.Fatalf("a line is torn or interleaved (%v): %.80s...", err, l)
		}
		perTask[line.Key.(string)]++
	}
	for id := range tasks {
		if n := perTask[fmt.Sprint(id)]; n != batches*perBatch {
			t.Errorf("task %d wrote %d lines, want %d", id, n, batches*perBatch)
		}
	}
}

func TestRecordsJSONCannotHoldGoToTheErrorPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	tc := connecttest.NewSinkContext(t, 0)
	task := startTask(t, tc, connect.Config{"file": path})
	put(t, task, record(1, "k", "fine"), record(2, "k", math.NaN()), record(3, "k", "fine"))
	commit(t, task)
	if n := len(readLines(t, path)); n != 2 {
		t.Errorf("%d lines on file, want the 2 good records", n)
	}
	var dataErr *connect.DataError
	if len(tc.Reported) != 1 || tc.Reported[0].KafkaOffset != 2 || !errors.As(tc.Reasons[0], &dataErr) || dataErr.Field != "value" {
		t.Fatalf("reported %v for %v, want offset 2 with a DataError on the value", tc.Reasons, tc.Reported)
	}

	tc.ReportErr = errors.New("tolerance exceeded")
	if err := task.Put(t.Context(), []connect.Record{record(4, math.Inf(1), "v")}); !errors.Is(err, tc.ReportErr) {
		t.Errorf("Put = %v, want the error policy's answer", err)
	}
	if !errors.As(tc.Reasons[1], &dataErr) || dataErr.Field != "key" {
		t.Errorf("reported %v, want a DataError on the key", tc.Reasons[1])
	}
}

func TestStartEndsALineACrashTore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte("{\"complete\":1}\n{\"torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := startTask(t, connecttest.NewSinkContext(t, 0), connect.Config{"file": path, "format": "value"})
	put(t, task, record(1, "k", "next"))
	commit(t, task)
	want := []string{`{"complete":1}`, `{"torn`, `"next"`}
	if got := readLines(t, path); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("file holds %q, want %q", got, want)
	}
}

func TestAfterAWriteErrorNothingIsCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	task := &Task{}
	if err := task.Start(t.Context(), connect.Config{"file": path}, connecttest.NewSinkContext(t, 0)); err != nil {
		t.Fatal(err)
	}
	task.out.f.Close() // the disk went away
	if err := task.Put(t.Context(), []connect.Record{record(1, "k", "v")}); err != nil {
		t.Fatalf("Put failed before writing: %v", err)
	}
	if got, err := task.PreCommit(t.Context(), connect.Offsets{{Topic: "iot.raw"}: 2}); err == nil || got != nil {
		t.Fatalf("PreCommit = %v, %v; want an error and nothing to commit", got, err)
	}
	if got, err := task.PreCommit(t.Context(), connect.Offsets{{Topic: "iot.raw"}: 2}); err == nil || got != nil {
		t.Fatalf("second PreCommit = %v, %v; want the error again", got, err)
	}
	if err := task.Stop(); err == nil {
		t.Error("Stop hid the write error")
	}
	if len(openFiles.byPath) != 0 {
		t.Errorf("files still open: %v", openFiles.byPath)
	}
}

func TestStopWritesPendingLinesAndClosesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	task := &Task{}
	if err := task.Start(t.Context(), connect.Config{"file": path}, connecttest.NewSinkContext(t, 0)); err != nil {
		t.Fatal(err)
	}
	put(t, task, record(1, "k", "v"))
	if err := task.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Errorf("%d lines on file after Stop, want 1", n)
	}
	if len(openFiles.byPath) != 0 {
		t.Errorf("files still open after Stop: %v", openFiles.byPath)
	}
}

func TestStartFailsWithoutTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "out.jsonl")
	err := (&Task{}).Start(t.Context(), connect.Config{"file": path}, connecttest.NewSinkContext(t, 0))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start = %v, want an error naming %s", err, path)
	}
}
