package sluicetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// InfluxQL asks InfluxDB's /query (InfluxQL, times as epoch nanoseconds) and returns the rows
// of every series, cells joined by |.
func InfluxQL(base, db, q string) ([]string, error) {
	series, err := influxQuery(context.Background(), base, db, q)
	if err != nil {
		return nil, err
	}
	var rows []string
	for _, s := range series {
		for _, v := range s.Values {
			cells := make([]string, len(v))
			for i, c := range v {
				cells[i] = fmt.Sprint(c)
			}
			rows = append(rows, strings.Join(cells, "|"))
		}
	}
	return rows, nil
}

// InfluxRows is InfluxQL with every row as a map by column, numbers as json.Number.
func InfluxRows(ctx context.Context, base, db, q string) ([]map[string]any, error) {
	series, err := influxQuery(ctx, base, db, q)
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	for _, s := range series {
		for _, v := range s.Values {
			row := make(map[string]any, len(s.Columns))
			for i, c := range s.Columns {
				row[c] = v[i]
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

type influxSeries struct {
	Columns []string `json:"columns"`
	Values  [][]any  `json:"values"`
}

// influxQuery sends q to /query and returns the series of every result.
func influxQuery(ctx context.Context, base, db, q string) ([]influxSeries, error) {
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
			Error  string         `json:"error"`
			Series []influxSeries `json:"series"`
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
	var series []influxSeries
	for _, r := range out.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%s: %s", q, r.Error)
		}
		series = append(series, r.Series...)
	}
	return series, nil
}
