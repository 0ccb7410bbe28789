package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/simulate"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// TestLatencyUnderLoad measures publish -> visible at a sustained rate (SLUICE_LATENCY_RATE,
// 2,000 frames/s by default; `make bench` runs it): the simulator publishes over MQTT QoS 1
// to one worker running mqtt-source -> Kafka (3 partitions) -> mongodb-sink and timescale-sink
// (a hypertable), each with the settings a user starts with. Every 40th frame is watched by id
// in both stores every 5 ms (more often, or more frames, and the queries themselves load
// mongo-java-server); its latency is from the simulator's sent_at_ms to the first query that
// found it. It prints (BENCH e2e_latency_load) the p50 and p99 of each store, of the topic and
// of an MQTT subscriber of its own; the p99 of the watcher's queries of each store (how fast
// the store answers under this load); and the share of the run in which the kernel saw a task
// waiting for a CPU (/proc/pressure/cpu), which the tail follows on a shared machine.
func TestLatencyUnderLoad(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("latency harness skipped: set SLUICE_BENCH=1 to run it")
	}
	rate := 2000.0
	if v := os.Getenv("SLUICE_LATENCY_RATE"); v != "" {
		rate, _ = strconv.ParseFloat(v, 64)
	}
	const seconds, warmSeconds = 20, 10
	v := connecttest.Envs(t, connecttest.EnvPostgres, connecttest.EnvMQTT, connecttest.EnvMongoDB)
	pgURL, mqttURL, mongoURL := v[0], v[1], v[2]
	c := sluicetest.NewCluster(t)
	// SLUICE_LATENCY_WORKER_SETTINGS="k=v,k=v" adds worker settings, to measure them.
	wk := c.StartProcess(sluicetest.SettingsFromEnv("SLUICE_LATENCY_WORKER_SETTINGS", nil))
	raw := c.Prefix + "-raw"
	createTopics(t, c.Bootstrap, map[string]int{raw: 3})
	mdb := mongoDatabase(t, mongoURL)
	pg, schema := pgSchema(t, pgURL)
	t.Cleanup(wk.Kill) // before the stores go
	root := c.Prefix + "/sensors"
	for name, cfg := range map[string]map[string]string{
		"mqtt": {"connector.class": "mqtt-source", "mqtt.server.uris": mqttURL, "mqtt.topics": root + "/#", "mqtt.qos": "1",
			"kafka.topic": raw, "key.source": "field", "key.field": "device_id", "payload.format": "json"},
		"mongo": {"connector.class": "mongodb-sink", "topics": raw, "connection.uri": mongoURL, "database": mdb.Name(),
			"collection": "raw", "id.strategy": "fields", "id.fields": "frame_id"},
		"ts": {"connector.class": "timescale-sink", "topics": raw, "connection.url": pgURL, "table": schema + ".raw",
			"time.field": "ts", "auto.create": "true", "insert.mode": "upsert", "key.columns": "frame_id,time"},
	} {
		sluicetest.CreateConnector(t, wk.URL, c.Prefix+"-"+name, cfg)
		sluicetest.WaitState(t, wk.URL, c.Prefix+"-"+name, api.StateRunning, 1)
	}
	run := func(count int, w *watcher) simulate.Summary {
		sum, err := simulate.Run(t.Context(), simulate.Config{Broker: mqttURL, ClientID: c.Prefix + "-sim", Topic: root + "/{place}/{device}",
			Devices: 100, Places: 10, Rate: rate, QoS: 1, Count: count, Seed: uint64(count),
			OnSent: func(s simulate.Sent) { w.onSent(s.Frame) }})
		if err != nil || sum.Errors > 0 || sum.Sent != count {
			t.Fatalf("simulator: %v, %s", err, sum)
		}
		return sum
	}

	// Warm-up: ten seconds at the same rate, watched the same way, so that neither joining
	// the consumer groups nor the servers' first minutes (the JVMs of the broker and of
	// mongo-java-server compile their hot paths then) are measured: in a run straight after
	// `testenv up`, the machine waited for a CPU 85-97% of the time and every p99 doubled.
	warm := watch(t.Context(), pg, schema, mdb.Collection("raw"), 40)
	run(int(rate)*warmSeconds, warm)
	warm.await(t, 2*time.Minute)

	w := watch(t.Context(), pg, schema, mdb.Collection("raw"), 40)
	w.readTopic(t.Context(), t, c.Bootstrap, raw, 3)
	w.subscribe(t, mqttURL, root+"/#", c.Prefix+"-watcher")
	stallFrom, stallOK := cpuStall()
	measuredFrom := time.Now()
	sum := run(int(rate)*seconds, w)
	stall := stallShare(stallFrom, measuredFrom, stallOK)
	w.await(t, time.Minute)
	line := fmt.Sprintf("BENCH e2e_latency_load rate=%.0f frames=%d watched=%d mongodb_p50_ms=%.1f mongodb_p99_ms=%.1f postgres_p50_ms=%.1f postgres_p99_ms=%.1f kafka_p50_ms=%.1f kafka_p99_ms=%.1f mqtt_p50_ms=%.1f mqtt_p99_ms=%.1f mongodb_query_p99_ms=%.1f postgres_query_p99_ms=%.1f cpu_stall_pct=%.0f",
		float64(sum.Sent)/sum.Seconds, sum.Sent, len(w.at), w.pct(0, 0.5), w.pct(0, 0.99), w.pct(1, 0.5), w.pct(1, 0.99), w.pct(2, 0.5), w.pct(2, 0.99), w.pct(3, 0.5), w.pct(3, 0.99), w.queryPct(0, 0.99), w.queryPct(1, 0.99), stall)
	fmt.Println(line)
	t.Logf("%s (max %.0f / %.0f ms; each store is asked every %v for the watched frames it does not show yet)", line, w.pct(0, 1), w.pct(1, 1), watchEvery)
}

