package prometheussink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/connect"
)

// Task keeps the latest samples of its records and serves them.
type Task struct {
	cfg   Config
	tc    connect.SinkTaskContext
	log   *slog.Logger
	store *store

	valuePaths [][]string
	labelPaths [][]string
	namePath   []string
	timePath   []string
	names      []string // the fixed metric name of each value field, when not from a field

	samplesTotal, badTotal prometheus.Counter

	ln       net.Listener
	srv      *http.Server
	served   chan struct{}
	stopTick chan struct{} // nil until started, and again once stopped
	remote   *remoteWriter // nil without remote write

	// full is set while the store is at series.max and drops new series: the status says so.
	full bool

	// scratch, reused across records
	samples []sample
	labels  []string
}

var _ connect.Endpointer = (*Task)(nil)

// Start opens the scrape endpoint and starts the remote-write pushes, as configured.
func (t *Task) Start(_ context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("prometheus-sink: invalid configuration: %w", err)
	}
	t.cfg, t.tc, t.log = c, tc, tc.Logger()
	for _, f := range c.ValueFields {
		t.valuePaths = append(t.valuePaths, strings.Split(f, "."))
		switch {
		case c.MetricNameField != "":
		case c.MetricName == "":
			t.names = append(t.names, sanitizeName(f, true))
		case len(c.ValueFields) == 1:
			t.names = append(t.names, c.MetricName)
		default:
			t.names = append(t.names, c.MetricName+"_"+sanitizeName(f, true))
		}
	}
	for _, f := range c.LabelFields {
		t.labelPaths = append(t.labelPaths, strings.Split(f, "."))
	}
	if c.MetricNameField != "" {
		t.namePath = strings.Split(c.MetricNameField, ".")
	}
	if c.TimestampField != "" {
		t.timePath = strings.Split(c.TimestampField, ".")
	}
	for _, n := range t.names {
		if strings.HasPrefix(n, ownPrefix) {
			return &connect.FieldError{Key: "metric.name", Message: "names starting with " + ownPrefix + " are the connector's own"}
		}
	}

	reg := prometheus.NewRegistry() // the task's own metrics
	own := prometheus.Labels{"connector": tc.Connector(), "task": strconv.Itoa(tc.TaskID())}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: ownPrefix + name, Help: help, ConstLabels: own})
		reg.MustRegister(c)
		return c
	}
	dropped := counter("series_dropped_total", "Samples not stored because they would have added a series beyond series.max.")
	expired := counter("series_expired_total", "Series removed because they were not updated for series.ttl.")
	t.samplesTotal = counter("samples_total", "Samples stored.")
	t.badTotal = counter("bad_records_total", "Records handed to the error policy (missing or non-numeric value, missing label, bad name).")
	t.store = newStore(c, dropped, expired)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ownPrefix + "series", Help: "Series held.", ConstLabels: own},
		func() float64 { return float64(t.store.len()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ownPrefix + "series_max", Help: "series.max: the most series held.", ConstLabels: own},
		func() float64 { return float64(c.MaxSeries) }))
	samples := prometheus.NewRegistry()
	samples.MustRegister(t.store)

	if c.RemoteWriteURL != "" {
		sent := counter("remote_write_samples_total", "Samples from records that the remote-write receiver accepted (the task's own metrics not counted).")
		failures := counter("remote_write_failures_total", "Remote-write requests refused by the receiver (4xx other than 429), or given up after their retries.")
		retries := counter("remote_write_retries_total", "Remote-write requests retried after a 5xx or 429 answer or a network error.")
		var pushOwn prometheus.Gatherer
		if !c.Scrape {
			pushOwn = reg
		}
		t.remote, err = newRemoteWriter(c, t.store, pushOwn, t.log, sent, failures, retries)
		if err != nil {
			return fmt.Errorf("prometheus-sink: remote write: %w", err)
		}
	}
	if c.Scrape {
		all := prometheus.Gatherers{reg, samples}
		scraped := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			t.store.expire() // first, so that the expired counter served counts them
			return all.Gather()
		})
		if err := t.listen(c, tc.TaskID(), scraped); err != nil {
			return err
		}
	}
	t.stopTick = make(chan struct{})
	if c.TTL > 0 {
		go t.sweep(min(max(c.TTL/4, 100*time.Millisecond), 30*time.Second), t.stopTick)
	}
	if t.remote != nil {
		t.remote.start()
		t.log.Info("remote writing", "url", redactURL(c.RemoteWriteURL), "interval", c.RemoteInterval)
	}
	return nil
}

// listen opens the scrape endpoint.
func (t *Task) listen(c Config, id int, g prometheus.Gatherer) error {
	addr, err := taskAddress(c.Listen, id)
	if err != nil {
		return &connect.FieldError{Key: "listen.address", Message: err.Error()}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("prometheus-sink: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(c.Path, promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError}))
	t.ln, t.served = ln, make(chan struct{})
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(t.served)
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.log.Error("scrape endpoint stopped", "err", err)
		}
	}()
	t.log.Info("serving scrape endpoint", "address", ln.Addr().String(), "path", c.Path)
	return nil
}

// taskAddress is the listen address of task id: the port plus id, unless the port is 0.
func taskAddress(listen string, id int) (string, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", fmt.Errorf("port %q is not a number from 0 to 65535", portStr)
	}
	if port != 0 {
		port += id
		if port > 65535 {
			return "", fmt.Errorf("task %d would listen on port %d, beyond 65535", id, port)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// sweep expires series regularly, so that memory is released without scrapes too.
func (t *Task) sweep(every time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.store.expire()
		case <-stop:
			return
		}
	}
}

