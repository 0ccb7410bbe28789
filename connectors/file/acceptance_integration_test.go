package file_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/connectors/file"
)

// The file sink against its "server", a file in a temporary directory: every record is a
// line, read back as it is on disk. The sink is at least once (lines after the last commit
// are written again after a crash), so a replay may append the records again but must lose
// none.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  connect.Config
	}{
		{"json lines, buffered and synced", connect.Config{"format": "json"}},
		{"json lines, written per batch without fsync", connect.Config{"format": "json", "buffer.bytes": "0", "fsync": "false"}},
		{"values only", connect.Config{"format": "value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			tc.cfg["file"] = path
			connecttest.CheckSink(t, connecttest.Registered(t, file.Name), connecttest.SinkAcceptance{
				Config: tc.cfg,
				Read: func(context.Context, connect.SinkTask) ([]map[string]any, error) {
					return readLines(path, tc.cfg["format"])
				},
			})
		})
	}
}

// readLines reads the file's lines as rows: a json line's value, with its topic, partition,
// offset, key and timestamp as the Meta keys; a value line as it is.
func readLines(path, format string) ([]map[string]any, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if format == file.FormatValue {
			var row map[string]any
			if err := dec.Decode(&row); err != nil {
				return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
			}
			rows = append(rows, row)
			continue
		}
		var line struct {
			Topic     string         `json:"topic"`
			Partition int32          `json:"partition"`
			Offset    int64          `json:"offset"`
			Key       any            `json:"key"`
			Value     map[string]any `json:"value"`
			Timestamp json.Number    `json:"timestamp"`
		}
		if err := dec.Decode(&line); err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		row := line.Value
		if row == nil {
			row = map[string]any{}
		}
		row[connecttest.MetaTopic], row[connecttest.MetaPartition], row[connecttest.MetaOffset] = line.Topic, line.Partition, line.Offset
		row[connecttest.MetaKey], row[connecttest.MetaTime] = line.Key, line.Timestamp
		rows = append(rows, row)
	}
	return rows, sc.Err()
}
