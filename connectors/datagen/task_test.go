package datagen

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// seqOf returns the record's source partition number and sequence number (json format),
// checking that the rest of the record matches them.
func seqOf(t *testing.T, r connect.Record, task int64) (partition, seq int64) {
	t.Helper()
	partition, _ = r.SourcePartition["partition"].(int64)
	if v, ok := r.Value.(map[string]any); ok {
		seq, _ = v["seq"].(int64)
	}
	if r.SourceOffset != nil && r.SourceOffset["seq"] != seq {
		t.Fatalf("record %+v: offset %v, want seq %d", r, r.SourceOffset, seq)
	}
	if r.SourcePartition["task"] != task {
		t.Fatalf("record %+v: source partition names task %v, want %d", r, r.SourcePartition["task"], task)
	}
	if want := strconv.FormatInt(task, 10) + "-" + strconv.FormatInt(partition, 10); r.Key != want {
		t.Fatalf("record key %v, want %q", r.Key, want)
	}
	v, ok := r.Value.(map[string]any)
	if !ok || v["task"] != task || v["partition"] != partition || v["seq"] != seq {
		t.Fatalf("record value %v, want task %d partition %d seq %d", r.Value, task, partition, seq)
	}
	if r.Topic != "test" || r.Time.IsZero() {
		t.Fatalf("record topic %q time %v", r.Topic, r.Time)
	}
	return partition, seq
}

func TestRecordsRunWithoutGapsPerPartition(t *testing.T) {
	tc := newFakeSourceContext(t, 2)
	task := startTask(t, tc, connect.Config{"partitions": "3", "batch.size": "7"}, nil)

	next := map[int64]int64{}
	for range 3 {
		recs := poll(t, task)
		if len(recs) != 7 {
			t.Fatalf("Poll returned %d records, want batch.size 7", len(recs))
		}
		last := map[int64]int{} // per partition, its last record in the batch
		for i, r := range recs {
			p, seq := seqOf(t, r, 2)
			if seq != next[p] {
				t.Fatalf("partition %d: seq %d, want %d", p, seq, next[p])
			}
			next[p]++
			last[p] = i
		}
		// Only the last record of each partition in the batch carries its offset.
		for i, r := range recs {
			p, _ := seqOf(t, r, 2)
			if has := r.SourceOffset != nil; has != (last[p] == i) {
				t.Fatalf("record %d (partition %d) has offset %v; want one only on the partition's last record of the batch (%d)", i, p, r.SourceOffset, last[p])
			}
		}
	}
	if next[0] != 7 || next[1] != 7 || next[2] != 7 {
		t.Errorf("records per partition %v, want 7 each (round-robin)", next)
	}
}

func TestRestartResumesAfterStoredOffsets(t *testing.T) {
	tc := newFakeSourceContext(t, 0)
	settings := connect.Config{"partitions": "2", "batch.size": "3"}
	first := startTask(t, tc, settings, nil)
	// Batches: p0 0, p1 0, p0 1 | p1 1, p0 2, p1 2. Kafka acknowledged the first batch and
	// the first two records of the second before the worker died: partition 0 up to seq 2,
	// partition 1 up to seq 1, whose record carries no offset, so its stored offset stays 0.
	recs := append(poll(t, first), poll(t, first)...)
	tc.store(recs[:5])

	second := startTask(t, tc, settings, nil)
	got := map[int64][]int64{}
	for i, r := range append(poll(t, second), poll(t, second)...)[:4] {
		p, seq := seqOf(t, r, 0)
		if i == 0 && p != 1 {
			t.Errorf("resumed with partition %d, want the one behind (1)", p)
		}
		got[p] = append(got[p], seq)
	}
	if want := []int64{3, 4}; !slices.Equal(got[0], want) {
		t.Errorf("partition 0 resumed with %v, want %v", got[0], want)
	}
	if want := []int64{1, 2}; !slices.Equal(got[1], want) {
		t.Errorf("partition 1 resumed with %v, want %v", got[1], want)
	}
}

func TestTasksHaveTheirOwnSequences(t *testing.T) {
	tc0, tc1 := newFakeSourceContext(t, 0), newFakeSourceContext(t, 1)
	tc0.store(poll(t, startTask(t, tc0, nil, nil)))
	// Task 1 finds no offset of its own and starts at 0.
	r := poll(t, startTask(t, tc1, connect.Config{"batch.size": "1"}, nil))[0]
	if _, seq := seqOf(t, r, 1); seq != 0 {
		t.Errorf("task 1 started at seq %d, want 0", seq)
	}
}

func TestMaxRecordsCountsAcrossRestarts(t *testing.T) {
	tc := newFakeSourceContext(t, 0)
	settings := connect.Config{"max.records": "10", "batch.size": "4", "partitions": "3"}
	task := startTask(t, tc, settings, nil)
	var sizes []int
	for range 3 {
		recs := poll(t, task)
		tc.store(recs)
		sizes = append(sizes, len(recs))
	}
	if !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("polls returned %v records, want [4 4 2]", sizes)
	}
	assertIdles(t, task)
	assertIdles(t, startTask(t, tc, settings, nil)) // all 10 stored: nothing left after a restart
}

