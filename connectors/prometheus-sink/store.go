package prometheussink

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ownPrefix starts the names of the connector's own metrics; records may not use it.
const ownPrefix = "sluice_prometheus_sink_"

// series is the latest sample of one metric name and label values.
type series struct {
	family *family
	labels []string // label values, in the order of the label fields; never changed
	value  float64
	at     time.Time // the sample's timestamp, when timestamps are exposed
	seen   time.Time // when it was last updated, for the TTL
	gen    uint64    // the store's generation when it was last updated, for remote write
}

// family is one metric name: its descriptor and how many series use it.
type family struct {
	name string
	desc *prometheus.Desc
	n    int
}

// store keeps the latest sample per series, at most max of them, forgetting those not updated
// for ttl. It is a prometheus.Collector of the series it holds.
type store struct {
	labelNames []string
	help       string
	valueType  prometheus.ValueType
	timestamps bool
	max        int
	ttl        time.Duration
	now        func() time.Time

	dropped, expired prometheus.Counter

	mu       sync.Mutex
	series   map[string]*series
	families map[string]*family
	key      []byte // scratch for set
	gen      uint64 // counts the calls of set
}

func newStore(c Config, dropped, expired prometheus.Counter) *store {
	s := &store{help: c.Help, valueType: prometheus.GaugeValue, timestamps: c.Timestamps, max: c.MaxSeries, ttl: c.TTL,
		now: time.Now, dropped: dropped, expired: expired, series: map[string]*series{}, families: map[string]*family{}}
	if c.MetricType == TypeCounter {
		s.valueType = prometheus.CounterValue
	}
	for _, f := range c.LabelFields {
		s.labelNames = append(s.labelNames, labelName(f))
	}
	return s
}

// sample is one value to store.
type sample struct {
	name  string
	value float64
}

// set stores the samples of one record, which share label values and timestamp. A sample of
// a new series past the limit is dropped and counted; set then returns the first such series,
// as name{label="value",...}, else "".
func (s *store) set(samples []sample, labels []string, at time.Time) (dropped string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for _, sm := range samples {
		k := append(s.key[:0], sm.name...)
		for _, l := range labels {
			k = append(append(k, 0xff), l...)
		}
		s.key = k
		if se, ok := s.series[string(k)]; ok {
			se.value, se.at, se.seen, se.gen = sm.value, at, now, s.gen
			continue
		}
		if len(s.series) >= s.max {
			s.dropped.Inc()
			if dropped == "" {
				dropped = s.describe(sm.name, labels)
			}
			continue
		}
		f := s.families[sm.name]
		if f == nil {
			f = &family{name: sm.name, desc: prometheus.NewDesc(sm.name, s.help, s.labelNames, nil)}
			s.families[sm.name] = f
		}
		f.n++
		s.series[string(k)] = &series{family: f, labels: append([]string(nil), labels...), value: sm.value, at: at, seen: now, gen: s.gen}
	}
	return dropped
}

// describe writes a series as name{label="value",...}, with long values cut.
func (s *store) describe(name string, labels []string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		if len(l) > 64 {
			l = l[:64] + "..."
		}
		fmt.Fprintf(&b, "%s=%q", s.labelNames[i], l)
	}
	b.WriteByte('}')
	return b.String()
}

// expire removes the series not updated for the TTL; the caller holds s.mu.
func (s *store) expireLocked(now time.Time) {
	if s.ttl <= 0 {
		return
	}
	cutoff := now.Add(-s.ttl)
	for k, se := range s.series {
		if se.seen.Before(cutoff) {
			delete(s.series, k)
			s.expired.Inc()
			if se.family.n--; se.family.n == 0 {
				delete(s.families, se.family.name)
			}
		}
	}
}

// expire removes the series not updated for the TTL.
func (s *store) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
}

// len is the number of series held.
func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.series)
}

// Describe sends nothing: the metric names come from the records, so the store is an
// unchecked collector.
func (s *store) Describe(chan<- *prometheus.Desc) {}

// Collect expires what is due and sends the rest. It copies the samples under the lock and
// builds the metrics outside it, so that a scrape holds up Put only for the copy.
func (s *store) Collect(ch chan<- prometheus.Metric) {
	type snap struct {
		desc   *prometheus.Desc
		labels []string
		value  float64
		at     time.Time
	}
	s.mu.Lock()
	s.expireLocked(s.now())
	out := make([]snap, 0, len(s.series))
	for _, se := range s.series {
		out = append(out, snap{se.family.desc, se.labels, se.value, se.at})
	}
	s.mu.Unlock()
	for _, sn := range out {
		m, err := prometheus.NewConstMetric(sn.desc, s.valueType, sn.value, sn.labels...)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(sn.desc, err)
			continue
		}
		if s.timestamps && !sn.at.IsZero() {
			m = prometheus.NewMetricWithTimestamp(sn.at, m)
		}
		ch <- m
	}
}
