package filesource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// Task reads the file's lines from the stored position on.
type Task struct {
	cfg       Config
	log       *slog.Logger
	tc        connect.SourceTaskContext
	partition map[string]any

	mu       sync.Mutex // Poll holds it while reading; Stop takes it to close the file
	f        *os.File   // nil until the file could be opened
	r        *bufio.Reader
	position int64  // byte position after the last line returned
	partial  []byte // the start of a line that has no newline yet, at most line.max.bytes+1 of it
	pending  int64  // bytes of that line read so far, including those skipped
	skipping bool   // the line is longer than line.max.bytes: its bytes past partial are dropped
	lastCR   bool   // the last byte read was \r, so a \n after it ends the line as \r\n
	missing  bool   // the file was missing at the last look; logged once
}

// headBytes is how much of an over-long line the dead-letter record holds.
const headBytes = 1024

// Start reads the stored position; the file is opened by Poll, so that it may appear later.
func (t *Task) Start(ctx context.Context, cfg connect.Config, tc connect.SourceTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("file-source: invalid configuration: %w", err)
	}
	t.cfg, t.log, t.tc = c, tc.Logger(), tc
	t.partition = map[string]any{"file": c.File}
	offset, err := tc.Offset(ctx, t.partition)
	if err != nil {
		return fmt.Errorf("file-source: reading the stored offset of %s: %w", c.File, err)
	}
	if t.position, err = storedPosition(offset); err != nil {
		return fmt.Errorf("file-source: %s: stored offset %v: %w", c.File, offset, err)
	}
	t.log.Info("reading lines", "file", c.File, "topic", c.Topic, "position", t.position)
	return nil
}

// storedPosition is the position in a stored offset {"position": n}, or 0 without one.
// Offsets come back from storage as whatever number type it decodes to.
func storedPosition(offset map[string]any) (int64, error) {
	if offset == nil {
		return 0, nil
	}
	var pos int64
	switch v := offset["position"].(type) {
	case int64:
		pos = v
	case int:
		pos = int64(v)
	case float64:
		if v != math.Trunc(v) || v >= 1<<63 {
			return 0, fmt.Errorf("position %v is not a whole number", v)
		}
		pos = int64(v)
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("position %q is not a whole number", v)
		}
		pos = n
	default:
		return 0, fmt.Errorf("no whole number position, got %T %v", offset["position"], offset["position"])
	}
	if pos < 0 {
		return 0, fmt.Errorf("position %d is negative", pos)
	}
	return pos, nil
}

// Poll returns the complete lines after the position, up to batch.size of them. At the end of
// the file, or while it is missing, it waits poll.interval and returns none.
func (t *Task) Poll(ctx context.Context) ([]connect.Record, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ctx.Err() != nil {
		return nil, nil
	}
	if t.f == nil {
		opened, err := t.open()
		if err != nil {
			return nil, err
		}
		if !opened {
			sleep(ctx, t.cfg.PollInterval)
			return nil, nil
		}
	}
	records, err := t.readLines(ctx)
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		if err := t.checkReplaced(); err != nil {
			return nil, err
		}
		sleep(ctx, t.cfg.PollInterval)
	}
	return records, nil
}

// checkReplaced looks, at the end of the file, whether the path now names another file
// (rotated: it is read from its start at the next poll) or the file got shorter than what was
// read (truncated: it is read again from its start).
func (t *Task) checkReplaced() error {
	current, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("file-source: %s: %w", t.cfg.File, err)
	}
	if named, err := os.Stat(t.cfg.File); err == nil && !os.SameFile(current, named) {
		t.log.Warn("file was replaced; reading the new one from the start", "file", t.cfg.File, "position", t.position)
		t.f.Close()
		t.f, t.position = nil, 0
		return nil
	}
	if read := t.position + t.pending; current.Size() < read {
		t.log.Warn("file was truncated; reading it from the start", "file", t.cfg.File, "size", current.Size(), "position", read)
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("file-source: seeking %s to its start: %w", t.cfg.File, err)
		}
		t.r.Reset(t.f)
		t.position = 0
		t.resetLine()
	}
	return nil
}

