package task

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluicehq/sluice/worker/api"
)

// Metrics are the worker's Prometheus metrics, labelled by connector and task.
type Metrics struct {
	Registry      *prometheus.Registry
	sourcePolled  *prometheus.CounterVec
	sourceWritten *prometheus.CounterVec
	sinkRead      *prometheus.CounterVec
	sinkPut       *prometheus.CounterVec
	errors        *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	batchSeconds  *prometheus.HistogramVec
	commits       *prometheus.CounterVec
	lastCommit    *prometheus.GaugeVec
	taskState     *prometheus.GaugeVec
	TaskRestarts  *prometheus.CounterVec
	sinkLag       *prometheus.GaugeVec
	putRetries    *prometheus.CounterVec
	pollRetries   *prometheus.CounterVec
}

func NewMetrics() *Metrics {
	tl := []string{"connector", "task"}
	m := &Metrics{
		Registry:      prometheus.NewRegistry(),
		sourcePolled:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_records_polled_total", Help: "Records source tasks returned from poll."}, tl),
		sourceWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_records_written_total", Help: "Source records Kafka acknowledged."}, tl),
		sinkRead:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_records_read_total", Help: "Records sink tasks read from Kafka."}, tl),
		sinkPut:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_records_put_total", Help: "Records sink tasks were handed in put."}, tl),
		errors:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_task_errors_total", Help: "Record errors by processing stage."}, append(tl, "stage")),
		deadLettered:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_dead_letter_records_total", Help: "Records written to the dead-letter topic."}, tl),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_batch_duration_seconds", Help: "Time a task spent in poll or put per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, append(tl, "op")),
		commits:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_offset_commits_total", Help: "Offset commits by result."}, append(tl, "result")),
		lastCommit:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_offset_commit_last_success_timestamp_seconds", Help: "When offsets were last committed; time() minus it is the commit age."}, tl),
		taskState:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_task_state", Help: "1 for the state each task is in."}, append(tl, "state")),
		TaskRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_task_restarts_total", Help: "Automatic restarts of failed tasks."}, tl),
		sinkLag:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sink_records_lag", Help: "Records in a sink task's partitions not yet handed to put, as of the last fetch (updated every offset flush)."}, tl),
		putRetries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_put_retries_total", Help: "Puts that failed with a retriable error and were retried with the same records."}, tl),
		pollRetries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_poll_retries_total", Help: "Polls that failed with a retriable error and were retried."}, tl),
	}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.sourcePolled, m.sourceWritten, m.sinkRead, m.sinkPut, m.errors, m.deadLettered, m.batchSeconds, m.commits,
		m.lastCommit, m.taskState, m.TaskRestarts, m.sinkLag, m.putRetries, m.pollRetries)
	return m
}

// TaskMetrics are the metrics of one task, with its labels applied once.
type TaskMetrics struct {
	polled, written, read, put, deadLettered prometheus.Counter
	errors                                   *prometheus.CounterVec
	poll, putTime                            prometheus.Observer
	commitOK, commitFailed                   prometheus.Counter
	lastCommit                               prometheus.Gauge
	lag                                      prometheus.Gauge
	putRetries, pollRetries                  prometheus.Counter
}

func (m *Metrics) Task(id api.TaskID) *TaskMetrics {
	l := prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task)}
	return &TaskMetrics{
		polled:       m.sourcePolled.With(l),
		written:      m.sourceWritten.With(l),
		read:         m.sinkRead.With(l),
		put:          m.sinkPut.With(l),
		deadLettered: m.deadLettered.With(l),
		errors:       m.errors.MustCurryWith(l),
		poll:         m.batchSeconds.With(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task), "op": "poll"}),
		putTime:      m.batchSeconds.With(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task), "op": "put"}),
		commitOK:     m.commits.With(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task), "result": "success"}),
		commitFailed: m.commits.With(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task), "result": "failure"}),
		lastCommit:   m.lastCommit.With(l),
		lag:          m.sinkLag.With(l),
		putRetries:   m.putRetries.With(l),
		pollRetries:  m.pollRetries.With(l),
	}
}

var allStates = []api.State{api.StateUnassigned, api.StateRunning, api.StatePaused, api.StateFailed, api.StateRestarting}

func (m *Metrics) SetTaskState(id api.TaskID, st api.State) {
	for _, s := range allStates {
		v := 0.0
		if s == st {
			v = 1
		}
		m.taskState.WithLabelValues(id.Connector, strconv.Itoa(id.Task), string(s)).Set(v)
	}
}

func (m *Metrics) ForgetTask(id api.TaskID) {
	m.taskState.DeletePartialMatch(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task)})
	m.sinkLag.DeletePartialMatch(prometheus.Labels{"connector": id.Connector, "task": strconv.Itoa(id.Task)})
}