// watchEvery is how often a watcher asks each store for the frames it waits for.
const watchEvery = 5 * time.Millisecond

// watcher notes when each watched frame becomes visible in MongoDB (store 0) and in
// PostgreSQL (store 1), asking each by id for the frames still missing there; when it
// reaches the Kafka topic (store 2, read by a consumer of its own): the part of the latency
// that is the source's; and when a subscriber of its own gets it from the MQTT broker (store
// 3): the floor under the source's part, which no worker can go below.
type watcher struct {
	pg    *pgxpool.Pool
	table string
	coll  *mongo.Collection
	every int
	mu    sync.Mutex
	n     int
	at    map[string]int64   // watched frame id -> sent_at_ms
	seen  [2]map[string]bool // by store
	lat   [4][]float64       // by store, ms
	sent  bool               // the simulator is done
	errs  [2]error           // the last query error of each store
	took  [2][]float64       // how long each query of a store took, ms: the store's own pace
	wg    sync.WaitGroup
	// inKafka is when each frame (watched or not: the consumer may see a frame before the
	// simulator reports it sent) reached the topic.
	inKafka map[string]time.Time
	// inMQTT is when the watcher's own MQTT subscriber got each frame.
	inMQTT map[string]time.Time
}

// watch starts asking both stores, until ctx ends or, once the simulator is done, every
// watched frame was seen in each.
func watch(ctx context.Context, pg *pgxpool.Pool, schema string, coll *mongo.Collection, every int) *watcher {
	w := &watcher{pg: pg, table: schema + ".raw", coll: coll, every: every, at: map[string]int64{}, seen: [2]map[string]bool{{}, {}}, inKafka: map[string]time.Time{}, inMQTT: map[string]time.Time{}}
	for store := range 2 {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				ids, done := w.missing(store)
				if done {
					return
				}
				if len(ids) > 0 {
					start := time.Now()
					got, err := w.query(ctx, store, ids)
					now := time.Now()
					w.found(store, got, now, now.Sub(start), err)
				}
				time.Sleep(watchEvery)
			}
		}()
	}
	return w
}

// readTopic notes when each frame reaches the topic, from the end the topic has now.
func (w *watcher) readTopic(ctx context.Context, t *testing.T, bootstrap, topic string, partitions int) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": topic + "-latency",
		"enable.auto.commit": false, "go.logs.channel.enable": false})
	if err != nil {
		t.Fatal(err)
	}
	// From the end offsets of now, not OffsetEnd: librdkafka resolves that when it first
	// fetches, after the simulator may have started, and the frames before it would never
	// be seen (the watcher then waited out its whole timeout).
	var tps []kafka.TopicPartition
	for p := range partitions {
		_, high, err := c.QueryWatermarkOffsets(topic, int32(p), 10000)
		if err != nil {
			t.Fatal(err)
		}
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: int32(p), Offset: kafka.Offset(high)})
	}
	if err := c.Assign(tps); err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer c.Close()
		for ctx.Err() == nil {
			m, ok := c.Poll(20).(*kafka.Message)
			if !ok {
				if w.finishedKafka() {
					return
				}
				continue
			}
			w.arrived(w.inKafka, m.Value, time.Now())
		}
	}()
}

