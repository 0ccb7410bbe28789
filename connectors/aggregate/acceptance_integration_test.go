package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/connectors/aggregate"
)

// The aggregate connector is a stream processor hosted as a source connector: its task
// consumes the raw topic and produces the aggregate topic itself, in Kafka transactions, and
// its Poll returns no records. connecttest.CheckSource, which compares what Poll returns,
// cannot apply. This is its variant, done by hand as the runtime would host the task: the
// connector and one task are started (every call into them under connecttest.Goroutines),
// frames made of the acceptance rows are produced to the raw topic of the test Kafka (each
// row a device of its own, so each row is a window of one frame), the task is polled until
// the aggregate topic holds every row's window, read back by a read_committed consumer, with
// the row's reading as every aggregate of it. The task is then stopped and a new one started
// (it restores its state from the changelog and resumes at the offsets its transactions
// committed) and as many rows again go the same way: no window of the first rows may come
// again (exactly once). Last, no goroutine the connector started may outlive its Stop.
func TestAcceptance(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	run := connecttest.UniqueName("acc")
	raw, out, changelog := run+"-raw", run+"-agg", run+"-changelog"
	createTopics(t, bootstrap, []string{raw, out}, changelog)
	const n = 20
	const windowMs = 10_000
	base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()

	p := connecttest.Registered(t, aggregate.Name)
	g := connecttest.TrackGoroutines(p.Name)
	do := func(f func() error) error {
		var err error
		g.Do(func() { err = f() })
		return err
	}
	cfg := connect.Config{"name": run, "connector.class": p.Name, "tasks.max": "1",
		"kafka.bootstrap.servers": bootstrap, "kafka.group.id": run, "source.topic": raw, "output.topic": out,
		"changelog.topic": changelog, "group.by": "device_id", "value.fields": "temperature",
		"event.time.field": "ts", "dedupe.field": "frame_id", "window.size": "10s", "watermark.out.of.order": "0",
		"allowed.lateness": "0", "commit.interval": "200", "topic.replication.factor": "-1"}
	conn := p.New().(connect.SourceConnector)
	if err := do(func() error { return conn.Start(t.Context(), cfg, &connecttest.ConnectorContext{T: t}) }); err != nil {
		t.Fatalf("connector Start: %v", err)
	}
	connStopped := false
	t.Cleanup(func() {
		if !connStopped {
			_ = do(conn.Stop)
		}
	})
	var taskCfgs []connect.Config
	if err := do(func() (err error) { taskCfgs, err = conn.TaskConfigs(1); return err }); err != nil || len(taskCfgs) != 1 {
		t.Fatalf("TaskConfigs(1) = %d configurations, %v", len(taskCfgs), err)
	}
	sc := connecttest.NewSourceContext(t, 0)
	sc.Name = run
	results := newResultReader(t, bootstrap, out)
	producer := newFrameProducer(t, bootstrap, raw)

	// phase runs a task over rows from..to-1, their frames at windowStart, and a frame per
	// partition at closeAt that closes their windows.
	phase := func(when string, from, to int, windowStart, closeAt int64) {
		t.Helper()
		task := conn.NewTask()
		if err := do(func() error { return task.Start(t.Context(), taskCfgs[0], sc) }); err != nil {
			t.Fatalf("%s: task Start: %v", when, err)
		}
		stopped := false
		defer func() {
			if !stopped {
				_ = do(task.Stop)
			}
		}()
		for i := from; i < to; i++ {
			row := connecttest.Row(run, i)
			producer.frame(int32(i%2), map[string]any{"device_id": row["id"], "frame_id": row["id"],
				"ts": windowStart + int64(i), "temperature": row["reading"]})
		}
		for part := range int32(2) {
			producer.frame(part, map[string]any{"device_id": fmt.Sprintf("end-%d", part), "frame_id": fmt.Sprintf("end-%d-%d", part, closeAt), "ts": closeAt})
		}
		producer.flush()
		deadline := time.Now().Add(2 * time.Minute)
		for !results.have(run, to) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: after 2m the aggregate topic holds %d of the %d windows", when, results.count(run), to)
			}
			if err := do(func() error { _, err := task.Poll(t.Context()); return err }); err != nil {
				if !connect.IsRetriable(err) {
					t.Fatalf("%s: Poll: %v", when, err)
				}
				t.Logf("%s: Poll: %v", when, err) // e.g. topics just created not in the metadata yet
			}
			results.read()
		}
		for i := from; i < to; i++ {
			row := connecttest.Row(run, i)
			results.check(when, i, row["id"].(string), row["reading"].(float64), windowStart)
		}
		if len(sc.Reported) > 0 {
			t.Fatalf("%s: %d frames went to the error policy, the first for %v", when, len(sc.Reported), sc.Reasons[0])
		}
		stopped = true
		if err := do(task.Stop); err != nil {
			t.Errorf("%s: task Stop: %v", when, err)
		}
	}
	phase("before the restart", 0, n, base, base+2*windowMs)
	phase("after the restart", n, 2*n, base+3*windowMs, base+5*windowMs)
	if dup := results.duplicates(run); len(dup) > 0 {
		t.Errorf("windows emitted more than once (the task is exactly once): %v", dup)
	}

	connStopped = true
	if err := do(conn.Stop); err != nil {
		t.Errorf("connector Stop: %v", err)
	}
	g.CheckStopped(t, time.Minute)
}

