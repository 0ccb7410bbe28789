package influxdbsink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	influxdbsink "github.com/sluicehq/sluice/connectors/influxdb-sink"
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

// influxQL asks InfluxDB's /query and returns the rows of every series as maps by column,
// the time (epoch nanoseconds) as the Meta time too.
func influxQL(ctx context.Context, base, db, q string) ([]map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/query?epoch=ns&db="+url.QueryEscape(db),
		strings.NewReader(url.Values{"q": {q}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Columns []string `json:"columns"`
				Values  [][]any  `json:"values"`
			} `json:"series"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q, resp.Status, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("%s: %s", q, out.Error)
	}
	var rows []map[string]any
	for _, r := range out.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%s: %s", q, r.Error)
		}
		for _, s := range r.Series {
			for _, v := range s.Values {
				row := map[string]any{}
				for i, c := range s.Columns {
					row[c] = v[i]
				}
				if ns, err := row["time"].(json.Number).Int64(); err == nil {
					row[connecttest.MetaTime] = time.Unix(0, ns)
				}
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
}
