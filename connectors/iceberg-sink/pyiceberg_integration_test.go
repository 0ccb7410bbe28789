package icebergsink_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// envPyIceberg names a Python that has pyiceberg; scripts/testenv installs it from PyPI.
const envPyIceberg = "SLUICE_TEST_PYICEBERG_PYTHON"

// readWithPyIceberg loads the table through pyiceberg's SqlCatalog on the same SQLite file and
// warehouse, scans it to Arrow and prints the row count and the rows, ordered by seq, as JSON;
// event_time as microseconds since the epoch (UTC).
const readWithPyIceberg = `
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
db, warehouse, ident = sys.argv[1:4]
cat = SqlCatalog("sluice", uri="sqlite:///" + db, warehouse=warehouse)
tbl = cat.load_table(ident)
at = tbl.scan().to_arrow().sort_by("seq")
rows = []
for r in at.to_pylist():
    r["event_time"] = int(r["event_time"].timestamp() * 1_000_000) if r["event_time"] is not None else None
    rows.append(r)
print(json.dumps({"count": at.num_rows, "schema": [f.name + ":" + str(f.field_type) for f in tbl.schema().fields], "rows": rows}))
`

type pyRows struct {
	Count  int
	Schema []string
	Rows   []struct {
		Seq         float64  `json:"seq"` // a double: JSON numbers by default
		DeviceID    string   `json:"device_id"`
		PlaceID     string   `json:"place_id"`
		EventTime   int64    `json:"event_time"`
		Temperature float64  `json:"temperature"`
		Humidity    *float64 `json:"humidity"`
	}
}

// pyIcebergRead reads the lake's table with pyiceberg.
func pyIcebergRead(t *testing.T, python string, l lake, tname string) pyRows {
	t.Helper()
	script := filepath.Join(t.TempDir(), "read.py")
	if err := os.WriteFile(script, []byte(readWithPyIceberg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), python, script, filepath.Join(l.dir, "catalog.db"), l.warehouse, "sluice."+tname)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pyiceberg: %v\n%s", err, stderr.String())
	}
	var got pyRows
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("pyiceberg's output: %v\n%s", err, stdout.String())
	}
	return got
}

// TestPyIcebergReadsTheTable writes frames through a worker into a SQLite catalog with a local
// warehouse, then has pyiceberg read the table: the same row count and the same values.
func TestPyIcebergReadsTheTable(t *testing.T) {
	python := os.Getenv(envPyIceberg)
	if python == "" {
		t.Skipf("%s is not set: run scripts/testenv up (or scripts/testenv tools) to install pyiceberg from PyPI", envPyIceberg)
	}
	l := newLake(t)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("ice-py")
	sluicetest.CreateTopic(t, c.Bootstrap, topic, 2)
	name := sluicetest.UniqueName("ice-py")
	sluicetest.CreateConnector(t, w.URL, name, sinkConfig(l, topic))
	sluicetest.WaitState(t, w.URL, name, api.StateRunning, 1)
	const n = 1500
	sluicetest.Produce(t, c.Bootstrap, topic, frames(0, n/2, nil)...)
	// A second batch with a new field: pyiceberg reads the evolved schema, old rows as null.
	sluicetest.Produce(t, c.Bootstrap, topic, frames(n/2, n/2, map[string]any{"humidity": 41.5})...)
	tname := tableOf(topic)
	sluicetest.Eventually(t, 90*time.Second, "every record in the table", func() (bool, string) {
		got := committed(l.load(t, tname))
		return got == n, fmt.Sprint(got)
	})

	got := pyIcebergRead(t, python, l, tname)
	t.Logf("pyiceberg: %d rows, schema %v", got.Count, got.Schema)
	if got.Count != n || len(got.Rows) != n {
		t.Fatalf("pyiceberg reads %d rows (%d listed), want %d", got.Count, len(got.Rows), n)
	}
	bad := 0
	for i, r := range got.Rows {
		s := int64(i)
		ok := r.Seq == float64(s) && r.DeviceID == fmt.Sprintf("dev-%d", s%7) && r.PlaceID == fmt.Sprintf("place-%d", s%3) &&
			r.EventTime == (1714564800000+s*60_000)*1000 && r.Temperature == 20.05+float64(s%100)/10 &&
			(s < n/2) == (r.Humidity == nil) && (r.Humidity == nil || *r.Humidity == 41.5)
		if !ok {
			if bad++; bad <= 5 {
				t.Errorf("row %d = %+v", i, r)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows differ", bad, n)
	}
}