// open opens the file at the position, or at its start when the file is shorter. It reports
// false while the file does not exist.
func (t *Task) open() (bool, error) {
	f, err := os.Open(t.cfg.File)
	if errors.Is(err, fs.ErrNotExist) {
		if !t.missing {
			t.missing = true
			t.log.Warn("file does not exist; waiting for it", "file", t.cfg.File)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("file-source: opening %s: %w", t.cfg.File, err)
	}
	t.missing = false
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return false, fmt.Errorf("file-source: %s: %w", t.cfg.File, err)
	}
	if info.Size() < t.position {
		t.log.Warn("file is shorter than the stored position: truncated or replaced; reading it from the start",
			"file", t.cfg.File, "size", info.Size(), "position", t.position)
		t.position = 0
	}
	if _, err := f.Seek(t.position, io.SeekStart); err != nil {
		f.Close()
		return false, fmt.Errorf("file-source: seeking %s to %d: %w", t.cfg.File, t.position, err)
	}
	t.f, t.r = f, bufio.NewReaderSize(f, 64<<10)
	t.resetLine()
	return true, nil
}

// resetLine forgets the line being read.
func (t *Task) resetLine() {
	t.partial, t.pending, t.skipping, t.lastCR = t.partial[:0], 0, false, false
}

// readLines reads up to batch.size complete lines. A line without its newline yet is kept
// until the rest arrives, at most line.max.bytes+1 of it: the rest of a longer line is read
// and dropped, and once its newline arrives the line is reported to the error policy.
func (t *Task) readLines(ctx context.Context) ([]connect.Record, error) {
	var records []connect.Record
	for len(records) < t.cfg.BatchSize {
		chunk, err := t.r.ReadSlice('\n') // at most the reader's buffer: memory stays bounded
		t.take(chunk)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("file-source: reading %s at %d: %w", t.cfg.File, t.position+t.pending, err)
		}
		// chunk ends the line.
		start := t.position
		t.position += t.pending
		length := t.pending - 1 // without \n
		if t.lastCR {
			length--
		}
		if length > int64(t.cfg.LineMaxBytes) {
			if err := t.reportLong(ctx, start, length); err != nil {
				return nil, err
			}
			t.resetLine()
			continue
		}
		records = append(records, connect.Record{
			Topic:           t.cfg.Topic,
			Value:           string(t.partial[:length]), // partial holds at least line.max.bytes+1 bytes of it
			SourcePartition: t.partition,
		})
		t.resetLine()
	}
	// Only the batch's last record carries the position (past every line read, long ones
	// reported included): the runtime keeps records without an offset in order and stores
	// the offset once every record before it is in Kafka, so nothing is lost, and a map per
	// line was most of the source's garbage at full speed.
	if n := len(records); n > 0 {
		records[n-1].SourceOffset = map[string]any{"position": t.position}
	}
	return records, nil
}

// take adds a chunk read to the line being read, keeping at most line.max.bytes+1 bytes of it
// (one more than a line may have, in case it is a \r before the \n).
func (t *Task) take(chunk []byte) {
	if len(chunk) == 0 {
		return
	}
	t.pending += int64(len(chunk))
	// the byte before a final \n says whether the line ends in \r\n
	body := bytes.TrimSuffix(chunk, []byte("\n"))
	if len(body) > 0 {
		t.lastCR = body[len(body)-1] == '\r'
	}
	if t.skipping {
		return
	}
	keep := t.cfg.LineMaxBytes + 1 - len(t.partial)
	if len(chunk) > keep {
		t.partial = append(t.partial, chunk[:keep]...)
		t.skipping = true
		return
	}
	t.partial = append(t.partial, chunk...)
}

// reportLong hands a line longer than line.max.bytes to the error policy, with its first
// bytes as the record value.
func (t *Task) reportLong(ctx context.Context, start, length int64) error {
	head := t.partial[:min(len(t.partial), headBytes, t.cfg.LineMaxBytes)]
	rec := connect.Record{
		Topic:           t.cfg.Topic,
		Value:           string(head),
		SourcePartition: t.partition,
		SourceOffset:    map[string]any{"position": t.position},
	}
	reason := fmt.Errorf("file-source: %s: the line at byte offset %d is %d bytes long, over line.max.bytes %d; it is skipped and reading goes on at byte offset %d",
		t.cfg.File, start, length, t.cfg.LineMaxBytes, t.position)
	return t.tc.Report(ctx, rec, reason) // an error means the policy does not tolerate it
}

func sleep(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// Stop closes the file.
func (t *Task) Stop() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	if err != nil {
		return fmt.Errorf("file-source: closing %s: %w", t.cfg.File, err)
	}
	return nil
}