// createTopics creates topics of two partitions on the test Kafka; they and the others named
// are deleted when the test ends.
func createTopics(t *testing.T, bootstrap string, topics []string, others ...string) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	var specs []kafka.TopicSpecification
	for _, topic := range topics {
		specs = append(specs, kafka.TopicSpecification{Topic: topic, NumPartitions: 2, ReplicationFactor: -1})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(ctx, specs)
	if err != nil {
		t.Fatalf("creating topics %v: %v", topics, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			t.Fatalf("creating topic %s: %v", r.Topic, r.Error)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.DeleteTopics(ctx, append(topics, others...))
	})
}

// frameProducer writes JSON frames to the raw topic.
type frameProducer struct {
	t     *testing.T
	p     *kafka.Producer
	topic string
	sent  int
}

func newFrameProducer(t *testing.T, bootstrap, topic string) *frameProducer {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "acks": "all", "log_level": 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &frameProducer{t: t, p: p, topic: topic}
}

func (f *frameProducer) frame(partition int32, v map[string]any) {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &f.topic, Partition: partition},
		Key: []byte(fmt.Sprint(v["device_id"])), Value: b}, nil); err != nil {
		f.t.Fatalf("producing a frame: %v", err)
	}
	f.sent++
}

// flush waits until Kafka acknowledged every frame.
func (f *frameProducer) flush() {
	f.t.Helper()
	for acked := 0; acked < f.sent; {
		select {
		case ev := <-f.p.Events():
			if m, ok := ev.(*kafka.Message); ok {
				if m.TopicPartition.Error != nil {
					f.t.Fatalf("producing a frame: %v", m.TopicPartition.Error)
				}
				acked++
			}
		case <-time.After(30 * time.Second):
			f.t.Fatalf("%d of %d frames acknowledged after 30s", acked, f.sent)
		}
	}
	f.sent = 0
}

// resultReader reads the aggregate topic as a read_committed consumer.
type resultReader struct {
	t       *testing.T
	c       *kafka.Consumer
	byGroup map[string][]map[string]any
}

func newResultReader(t *testing.T, bootstrap, topic string) *resultReader {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": connecttest.UniqueName("acc-check"),
		"isolation.level": "read_committed", "enable.auto.commit": false, "log_level": 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Assign([]kafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: kafka.OffsetBeginning},
		{Topic: &topic, Partition: 1, Offset: kafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	return &resultReader{t: t, c: c, byGroup: map[string][]map[string]any{}}
}

// read takes what the topic holds beyond what was read.
func (r *resultReader) read() {
	r.t.Helper()
	for {
		m, err := r.c.ReadMessage(100 * time.Millisecond)
		var ke kafka.Error
		if errors.As(err, &ke) && ke.Code() == kafka.ErrTimedOut {
			return
		}
		if err != nil {
			r.t.Fatalf("reading the aggregate topic: %v", err)
		}
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			r.t.Fatalf("aggregate %s: %v", m.Value, err)
		}
		g, _ := v["device_id"].(string)
		r.byGroup[g] = append(r.byGroup[g], v)
	}
}

// count is how many of the run's rows have a window result.
func (r *resultReader) count(run string) int {
	n := 0
	for g := range r.byGroup {
		if strings.HasPrefix(g, run+"-") {
			n++
		}
	}
	return n
}

func (r *resultReader) have(run string, rows int) bool { return r.count(run) >= rows }

// check compares the window of row n with the frame made of it: one frame, its reading as
// every aggregate.
func (r *resultReader) check(when string, n int, id string, reading float64, windowStart int64) {
	r.t.Helper()
	res := r.byGroup[id]
	if len(res) == 0 {
		r.t.Errorf("%s: record %d (device %q): no window", when, n, id)
		return
	}
	v := res[0]
	want := map[string]any{"frames": 1.0, "revision": 0.0, "final": true, "temperature_count": 1.0,
		"window_start": time.UnixMilli(windowStart).UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	for _, agg := range []string{"min", "max", "avg", "sum", "first", "last"} {
		want["temperature_"+agg] = reading
	}
	for k, w := range want {
		if got, ok := v[k]; !ok || got != w {
			r.t.Errorf("%s: record %d (device %q): field %q = %v (%T), want %v (%T)", when, n, id, k, got, got, w, w)
		}
	}
}

// duplicates lists the run's groups with more than one window result.
func (r *resultReader) duplicates(run string) []string {
	var out []string
	for g, res := range r.byGroup {
		if strings.HasPrefix(g, run+"-") && len(res) > 1 {
			out = append(out, fmt.Sprintf("%s x%d", g, len(res)))
		}
	}
	return out
}
