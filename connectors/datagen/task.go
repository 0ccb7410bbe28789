package datagen

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Task generates the records of one task.
type Task struct {
	cfg     Config
	log     *slog.Logger
	gen     *generator
	limiter *limiter // nil without a rate
	clock   clock    // the real one unless a test set another
	done    bool     // max.records reached; logged once
}

// clock is time as the task sees it.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, and reports whether it waited the whole time.
	Sleep(ctx context.Context, d time.Duration) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Start reads the stored offset of each of the task's partitions and continues every sequence
// after it.
func (t *Task) Start(ctx context.Context, cfg connect.Config, tc connect.SourceTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("datagen: invalid configuration: %w", err)
	}
	if t.clock == nil {
		t.clock = realClock{}
	}
	t.cfg, t.log = c, tc.Logger()
	t.gen = newGenerator(c, int64(tc.TaskID()))
	next := make([]int64, c.Partitions)
	for p, partition := range t.gen.partitions {
		offset, err := tc.Offset(ctx, partition)
		if err != nil {
			return fmt.Errorf("datagen: reading the stored offset of source partition %v: %w", partition, err)
		}
		if next[p], err = nextSeq(offset); err != nil {
			return fmt.Errorf("datagen: source partition %v: stored offset %v: %w", partition, offset, err)
		}
	}
	t.gen.resume(next)
	if c.Rate > 0 {
		t.limiter = newLimiter(c.Rate, c.BatchSize, t.clock.Now())
	}
	t.log.Info("generating records", "topic", c.Topic, "partitions", c.Partitions,
		"resumed_after", t.gen.generated(), "rate", c.Rate, "max_records", c.MaxRecords)
	return nil
}

// nextSeq is the sequence number that follows a stored offset {"seq": n}: n+1, or 0 without
// an offset. Offsets come back from storage as whatever number type it decodes to.
func nextSeq(offset map[string]any) (int64, error) {
	if offset == nil {
		return 0, nil
	}
	var seq int64
	switch v := offset["seq"].(type) {
	case int64:
		seq = v
	case int:
		seq = int64(v)
	case int32:
		seq = int64(v)
	case float64:
		if v != math.Trunc(v) || v >= 1<<63 {
			return 0, fmt.Errorf("seq %v is not a whole number", v)
		}
		seq = int64(v)
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("seq %q is not a whole number", v)
		}
		seq = n
	default:
		return 0, fmt.Errorf("no whole number seq, got %T %v", offset["seq"], offset["seq"])
	}
	if seq < 0 {
		return 0, fmt.Errorf("seq %d is negative", seq)
	}
	return seq + 1, nil
}

// Poll returns up to batch.size records, waiting first when a rate is set. Once max.records
// are generated it blocks until ctx is done. It returns no records and no error when ctx is
// done.
func (t *Task) Poll(ctx context.Context) ([]connect.Record, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	want := t.cfg.BatchSize
	if t.cfg.MaxRecords > 0 {
		remaining := t.cfg.MaxRecords - t.gen.generated()
		if remaining <= 0 {
			t.idle(ctx)
			return nil, nil
		}
		want = int(min(int64(want), remaining))
	}
	if t.limiter != nil {
		chunk := t.limiter.chunk(want)
		for {
			d := t.limiter.delay(t.clock.Now(), chunk)
			if d <= 0 {
				break
			}
			if !t.clock.Sleep(ctx, d) {
				return nil, nil
			}
		}
		want = t.limiter.take(t.clock.Now(), want)
	}
	now := t.clock.Now()
	records := make([]connect.Record, want)
	t.gen.fill(records, now)
	return records, nil
}

// idle blocks until ctx is done, for a task that has generated all its records.
func (t *Task) idle(ctx context.Context) {
	if !t.done {
		t.done = true
		t.log.Info("generated max.records records; idling", "max_records", t.cfg.MaxRecords)
	}
	<-ctx.Done()
}

// Stop does nothing: the task holds no resources.
func (t *Task) Stop() error { return nil }
