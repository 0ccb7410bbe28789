package prometheussink

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
)

// receiver is a remote-write receiver that decodes each request itself (snappy, then the
// protobuf WriteRequest) and answers the statuses queued in codes, then 204.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	codes    []int
	requests []received
}

type received struct {
	header http.Header
	path   string
	code   int
	series []prompb.TimeSeries
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Error(err)
		}
		var wr prompb.WriteRequest
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Errorf("body is not snappy block-compressed: %v", err)
		} else if err := wr.Unmarshal(raw); err != nil {
			t.Errorf("body is not a protobuf WriteRequest: %v", err)
		}
		r.mu.Lock()
		code := http.StatusNoContent
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.requests = append(r.requests, received{req.Header.Clone(), req.URL.RequestURI(), code, wr.Timeseries})
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) answer(codes ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes = append(r.codes, codes...)
}

// take returns the requests received since the last call.
func (r *receiver) take() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}

// accepted renders the series of the accepted requests as sorted name{labels} value @ms lines.
func accepted(reqs []received) []string {
	var out []string
	for _, rq := range reqs {
		if rq.code/100 != 2 {
			continue
		}
		for _, s := range rq.series {
			out = append(out, seriesString(s))
		}
	}
	slices.Sort(out)
	return out
}

func seriesString(s prompb.TimeSeries) string {
	var b strings.Builder
	for i, l := range s.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	for _, sm := range s.Samples {
		fmt.Fprintf(&b, " %v @%d", sm.Value, sm.Timestamp)
	}
	return b.String()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// remoteTask starts a task that remote writes to url; pushes come from the test (the interval
// is an hour), at a fixed time.
func remoteTask(t *testing.T, cfg connect.Config) *Task {
	t.Helper()
	cfg["topics"] = "iot.metrics"
	cfg["listen.address"] = "127.0.0.1:0"
	if cfg["remote.write.interval"] == "" {
		cfg["remote.write.interval"] = "1h"
	}
	cfg["remote.write.retry.backoff.min"] = "1ms"
	cfg["remote.write.retry.backoff.max"] = "2ms"
	task := &Task{}
	if err := task.Start(t.Context(), cfg, connecttest.NewSinkContext(t, 0)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := task.Stop(); err != nil {
			t.Error(err)
		}
	})
	task.remote.mu.Lock()
	task.remote.now = func() time.Time { return time.UnixMilli(1_800_000_000_000) }
	task.remote.mu.Unlock()
	return task
}

