package sluicetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// InfluxQL asks InfluxDB's /query (InfluxQL, times as epoch nanoseconds) and returns the rows
// of every series, cells joined by |.
func InfluxQL(base, db, q string) ([]string, error) {
	resp, err := http.PostForm(base+"/query?epoch=ns&db="+url.QueryEscape(db), url.Values{"q": {q}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("%s", out.Error)
	}
	var rows []string
	for _, r := range out.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%s", r.Error)
		}
		for _, s := range r.Series {
			for _, v := range s.Values {
				cells := make([]string, len(v))
				for i, c := range v {
					cells[i] = fmt.Sprint(c)
				}
				rows = append(rows, strings.Join(cells, "|"))
			}
		}
	}
	return rows, nil
}