// assertIdles checks that Poll returns nothing, and only once ctx is done.
func assertIdles(t *testing.T, task *Task) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	result := make(chan []connect.Record, 1)
	go func() {
		recs, _ := task.Poll(ctx)
		result <- recs
	}()
	select {
	case recs := <-result:
		t.Fatalf("Poll returned %d records before ctx was done, want it to block", len(recs))
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	select {
	case recs := <-result:
		if len(recs) != 0 {
			t.Fatalf("Poll after max.records returned %d records", len(recs))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not return when ctx was done")
	}
}

func TestPayloadPadsTheValue(t *testing.T) {
	tc := newFakeSourceContext(t, 12)
	task := startTask(t, tc, connect.Config{"payload.bytes": "100", "batch.size": "1000", "partitions": "11"}, nil)
	for _, r := range poll(t, task) {
		b, err := json.Marshal(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 100 {
			t.Fatalf("value %s is %d bytes, want payload.bytes 100", b, len(b))
		}
	}

	small := startTask(t, newFakeSourceContext(t, 0), connect.Config{"payload.bytes": "10", "batch.size": "1"}, nil)
	if v := poll(t, small)[0].Value.(map[string]any); v["payload"] != "" {
		t.Errorf("payload.bytes below the value's own size: payload %q, want none", v["payload"])
	}
}

func TestStringFormat(t *testing.T) {
	tests := []struct {
		payload string
		want    []any
	}{
		{"0", []any{"0", "1", "2"}},
		{"4", []any{"0000", "0001", "0002"}},
	}
	for _, tt := range tests {
		task := startTask(t, newFakeSourceContext(t, 0),
			connect.Config{"format": "string", "payload.bytes": tt.payload, "batch.size": "3"}, nil)
		var got []any
		for _, r := range poll(t, task) {
			got = append(got, r.Value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("payload.bytes %s: values %q, want %q", tt.payload, got, tt.want)
		}
	}
}

func TestRateInVirtualTime(t *testing.T) {
	tests := []struct {
		rate      float64
		batch     int
		wantChunk int // records per poll once started
	}{
		{rate: 0.5, batch: 500, wantChunk: 1},
		{rate: 10, batch: 500, wantChunk: 1},
		{rate: 1000, batch: 500, wantChunk: 100},
		{rate: 100000, batch: 500, wantChunk: 500},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.rate, 'f', -1, 64), func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(1700000000, 0)}
			start := clk.now
			task := startTask(t, newFakeSourceContext(t, 0), connect.Config{
				"rate": strconv.FormatFloat(tt.rate, 'f', -1, 64), "batch.size": strconv.Itoa(tt.batch),
			}, clk)
			total := 0
			for range 50 {
				recs := poll(t, task)
				if len(recs) != tt.wantChunk {
					t.Fatalf("Poll returned %d records, want %d", len(recs), tt.wantChunk)
				}
				total += len(recs)
				elapsed := clk.now.Sub(start).Seconds()
				if allowed := tt.rate * elapsed; float64(total) > allowed+1e-6 {
					t.Fatalf("%d records after %.3fs: more than rate %v allows (%.1f)", total, elapsed, tt.rate, allowed)
				}
			}
			if want := time.Duration(float64(total) / tt.rate * float64(time.Second)); clk.slept < want-time.Millisecond || clk.slept > want+time.Millisecond {
				t.Errorf("%d records took %v of sleep, want %v", total, clk.slept, want)
			}
		})
	}
}

func TestRateCatchesUpAtMostASecond(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1700000000, 0)}
	task := startTask(t, newFakeSourceContext(t, 0), connect.Config{"rate": "10", "batch.size": "500"}, clk)
	clk.now = clk.now.Add(time.Minute) // the runtime did not poll for a minute
	if n := len(poll(t, task)); n != 10 {
		t.Errorf("after a minute without polls, Poll returned %d records, want a second's worth (10)", n)
	}
	if n := len(poll(t, task)); n != 1 || clk.slept != 100*time.Millisecond {
		t.Errorf("then %d records after %v, want 1 after 100ms", n, clk.slept)
	}
}

func TestPollReturnsWhenContextIsDone(t *testing.T) {
	task := startTask(t, newFakeSourceContext(t, 0), connect.Config{"rate": "0.001"}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	begin := time.Now()
	recs, err := task.Poll(ctx) // the first record is 1000s away
	if err != nil || len(recs) != 0 {
		t.Fatalf("Poll = %d records, %v; want none and no error", len(recs), err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Poll took %v to notice ctx was done", took)
	}
}

func TestStoredOffsetForms(t *testing.T) {
	tests := []struct {
		offset  map[string]any
		want    int64
		wantErr bool
	}{
		{nil, 0, false},
		{map[string]any{"seq": int64(41)}, 42, false},
		{map[string]any{"seq": 41}, 42, false},
		{map[string]any{"seq": float64(41)}, 42, false},
		{map[string]any{"seq": json.Number("41")}, 42, false},
		{map[string]any{"seq": 41.5}, 0, true},
		{map[string]any{"seq": int64(-1)}, 0, true},
		{map[string]any{"seq": "41"}, 0, true},
		{map[string]any{"position": int64(3)}, 0, true},
	}
	for _, tt := range tests {
		got, err := nextSeq(tt.offset)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("nextSeq(%v) = %d, %v; want %d, error %v", tt.offset, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestStartFailsOnABadStoredOffset(t *testing.T) {
	tc := newFakeSourceContext(t, 0)
	tc.offsets[partitionKey(t, sourcePartition(0, 0))] = map[string]any{"seq": "soon"}
	err := (&Task{}).Start(t.Context(), connect.Config{"kafka.topic": "test"}, tc)
	if err == nil {
		t.Fatal("Start accepted a stored offset without a number")
	}
	t.Log(err)
}
