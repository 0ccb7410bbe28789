package prometheussink

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
)

// remoteWriter pushes a store's samples to a remote-write receiver every interval, in
// requests of at most batch samples, through client_golang's remote-write client (protobuf
// prometheus.WriteRequest, snappy-compressed, remote write 1.0), which retries 5xx and 429
// answers with backoff.
type remoteWriter struct {
	api        *remote.API
	transport  *http.Transport // the writer's own, whose idle connections stop closes
	store      *store
	own        prometheus.Gatherer // the task's own metrics, pushed too; nil when scraped
	labelNames []string
	timestamps bool // send each sample once with its own timestamp, not every series each push
	interval   time.Duration
	batch      int
	log        *slog.Logger
	now        func() time.Time

	sent, failures, retries prometheus.Counter

	mu      sync.Mutex // serializes pushes
	pushed  uint64     // the store generation up to which samples were delivered (timestamps)
	cancel  context.CancelFunc
	done    chan struct{}
	timeout time.Duration
}

func newRemoteWriter(c Config, s *store, own prometheus.Gatherer, log *slog.Logger, sent, failures, retries prometheus.Counter) (*remoteWriter, error) {
	headers, err := c.remoteHeaders()
	if err != nil {
		return nil, err
	}
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("http.DefaultTransport is not an *http.Transport")
	}
	transport := base.Clone()
	rt := &authTransport{next: transport, user: c.RemoteUser, password: c.RemotePassword, token: c.RemoteToken, headers: headers}
	log = log.With("remote_write_url", redactURL(c.RemoteWriteURL))
	w := &remoteWriter{transport: transport, store: s, own: own, labelNames: s.labelNames, timestamps: c.Timestamps, interval: c.RemoteInterval,
		batch: c.RemoteBatch, log: log, now: time.Now, sent: sent, failures: failures, retries: retries, timeout: c.RemoteTimeout}
	w.api, err = remote.NewAPI(c.RemoteWriteURL,
		remote.WithAPIPath(""), // the URL is the whole endpoint
		remote.WithAPIHTTPClient(&http.Client{Transport: rt, Timeout: c.RemoteTimeout}),
		remote.WithAPIBackoff(remote.BackoffConfig{Min: c.RemoteBackoff, Max: c.RemoteBackoffMax, MaxRetries: c.RemoteRetries}),
	)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// redactURL is the URL without its query, which may carry a token, for logs.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// authTransport adds authentication and the configured headers to each request.
type authTransport struct {
	next                  http.RoundTripper
	user, password, token string
	headers               http.Header
}

func (a *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range a.headers {
		r.Header[k] = slices.Clone(v)
	}
	switch {
	case a.user != "":
		r.SetBasicAuth(a.user, a.password)
	case a.token != "":
		r.Header.Set("Authorization", "Bearer "+a.token)
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", "sluice-prometheus-sink")
	}
	return a.next.RoundTrip(r)
}

// start pushes every interval until stop.
func (w *remoteWriter) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		tick := time.NewTicker(w.interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				w.push(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
}

// stop ends the pushes, then pushes once more, for at most the request timeout, so that the
// latest samples are not lost when the task stops or moves, and closes the connections kept
// alive for the next push (each an idle connection and two goroutines of net/http until the
// transport's idle timeout).
func (w *remoteWriter) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	w.push(ctx)
	w.transport.CloseIdleConnections()
}

// push sends the samples due, in batches, then the task's own metrics when they are not
// scraped, in requests of their own so that a sample the receiver refuses does not take them
// along. A batch the receiver refuses (4xx other than 429) is dropped; one that still fails
// after the retries ends the push, and its samples go with the next one. Errors are logged and
// counted, never returned: the task carries on.
func (w *remoteWriter) push(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	series, gen := w.snapshot(now)
	if !w.send(ctx, series, w.sent) {
		return
	}
	w.pushed = gen
	w.send(ctx, w.ownSeries(now), nil)
}

// send writes series in batches and counts the samples accepted in sent, when not nil. It
// returns false when a batch failed after its retries, or the push was cancelled.
func (w *remoteWriter) send(ctx context.Context, series []prompb.TimeSeries, sent prometheus.Counter) bool {
	for len(series) > 0 {
		n, end := 0, 0
		for end < len(series) && (n == 0 || n+len(series[end].Samples) <= w.batch) {
			n += len(series[end].Samples)
			end++
		}
		req := &prompb.WriteRequest{Timeseries: series[:end]}
		series = series[end:]
		_, err := w.api.Write(ctx, remote.WriteV1MessageType, req, remote.WithWriteRetryCallback(func(err error) {
			w.retries.Inc()
			w.log.Warn("remote write failed; retrying", "err", err, "samples", n)
		}))
		switch {
		case err == nil:
			if sent != nil {
				sent.Add(float64(n))
			}
			continue
		case ctx.Err() != nil:
			return false // stopping: stop pushes once more
		}
		w.failures.Inc()
		var retryable interface{ RetryAfter() time.Duration }
		if errors.As(err, &retryable) {
			w.log.Error("remote write failed after its retries; the samples go with the next push", "err", err, "samples", n)
			return false
		}
		w.log.Error("remote write refused; samples dropped", "err", err, "samples", n)
	}
	return true
}

// snapshot returns the store's series to send, each with one sample, and the store's
// generation it reflects. Without timestamps that is every series, stamped now; with them,
// those updated since the last delivered push, with their own timestamps.
func (w *remoteWriter) snapshot(now time.Time) ([]prompb.TimeSeries, uint64) {
	s := w.store
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	out := make([]prompb.TimeSeries, 0, len(s.series))
	for _, se := range s.series {
		at := now
		if w.timestamps {
			if se.gen <= w.pushed {
				continue
			}
			if !se.at.IsZero() {
				at = se.at
			}
		}
		labels := make([]prompb.Label, 0, len(se.labels)+1)
		labels = append(labels, prompb.Label{Name: "__name__", Value: se.family.name})
		for i, v := range se.labels {
			if v != "" { // an empty label is no label, as in a scrape
				labels = append(labels, prompb.Label{Name: w.labelNames[i], Value: v})
			}
		}
		out = append(out, timeSeries(labels, se.value, at))
	}
	return out, s.gen
}

// timeSeries makes a series of one sample, its labels sorted by name as the protocol wants.
func timeSeries(labels []prompb.Label, v float64, at time.Time) prompb.TimeSeries {
	slices.SortFunc(labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return prompb.TimeSeries{Labels: labels, Samples: []prompb.Sample{{Value: v, Timestamp: at.UnixMilli()}}}
}

// ownSeries is the task's own counters and gauges, stamped now, when they are not scraped.
func (w *remoteWriter) ownSeries(now time.Time) []prompb.TimeSeries {
	if w.own == nil {
		return nil
	}
	families, err := w.own.Gather()
	if err != nil {
		w.log.Warn("gathering the task's own metrics", "err", err)
	}
	var out []prompb.TimeSeries
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			labels := []prompb.Label{{Name: "__name__", Value: f.GetName()}}
			for _, l := range m.GetLabel() {
				labels = append(labels, prompb.Label{Name: l.GetName(), Value: l.GetValue()})
			}
			out = append(out, timeSeries(labels, v, now))
		}
	}
	return out
}
