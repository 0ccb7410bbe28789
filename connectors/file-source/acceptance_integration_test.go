package filesource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	filesource "github.com/sluicehq/sluice/connectors/file-source"
)

// file-source against its outside system, a file in a temporary directory: the rows are
// appended as JSON lines once the task runs, and each line's record must hold it. A task
// restarted with the stored position reads on after the lines it was acknowledged, and
// never reads them again.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		batchSize string
	}{
		{"one batch per poll", "500"},
		{"several batches per poll", "3"}, // only the last record of a batch carries the position
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			connecttest.CheckSource(t, connecttest.Registered(t, filesource.Name), connecttest.SourceAcceptance{
				Config: connect.Config{"file": path, "kafka.topic": "lines", "poll.interval": "20", "batch.size": tc.batchSize},
				Write: func(_ context.Context, rows []map[string]any) error {
					return appendLines(path, rows)
				},
				Resumes: true,
			})
		})
	}
}

// appendLines appends each row to the file as a line of JSON.
func appendLines(path string, rows []map[string]any) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	var b []byte
	for _, row := range rows {
		line, err := json.Marshal(row)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("appending to %s: %w", path, err)
	}
	return f.Close()
}
