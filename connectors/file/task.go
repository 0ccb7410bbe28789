package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/connect"
)

// Task appends the records of its partitions to the file.
type Task struct {
	cfg      Config
	log      *slog.Logger
	tc       connect.SinkTaskContext
	out      *appendFile
	lines    *lineEncoder
	pending  bytes.Buffer // whole lines not yet written
	unsynced bool         // lines written since the last sync
	// broken is the write or sync error after which the file's contents are unknown: the task
	// commits no offsets any more, so the records are delivered again after a restart.
	broken error
}

// Start opens the file for appending.
func (t *Task) Start(_ context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("file: invalid configuration: %w", err)
	}
	path := strings.ReplaceAll(c.File, TaskToken, strconv.Itoa(tc.TaskID()))
	out, err := openAppend(path)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	t.cfg, t.log, t.tc, t.out = c, tc.Logger(), tc, out
	t.lines = newLineEncoder(c.Format)
	t.log.Info("appending records", "file", out.path, "format", c.Format, "fsync", c.Fsync)
	return nil
}

// Put turns the batch into lines, and writes them once buffer.bytes have collected. A record
// that cannot be written as JSON goes to the error policy.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	for _, r := range batch {
		line, err := t.lines.encode(r)
		if err != nil {
			if err := t.tc.Report(ctx, r, err); err != nil {
				return err
			}
			continue
		}
		t.pending.Write(line)
	}
	if t.pending.Len() >= t.cfg.BufferBytes {
		return t.write()
	}
	return nil
}

// write appends the pending lines to the file in one call.
func (t *Task) write() error {
	if t.broken != nil {
		return t.broken
	}
	if t.pending.Len() == 0 {
		return nil
	}
	err := t.out.write(t.pending.Bytes())
	t.pending.Reset()
	t.unsynced = true
	if err != nil {
		t.broken = fmt.Errorf("file: writing to %s: %w", t.out.path, err)
	}
	return t.broken
}

// flush writes the pending lines and, with fsync, syncs the file.
func (t *Task) flush() error {
	if err := t.write(); err != nil {
		return err
	}
	if !t.cfg.Fsync || !t.unsynced {
		return nil
	}
	if err := t.out.sync(); err != nil {
		// A failed sync may have dropped the written pages; a later sync would not tell.
		t.broken = fmt.Errorf("file: syncing %s: %w", t.out.path, err)
		return t.broken
	}
	t.unsynced = false
	return nil
}

// PreCommit writes and syncs everything Put was given, then lets all of it be committed.
func (t *Task) PreCommit(_ context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return offsets, nil
}

// Stop writes and syncs what is pending and closes the file.
func (t *Task) Stop() error {
	if t.out == nil {
		return nil
	}
	err := t.flush()
	if cerr := t.out.release(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("file: closing %s: %w", t.out.path, cerr))
	}
	t.out = nil
	return err
}
