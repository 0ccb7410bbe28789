package influxdbsink_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	influxdbsink "github.com/sluicehq/sluice/connectors/influxdb-sink"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// influxdb-sink against the test InfluxDB 1.8, through its v1 compatibility path, a database
// of its own per case: the points are read back with InfluxQL, their time as the record time.
// The id is a tag, so each record is a series of its own; a point written again (same series,
// same time) overwrites itself, so a replay leaves no duplicate.
func TestAcceptance(t *testing.T) {
	base := connecttest.Env(t, connecttest.EnvInfluxDB)
	for _, tc := range []struct {
		name string
		cfg  connect.Config
	}{
		{"batched", connect.Config{"tags": "id"}},
		{"written per batch, uncompressed", connect.Config{"tags": "id", "batch.linger": "0", "influxdb.gzip": "false"}},
		{"strings as tags", connect.Config{"tags.all.strings": "true"}}, // note's spaces, commas and quotes escaped
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := strings.ReplaceAll(connecttest.UniqueName("acc"), "-", "_")
			if _, err := influxQL(t.Context(), base, "", "CREATE DATABASE "+db); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = influxQL(context.Background(), base, "", "DROP DATABASE "+db) })
			tc.cfg["influxdb.url"] = base
			tc.cfg["influxdb.database"] = db
			tc.cfg["measurement.name"] = "acceptance"
			connecttest.CheckSink(t, connecttest.Registered(t, influxdbsink.Name), connecttest.SinkAcceptance{
				Config: tc.cfg,
				Read: func(ctx context.Context, _ connect.SinkTask) ([]map[string]any, error) {
					return influxQL(ctx, base, db, `SELECT * FROM "acceptance"`)
				},
				Idempotent: true,
			})
		})
	}
}

// influxQL reads rows by column, the time (epoch nanoseconds) as the Meta time too.
func influxQL(ctx context.Context, base, db, q string) ([]map[string]any, error) {
	rows, err := sluicetest.InfluxRows(ctx, base, db, q)
	for _, row := range rows {
		if n, ok := row["time"].(json.Number); ok {
			if ns, err := n.Int64(); err == nil {
				row[connecttest.MetaTime] = time.Unix(0, ns)
			}
		}
	}
	return rows, err
}