func put(t *testing.T, task *Task, recs ...connect.Record) {
	t.Helper()
	if err := task.Put(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteWriteRequestsBatchesAndRetries(t *testing.T) {
	rcv := newReceiver(t)
	task := remoteTask(t, connect.Config{
		"remote.write.url": rcv.srv.URL + "/api/v1/write?tenant=a", "remote.write.batch.size": "2",
		"remote.write.basic.auth.user": "u", "remote.write.basic.auth.password": "p w",
		"remote.write.headers": "X-Scope-OrgID=t1, X-Other = two words",
		"metric.name":          "iot", "value.fields": "temperature", "label.fields": "sensor_id,place_id",
	})
	put(t, task,
		rec(map[string]any{"sensor_id": "s1", "place_id": "p1", "temperature": 20.5}),
		rec(map[string]any{"sensor_id": "s2", "place_id": "", "temperature": 21.0}), // an empty label is left out
		rec(map[string]any{"sensor_id": "s3", "place_id": "p2", "temperature": 22.0}),
		rec(map[string]any{"sensor_id": "s1", "place_id": "p1", "temperature": 23.5}))

	rcv.answer(500, 503) // retried, then both batches go through
	task.remote.push(t.Context())
	reqs := rcv.take()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 2 failed and 2 batches: %+v", len(reqs), reqs)
	}
	for i, rq := range reqs {
		for h, want := range map[string]string{
			"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0",
			"X-Scope-Orgid": "t1", "X-Other": "two words",
		} {
			if got := rq.header.Get(h); got != want {
				t.Errorf("request %d: %s = %q, want %q", i, h, got, want)
			}
		}
		if u, p, ok := (&http.Request{Header: rq.header}).BasicAuth(); !ok || u != "u" || p != "p w" {
			t.Errorf("request %d: basic auth %q %q %v", i, u, p, ok)
		}
		if rq.path != "/api/v1/write?tenant=a" {
			t.Errorf("request %d went to %s", i, rq.path)
		}
		if n := len(rq.series); n == 0 || n > 2 {
			t.Errorf("request %d has %d series, want 1 or 2 (batch.size 2)", i, n)
		}
	}
	if reqs[1].header.Get("Retry-Attempt") != "1" || reqs[2].header.Get("Retry-Attempt") != "2" {
		t.Errorf("retries not marked: %q %q", reqs[1].header.Get("Retry-Attempt"), reqs[2].header.Get("Retry-Attempt"))
	}
	want := []string{
		`__name__="iot",place_id="p1",sensor_id="s1" 23.5 @1800000000000`,
		`__name__="iot",place_id="p2",sensor_id="s3" 22 @1800000000000`,
		`__name__="iot",sensor_id="s2" 21 @1800000000000`,
	}
	if got := accepted(reqs); !slices.Equal(got, want) {
		t.Errorf("accepted series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rw := task.remote
	if r, s, f := counterValue(t, rw.retries), counterValue(t, rw.sent), counterValue(t, rw.failures); r != 2 || s != 3 || f != 0 {
		t.Errorf("retries %v, samples sent %v, failures %v; want 2, 3, 0", r, s, f)
	}

	// A 400 is not retried: counted, logged, and the task carries on.
	rcv.answer(400)
	task.remote.push(t.Context())
	reqs = rcv.take()
	if len(reqs) != 2 || reqs[0].code != 400 || reqs[1].code != 204 {
		t.Fatalf("after a 400: %+v", reqs)
	}
	if f := counterValue(t, rw.failures); f != 1 {
		t.Errorf("failures %v, want 1", f)
	}

	// The counters are on the scrape endpoint.
	text := scrape(t, "http://"+task.Endpoints()[0].Address+"/metrics", "")
	for _, w := range []string{`sluice_prometheus_sink_remote_write_retries_total{connector="test",task="0"} 2`,
		`sluice_prometheus_sink_remote_write_failures_total{connector="test",task="0"} 1`} {
		if !strings.Contains(text, w) {
			t.Errorf("scrape lacks %q:\n%s", w, text)
		}
	}

	// Stop pushes the latest samples once more.
	put(t, task, rec(map[string]any{"sensor_id": "s4", "place_id": "p2", "temperature": 5.0}))
	if err := task.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := accepted(rcv.take()); !slices.Contains(got, `__name__="iot",place_id="p2",sensor_id="s4" 5 @1800000000000`) {
		t.Errorf("the last push on Stop sent:\n%s", strings.Join(got, "\n"))
	}
}

func TestRemoteWriteWithTimestampsSendsEachSampleOnce(t *testing.T) {
	rcv := newReceiver(t)
	task := remoteTask(t, connect.Config{
		"remote.write.url": rcv.srv.URL, "remote.write.retries": "1", "remote.write.bearer.token": "tok",
		"scrape.enable": "false", "timestamps.enable": "true", "metric.name": "m", "label.fields": "id",
	})
	if eps := task.Endpoints(); eps != nil {
		t.Errorf("scraping off, yet endpoints %+v", eps)
	}
	at := func(ms int64, id string, v float64) connect.Record {
		return connect.Record{Value: map[string]any{"id": id, "value": v}, Time: time.UnixMilli(ms)}
	}
	samples := func(reqs []received) []string {
		var out []string
		for _, s := range accepted(reqs) {
			if strings.HasPrefix(s, `__name__="m"`) {
				out = append(out, s)
			}
		}
		return out
	}
	put(t, task, at(1000, "a", 1), at(2000, "b", 2))
	reqs := rcv.take()
	if len(reqs) != 0 {
		t.Fatalf("pushed before push: %+v", reqs)
	}
	task.remote.push(t.Context())
	reqs = rcv.take()
	if got, want := samples(reqs), []string{`__name__="m",id="a" 1 @1000`, `__name__="m",id="b" 2 @2000`}; !slices.Equal(got, want) {
		t.Errorf("first push: %q, want %q", got, want)
	}
	if reqs[0].header.Get("Authorization") != "Bearer tok" {
		t.Errorf("Authorization %q", reqs[0].header.Get("Authorization"))
	}
	// Scraping off: the task's own metrics go with the samples.
	if own := accepted(reqs); !slices.Contains(own, `__name__="sluice_prometheus_sink_samples_total",connector="test",task="0" 2 @1800000000000`) {
		t.Errorf("own metrics not pushed:\n%s", strings.Join(own, "\n"))
	}

	task.remote.push(t.Context()) // nothing new
	if got := samples(rcv.take()); len(got) != 0 {
		t.Errorf("sent again: %q", got)
	}

	// Given up after the retries, the sample goes with the next push.
	put(t, task, at(3000, "a", 3))
	rcv.answer(503, 503)
	task.remote.push(t.Context())
	if reqs := rcv.take(); len(reqs) != 2 || samples(reqs) != nil {
		t.Errorf("want 2 failed requests: %+v", reqs)
	}
	if f, r := counterValue(t, task.remote.failures), counterValue(t, task.remote.retries); f != 1 || r != 1 {
		t.Errorf("failures %v retries %v, want 1 and 1", f, r)
	}
	task.remote.push(t.Context())
	if got, want := samples(rcv.take()), []string{`__name__="m",id="a" 3 @3000`}; !slices.Equal(got, want) {
		t.Errorf("after the failure: %q, want %q", got, want)
	}
}

func TestRemoteWriteConfigIsValidated(t *testing.T) {
	ok := connect.Config{"remote.write.url": "https://mimir:8080/api/v1/push", "remote.write.headers": "X-Scope-OrgID=t1",
		"remote.write.basic.auth.user": "u", "remote.write.basic.auth.password": "p", "scrape.enable": "false"}
	if err := (&Connector{}).Start(t.Context(), ok, &connecttest.ConnectorContext{T: t}); err != nil {
		t.Errorf("Start(%v): %v", ok, err)
	}
	for _, cfg := range []connect.Config{
		{"scrape.enable": "false"},
		{"remote.write.url": "ftp://host/w"},
		{"remote.write.url": "http:///w"},
		{"remote.write.url": "http://u:p@host/w"},
		{"remote.write.url": "http://host/w", "remote.write.interval": "0"},
		{"remote.write.url": "http://host/w", "remote.write.timeout": "0s"},
		{"remote.write.url": "http://host/w", "remote.write.batch.size": "0"},
		{"remote.write.url": "http://host/w", "remote.write.retry.backoff.min": "1s", "remote.write.retry.backoff.max": "10ms"},
		{"remote.write.url": "http://host/w", "remote.write.basic.auth.password": "p"},
		{"remote.write.url": "http://host/w", "remote.write.basic.auth.user": "u", "remote.write.bearer.token": "t"},
		{"remote.write.url": "http://host/w", "remote.write.headers": "Content-Encoding=gzip"},
		{"remote.write.url": "http://host/w", "remote.write.headers": "authorization=x"},
		{"remote.write.url": "http://host/w", "remote.write.headers": "no value"},
		{"remote.write.url": "http://host/w", "remote.write.headers": "Bad Name=x"},
	} {
		if err := (&Connector{}).Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}); err == nil {
			t.Errorf("Start(%v) accepted it", cfg)
		}
	}
}