// Endpoints is the scrape endpoint, for service discovery; none when scraping is off.
func (t *Task) Endpoints() []connect.Endpoint {
	if t.ln == nil {
		return nil
	}
	return []connect.Endpoint{{Kind: connect.EndpointKindPrometheus, Address: t.ln.Addr().String(), Path: t.cfg.Path}}
}

// Put stores the samples of each record. A record without a usable value, name or label goes
// to the error policy, and none of its samples is stored.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	for i := range batch {
		at, err := t.extract(&batch[i])
		if err != nil {
			t.badTotal.Inc()
			if err := t.tc.Report(ctx, batch[i], err); err != nil {
				return err
			}
			continue
		}
		if dropped := t.store.set(t.samples, t.labels, at); dropped != "" && !t.full {
			t.full = true
			note := fmt.Sprintf("series.max %d reached: samples that would add a series, such as %s, are dropped and counted in %sseries_dropped_total; existing series keep updating. Raise series.max, or lower series.ttl so that idle series make room",
				t.cfg.MaxSeries, dropped, ownPrefix)
			t.log.Warn("series limit reached; dropping the samples of new series", "series.max", t.cfg.MaxSeries, "dropped", dropped)
			t.tc.SetStatusNote(note)
		}
		t.samplesTotal.Add(float64(len(t.samples)))
	}
	if t.full && t.store.len() < t.cfg.MaxSeries {
		t.full = false
		t.log.Info("room for new series again", "series.max", t.cfg.MaxSeries)
		t.tc.SetStatusNote("")
	}
	return nil
}

// extract fills t.samples and t.labels from a record and returns its sample time.
func (t *Task) extract(r *connect.Record) (time.Time, error) {
	v, ok := r.Value.(map[string]any)
	if !ok {
		return time.Time{}, connect.BadField("", r.Value, "the record value is not a struct or JSON object")
	}
	t.labels = t.labels[:0]
	for i, p := range t.labelPaths {
		lv, err := labelValue(lookup(v, p))
		if err != nil {
			return time.Time{}, connect.BadField(t.cfg.LabelFields[i], lookup(v, p), "label: %s", err.Error())
		}
		if len(lv) > t.cfg.MaxLabelLength {
			return time.Time{}, connect.BadField(t.cfg.LabelFields[i], lv, "label value is %d bytes long, over label.value.max.length %d", len(lv), t.cfg.MaxLabelLength)
		}
		t.labels = append(t.labels, lv)
	}
	base := ""
	if t.namePath != nil {
		raw := lookup(v, t.namePath)
		s, ok := raw.(string)
		if !ok || s == "" {
			return time.Time{}, connect.BadField(t.cfg.MetricNameField, raw, "metric name: want a non-empty string")
		}
		if len(s) > t.cfg.MaxLabelLength {
			return time.Time{}, connect.BadField(t.cfg.MetricNameField, raw, "metric name is %d bytes long, over label.value.max.length %d", len(s), t.cfg.MaxLabelLength)
		}
		base = sanitizeName(s, true)
		if strings.HasPrefix(base, ownPrefix) {
			return time.Time{}, connect.BadField(t.cfg.MetricNameField, raw, "metric name: names starting with %s are the connector's own", ownPrefix)
		}
	}
	t.samples = t.samples[:0]
	for i, p := range t.valuePaths {
		raw := lookup(v, p)
		f, err := number(raw)
		if err != nil {
			return time.Time{}, connect.BadField(t.cfg.ValueFields[i], raw, "value: %s", err.Error())
		}
		name := base
		switch {
		case t.names != nil:
			name = t.names[i]
		case len(t.valuePaths) > 1:
			name = base + "_" + sanitizeName(t.cfg.ValueFields[i], true)
		}
		t.samples = append(t.samples, sample{name, f})
	}
	if !t.cfg.Timestamps {
		return time.Time{}, nil
	}
	if t.timePath == nil {
		return r.Time, nil
	}
	raw := lookup(v, t.timePath)
	at, err := timestamp(raw)
	if err != nil {
		return time.Time{}, connect.BadField(t.cfg.TimestampField, raw, "timestamp: %s", err.Error())
	}
	return at, nil
}

// lookup follows a dotted path into nested objects; nil when a step is missing.
func lookup(v map[string]any, path []string) any {
	var cur any = v
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, errors.New("not a number")
		}
		return f, nil
	case nil:
		return 0, errors.New("missing")
	}
	return 0, fmt.Errorf("a %T is not a number", v)
}

func labelValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case int:
		return strconv.Itoa(x), nil
	case nil:
		return "", errors.New("missing")
	}
	return "", fmt.Errorf("a %T cannot be a label value", v)
}

func timestamp(v any) (time.Time, error) {
	if s, ok := v.(string); ok {
		return time.Parse(time.RFC3339Nano, s)
	}
	ms, err := number(v)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(ms)), nil
}

// PreCommit lets everything be committed: the samples are served from memory.
func (t *Task) PreCommit(_ context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	return offsets, nil
}

// Stop pushes the samples a last time when remote writing, and closes the scrape endpoint.
func (t *Task) Stop() error {
	if t.stopTick == nil {
		return nil
	}
	close(t.stopTick)
	t.stopTick = nil
	if t.remote != nil {
		t.remote.stop()
	}
	if t.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := t.srv.Shutdown(ctx)
	if err != nil {
		err = t.srv.Close()
	}
	<-t.served
	t.srv = nil
	return err
}
