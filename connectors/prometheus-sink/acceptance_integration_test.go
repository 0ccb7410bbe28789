package prometheussink_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	prometheussink "github.com/sluicehq/sluice/connectors/prometheus-sink"
)

// prometheus-sink serves the latest sample of each series: the record's reading is the value
// and its id and note are labels, so each record is a series of its own. Read back two ways:
// scraping the task's own endpoint (the text format, with the record time as the sample's
// timestamp when timestamps.enable is on), and from the test Prometheus, to which the task
// remote-writes. A record delivered again updates its series with the same sample, so a
// replay leaves no duplicate.
func TestAcceptance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  connect.Config
		read func(ctx context.Context, task connect.SinkTask, metric string) ([]map[string]any, error)
	}{
		{"scraped", connect.Config{"listen.address": "127.0.0.1:0"}, scrape},
		{"scraped with timestamps", connect.Config{"listen.address": "127.0.0.1:0", "timestamps.enable": "true"}, scrape},
		{"remote written to Prometheus", connect.Config{"scrape.enable": "false", "remote.write.interval": "100"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			metric := strings.ReplaceAll(connecttest.UniqueName("acc"), "-", "_")
			read := tc.read
			if read == nil {
				prom := connecttest.Env(t, connecttest.EnvPrometheus)
				tc.cfg["remote.write.url"] = prom + "/api/v1/write"
				read = func(ctx context.Context, _ connect.SinkTask, metric string) ([]map[string]any, error) {
					return queryRows(ctx, prom, metric)
				}
			}
			tc.cfg["metric.name"] = metric
			tc.cfg["value.fields"] = "reading"
			tc.cfg["label.fields"] = "id,note"
			connecttest.CheckSink(t, connecttest.Registered(t, prometheussink.Name), connecttest.SinkAcceptance{
				Config: tc.cfg,
				Read: func(ctx context.Context, task connect.SinkTask) ([]map[string]any, error) {
					return read(ctx, task, metric)
				},
				Idempotent: true,
			})
		})
	}
}

// scrape reads the task's scrape endpoint and returns the samples of the metric as rows: the
// labels, the value as reading, and a timestamp as the Meta time.
func scrape(ctx context.Context, task connect.SinkTask, metric string) ([]map[string]any, error) {
	eps := task.(connect.Endpointer).Endpoints()
	if len(eps) != 1 {
		return nil, fmt.Errorf("the task serves %d endpoints, want 1", len(eps))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+eps[0].Address+eps[0].Path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), metric+"{")
		if !ok {
			continue
		}
		row, err := parseSample(rest)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// parseSample reads `id="...",note="..."} 22.59 [timestamp]` of the text format.
func parseSample(s string) (map[string]any, error) {
	row := map[string]any{}
	for !strings.HasPrefix(s, "}") {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			return nil, errors.New("no label value")
		}
		var value strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					value.WriteByte('\n')
					continue
				}
			}
			value.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, errors.New("unterminated label value")
		}
		row[strings.TrimPrefix(name, ",")] = value.String()
		s = rest[i+1:]
	}
	fields := strings.Fields(s[1:])
	if len(fields) == 0 {
		return nil, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return nil, err
	}
	row["reading"] = v
	if len(fields) > 1 {
		ms, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		row[connecttest.MetaTime] = ms
	}
	return row, nil
}

// queryRows asks Prometheus for the latest samples of the metric, as rows: the labels, and the
// value as reading.
func queryRows(ctx context.Context, prom, metric string) ([]map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom+"/api/v1/query?query="+url.QueryEscape(metric), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", metric, resp.Status, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s", metric, resp.Status, out.Error)
	}
	var rows []map[string]any
	for _, r := range out.Data.Result {
		row := map[string]any{}
		for k, v := range r.Metric {
			if k != "__name__" {
				row[k] = v
			}
		}
		text, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", metric, r.Value[1], err)
		}
		row["reading"] = v
		rows = append(rows, row)
	}
	return rows, nil
}