// subscribe notes when each frame published under filter reaches a subscriber of the
// watcher's own (QoS 1, as mqtt-source subscribes).
func (w *watcher) subscribe(t *testing.T, broker, filter, clientID string) {
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan error, 1)
	cm, err := autopaho.NewConnection(t.Context(), autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			_, err := cm.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
			select {
			case subscribed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
				w.arrived(w.inMQTT, p.Packet.Payload, time.Now())
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cm.Disconnect(context.Background()) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("subscribing to %s: %v", filter, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no subscription to %s within 20 s", filter)
	}
}

// arrived notes in seen when the frame in payload (as published, or as the source wrote
// it) first arrived.
func (w *watcher) arrived(seen map[string]time.Time, payload []byte, now time.Time) {
	var f struct {
		FrameID string `json:"frame_id"`
		Payload struct {
			FrameID string `json:"frame_id"`
		} `json:"payload"`
	}
	if json.Unmarshal(payload, &f) != nil {
		return
	}
	id := cmp.Or(f.FrameID, f.Payload.FrameID)
	w.mu.Lock()
	if _, ok := seen[id]; !ok {
		seen[id] = now
	}
	w.mu.Unlock()
}

// finishedKafka says whether the simulator is done and every watched frame reached the topic.
func (w *watcher) finishedKafka() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent {
		return false
	}
	for id := range w.at {
		if _, ok := w.inKafka[id]; !ok {
			return false
		}
	}
	return true
}

// onSent records a published frame, watching every every-th.
func (w *watcher) onSent(f simulate.Frame) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.n%w.every == 0 {
		w.at[f.FrameID] = f.SentAt
	}
}

// missing lists the watched frames a store has not shown yet; done when there are none and
// the simulator is done.
func (w *watcher) missing(store int) (ids []string, done bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.at {
		if !w.seen[store][id] {
			ids = append(ids, id)
		}
	}
	return ids, len(ids) == 0 && w.sent
}

func (w *watcher) found(store int, ids []string, at time.Time, took time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs[store] = err
	}
	w.took[store] = append(w.took[store], float64(took.Microseconds())/1000)
	for _, id := range ids {
		if !w.seen[store][id] {
			w.seen[store][id] = true
			w.lat[store] = append(w.lat[store], float64(at.UnixMicro()-w.at[id]*1000)/1000)
		}
	}
}

// query asks a store which of ids it holds.
func (w *watcher) query(ctx context.Context, store int, ids []string) ([]string, error) {
	if store == 1 {
		rows, err := w.pg.Query(ctx, "SELECT frame_id FROM "+w.table+" WHERE frame_id = ANY($1)", ids)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		return out, rows.Err()
	}
	docs, err := mongoDocs(w.coll, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = fmt.Sprint(d["_id"])
	}
	return out, nil
}

// await, once the simulator is done, waits until both stores showed every watched frame,
// or fails the test.
func (w *watcher) await(t *testing.T, timeout time.Duration) {
	t.Helper()
	w.mu.Lock()
	w.sent = true
	w.mu.Unlock()
	waited := make(chan struct{})
	go func() { w.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(timeout):
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, sentAt := range w.at {
		for store, seen := range map[int]map[string]time.Time{2: w.inKafka, 3: w.inMQTT} {
			if at, ok := seen[id]; ok {
				w.lat[store] = append(w.lat[store], float64(at.UnixMicro()-sentAt*1000)/1000)
			}
		}
	}
	for store, name := range []string{"MongoDB", "PostgreSQL"} {
		if len(w.seen[store]) < len(w.at) {
			t.Fatalf("%s shows %d of %d watched frames %v after the last was sent (last error: %v)", name, len(w.seen[store]), len(w.at), timeout, w.errs[store])
		}
	}
}

// pct is a quantile of a store's latencies, in ms.
func (w *watcher) pct(store int, q float64) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return quantile(w.lat[store], q)
}

// queryPct is a quantile of how long the watcher's queries of a store took, in ms.
func (w *watcher) queryPct(store int, q float64) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return quantile(w.took[store], q)
}

// quantile is the q-quantile of values (-1 when there are none).
func quantile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return -1
	}
	l := slices.Clone(values)
	slices.Sort(l)
	return l[int(q*float64(len(l)-1))]
}

// cpuStall reads the kernel's CPU pressure (/proc/pressure/cpu): the microseconds in which
// at least one runnable task waited for a CPU, since boot; ok is false where the kernel
// does not report it.
func cpuStall() (micros int64, ok bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if v, found := strings.CutPrefix(field, "total="); found {
				n, err := strconv.ParseInt(v, 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// stallShare is the share of the time since (then, at) in which a task waited for a CPU, in
// percent, or -1 when the kernel does not say.
func stallShare(then int64, at time.Time, ok bool) float64 {
	now, nowOK := cpuStall()
	if !ok || !nowOK {
		return -1
	}
	return 100 * float64(now-then) / float64(time.Since(at).Microseconds())
}
