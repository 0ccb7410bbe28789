package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/simulate"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// The pipeline under test (names get the run's unique prefix; the simulator publishes under
// <prefix>/sensors/<place>/<device>):
//
//	simulator --MQTT QoS 1--> Mosquitto --mqtt-source--> raw ---+--> mongodb-sink    -> MongoDB raw
//	                    (malformed frames -> dlq)                +--> timescale-sink  -> PostgreSQL raw
//	                                                             +--> iceberg-sink    -> Iceberg raw
//	                                                             +--> prometheus-sink -> /metrics <- Prometheus
//	                                                             +--aggregate per device (aligned, 3 tasks)--> agg-device
//	                                                             +--aggregate per place (global, 1 task)-----> agg-place
//	                                                                 (too-late frames -> late-device, late-place)
//	agg-device, agg-place --> mongodb-sink   -> MongoDB agg_device, agg_place
//	agg-device, agg-place --> timescale-sink -> PostgreSQL agg_device, agg_place (one connector each)
//
// Every connector but mqtt-source sends what it cannot process to a second dead-letter topic
// (dlq-other), which must stay empty.
//
// What "exactly once" means in each store, given that the simulator sends some frames twice
// (same frame_id, same reading) and that mqtt-source is at least once (after a killed worker
// the broker redelivers what was not acknowledged):
//
//   - MongoDB raw: upsert with _id = frame_id, so each distinct frame_id is one document.
//   - PostgreSQL raw: upsert on (frame_id, time), the time being the frame's ts, so each
//     distinct frame_id is one row (a duplicate has the same ts).
//   - Iceberg raw: an append-only lake; the sink commits the Kafka offsets in each snapshot,
//     so it holds each record of the raw topic exactly once, also across a killed worker. A
//     frame sent twice is two records there, and so two rows: the lake keeps what arrived, and
//     readers dedupe by frame_id. The test checks rows per frame_id = records per frame_id in
//     the raw topic, and that every frame sent is there.
//   - Aggregates: the aggregate connector drops duplicates by frame_id (dedupe.field) and is
//     exactly once through Kafka transactions; the sinks upsert by window (MongoDB _id = the
//     record key {group, window_start}; PostgreSQL key (group, time)), so each window is one
//     document or row holding its latest revision. They must equal an independent computation
//     from what was sent (expect_test.go) for every window the watermark has closed.
//   - Malformed frames fail in mqtt-source (not JSON, or no ts: timestamp.source=field), the
//     first connector that parses them, which sends them to the dead-letter topic; every other
//     connector has a second dead-letter topic that must stay empty. Too-late frames are not
//     malformed: the aggregates write them to their late topics.
//   - Prometheus: the sink serves the last record that arrived per series, so the latest
//     temperature per device must be the one in the last frame the simulator sent for it
//     (its frames stay in order: one mqtt-source task, one partition per device).

// The simulated fleet: modest, for a 2-core machine that also runs every service.
const (
	devices    = 20
	places     = 4
	rate       = 100.0 // frames per second over all devices
	frameCount = 2000  // about 20 s
	simSeed    = 11    // checkPredictable holds for it (no device starts with a late frame)
)

// scenario says how a run goes.
type scenario struct {
	workers int
	kill    bool // kill -9 the worker running mqtt-source while the simulator publishes
}

// TestPipelineEndToEnd runs the whole pipeline on two worker processes and checks every
// store, the dead-letter topic and Prometheus against what the simulator sent; it also
// measures publish-to-visible latency in MongoDB.
func TestPipelineEndToEnd(t *testing.T) {
	runPipeline(t, scenario{workers: 2})
}

// TestPipelineEndToEndWithWorkerKilled runs the same pipeline on three worker processes and
// kills (SIGKILL) the one running the mqtt-source task mid-stream, with other tasks beside it;
// every check must hold all the same.
func TestPipelineEndToEndWithWorkerKilled(t *testing.T) {
	runPipeline(t, scenario{workers: 3, kill: true})
}

// services are the test services' addresses.
type services struct {
	kafka, postgres, mqtt, mongodb, prometheus, envDir, envScript string
}

// connector is one connector of the pipeline and how many tasks it runs.
type connector struct {
	name   string
	tasks  int
	config map[string]string
}

// pipeline is one run's cluster, connectors and stores.
type pipeline struct {
	t          *testing.T
	svc        services
	c          *sluicetest.Cluster
	ws         []*sluicetest.Process
	prefix     string
	mqttRoot   string // MQTT topic root of the run's simulator
	mqttName   string // the mqtt-source connector
	promName   string // the prometheus-sink connector
	promJob    string
	promMetric string // metric name of the temperature series
	topics     struct{ raw, dlq, dlqOther, aggDevice, aggPlace, lateDevice, latePlace string }
	connectors []connector
	mongo      *mongo.Database
	pg         *pgxpool.Pool
	schema     string
	lake       lake
}

// runPipeline builds the pipeline, runs the simulator through it (killing a worker on the way
// when the scenario says so), and checks every store against what the simulator sent.
func runPipeline(t *testing.T, sc scenario) {
	began := time.Now()
	p := buildPipeline(t, sc.workers)
	t.Logf("pipeline of %d connectors RUNNING on %d workers after %v", len(p.connectors), len(p.ws), time.Since(began).Round(100*time.Millisecond))

	// Latency: a poller on MongoDB records when each frame_id first became visible.
	var lat *latencyPoller
	if !sc.kill {
		lat = startLatencyPoller(t, p.mongo.Collection("raw"))
	}

	var (
		mu   sync.Mutex
		sent []simulate.Sent
	)
	sentSoFar := func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }
	simCfg := simulate.Config{
		Broker: p.svc.mqtt, ClientID: p.prefix + "-simulator", Topic: p.mqttRoot + "/{place}/{device}",
		Devices: devices, Places: places, Rate: rate, QoS: 1, Count: frameCount,
		OutOfOrderRate: 0.03, LateRate: 0.02, DuplicateRate: 0.03, MalformedRate: 0.01, LateBy: 10 * time.Minute,
		Seed: simSeed,
		OnSent: func(s simulate.Sent) {
			mu.Lock()
			sent = append(sent, s)
			mu.Unlock()
		},
	}
	type simResult struct {
		sum simulate.Summary
		err error
	}
	simDone := make(chan simResult, 1)
	simCtx, stopSim := context.WithCancel(context.Background())
	defer stopSim()
	go func() {
		sum, err := simulate.Run(simCtx, simCfg)
		simDone <- simResult{sum, err}
	}()

	live := p.ws
	if sc.kill {
		sluicetest.Eventually(t, time.Minute, "the simulator to be well into its run", func() (bool, string) {
			n := sentSoFar()
			return n >= frameCount/4, fmt.Sprintf("%d frames sent", n)
		})
		live = p.killMQTTWorker()
	}

	var res simResult
	select {
	case res = <-simDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the simulator did not finish within 2 minutes (%d frames sent)", sentSoFar())
	}
	if res.err != nil {
		t.Fatalf("simulator: %v", res.err)
	}
	if res.sum.Sent != frameCount || res.sum.Errors != 0 {
		t.Fatalf("simulator: %s; want %d frames and no errors", res.sum, frameCount)
	}
	t.Logf("simulator: %s (%.1f frames/s)", res.sum, float64(res.sum.Sent)/res.sum.Seconds)
	mu.Lock()
	all := slices.Clone(sent)
	mu.Unlock()
	e := expect(t, all)
	t.Logf("expected: %d distinct frames, %d too late for the aggregates, %d malformed; %d device windows (%d closed), %d place windows (%d closed)",
		len(e.frames), len(e.late), e.kinds[simulate.KindMalformed], len(e.byDevice), len(e.requiredDeviceWindows()),
		len(e.byPlace), len(e.requiredPlaceWindows()))

	p.checkRaw(e, sc.kill)
	if lat != nil {
		lat.stop()
		lat.report(t, e, res.sum)
	}
	p.checkDeadLetters(e, sc.kill)
	p.checkAggregates(e)
	p.checkPrometheus(e)
	p.checkStillRunning(live)
	t.Logf("%s passed in %v", t.Name(), time.Since(began).Round(100*time.Millisecond))
}

// buildPipeline starts the workers and the connectors, and waits until the pipeline is ready
// for the simulator.
func buildPipeline(t *testing.T, workers int) *pipeline {
	t.Helper()
	v := connecttest.Envs(t, connecttest.EnvKafka, connecttest.EnvPostgres, connecttest.EnvMQTT, connecttest.EnvMongoDB,
		connecttest.EnvPrometheus, connecttest.EnvTestenvDir, connecttest.EnvTestenvScript)
	p := &pipeline{t: t, svc: services{kafka: v[0], postgres: v[1], mqtt: v[2], mongodb: v[3], prometheus: v[4], envDir: v[5], envScript: v[6]}}
	p.c = sluicetest.NewCluster(t)
	p.prefix = p.c.Prefix
	for range workers {
		p.ws = append(p.ws, p.c.StartProcess(nil))
	}

	tp := &p.topics
	tp.raw, tp.dlq, tp.dlqOther = p.prefix+"-raw", p.prefix+"-dlq", p.prefix+"-dlq-other"
	tp.aggDevice, tp.aggPlace = p.prefix+"-agg-device", p.prefix+"-agg-place"
	tp.lateDevice, tp.latePlace = p.prefix+"-late-device", p.prefix+"-late-place"
	// Made up front, so that every consumer finds its topic at once. Three raw partitions,
	// keyed by device: the per-device aggregates and the sinks can spread over workers.
	createTopics(t, p.c.Bootstrap, map[string]int{tp.raw: 3, tp.dlq: 1, tp.dlqOther: 1, tp.aggDevice: 3, tp.aggPlace: 3,
		tp.lateDevice: 3, tp.latePlace: 3})

	p.mongo = mongoDatabase(t, p.svc.mongodb)
	p.pg, p.schema = pgSchema(t, p.svc.postgres)
	p.lake = newLake(t)
	p.lake.createRawTable(t)
	// Stop the workers before the stores are dropped (cleanups run last first).
	t.Cleanup(func() {
		for _, w := range p.ws {
			w.Kill()
		}
	})
	p.mqttRoot = p.prefix + "/sensors"
	p.promMetric = strings.ReplaceAll(p.prefix, "-", "_") + "_sensor_temperature"

	deadLetters := func(topic string, cfg map[string]string) map[string]string {
		cfg["errors.tolerance"] = "all"
		cfg["errors.log.enable"] = "true"
		cfg["errors.deadletterqueue.topic.name"] = topic
		cfg["errors.deadletterqueue.topic.replication.factor"] = "-1"
		cfg["errors.deadletterqueue.context.headers.enable"] = "true"
		return cfg
	}
	other := func(cfg map[string]string) map[string]string { return deadLetters(tp.dlqOther, cfg) }
	aggregate := func(groupBy, output, late, partitioning string, tasks int) map[string]string {
		return other(map[string]string{
			"connector.class": "aggregate", "tasks.max": strconv.Itoa(tasks), "kafka.bootstrap.servers": p.c.Bootstrap,
			"source.topic": tp.raw, "output.topic": output, "late.topic": late, "partitioning": partitioning,
			"group.by": groupBy, "event.time.field": "ts", "dedupe.field": "frame_id",
			"window.size": windowSize.String(), "watermark.out.of.order": watermarkOutOfOrder.String(),
			"allowed.lateness": allowedLateness.String(), "commit.interval": "1s", "topic.replication.factor": "-1"})
	}
	timescale := func(topic, table, keys, timeField string) map[string]string {
		return other(map[string]string{
			"connector.class": "timescale-sink", "tasks.max": "1", "topics": topic, "connection.url": p.svc.postgres,
			"table": p.schema + "." + table, "time.field": timeField, "insert.mode": "upsert", "key.columns": keys,
			"auto.create": "true", "auto.evolve": "true", "auto.create.json.numbers": "double"})
	}
	p.mqttName, p.promName = p.prefix+"-mqtt", p.prefix+"-prometheus"
	p.connectors = []connector{
		{p.mqttName, 1, deadLetters(tp.dlq, map[string]string{
			"connector.class": "mqtt-source", "tasks.max": "1", "mqtt.server.uris": p.svc.mqtt, "mqtt.topics": p.mqttRoot + "/#",
			"mqtt.qos": "1", "mqtt.clean.start": "false", "mqtt.session.expiry": "5m",
			"kafka.topic": tp.raw, "key.source": "field", "key.field": "device_id",
			"timestamp.source": "field", "timestamp.field": "ts", "payload.format": "json"})},
		{p.prefix + "-agg-device", 3, aggregate("device_id", tp.aggDevice, tp.lateDevice, "aligned", 3)},
		{p.prefix + "-agg-place", 1, aggregate("place_id", tp.aggPlace, tp.latePlace, "global", 1)},
		{p.prefix + "-mongo-raw", 2, other(map[string]string{
			"connector.class": "mongodb-sink", "tasks.max": "2", "topics": tp.raw, "connection.uri": p.svc.mongodb,
			"database": p.mongo.Name(), "collection": "raw", "write.model": "upsert", "id.strategy": "fields", "id.fields": "frame_id"})},
		{p.prefix + "-mongo-agg", 1, other(map[string]string{
			"connector.class": "mongodb-sink", "tasks.max": "1", "topics": tp.aggDevice + "," + tp.aggPlace,
			"connection.uri": p.svc.mongodb, "database": p.mongo.Name(),
			"collection.map": tp.aggDevice + "=agg_device," + tp.aggPlace + "=agg_place", "write.model": "upsert", "id.strategy": "key"})},
		{p.prefix + "-ts-raw", 1, timescale(tp.raw, "raw", "frame_id,time", "ts")},
		{p.prefix + "-ts-agg-device", 1, timescale(tp.aggDevice, "agg_device", "device_id,time", "window_start")},
		{p.prefix + "-ts-agg-place", 1, timescale(tp.aggPlace, "agg_place", "place_id,time", "window_start")},
		{p.prefix + "-iceberg", 1, other(map[string]string{
			"connector.class": "iceberg-sink", "tasks.max": "1", "topics": tp.raw, "catalog.uri": p.lake.uri,
			"warehouse": p.lake.warehouse, "table.namespace": p.lake.namespace, "table.route": "static", "table.name": p.lake.table,
			"commit.interval": "2s"})},
		{p.promName, 1, other(map[string]string{
			"connector.class": "prometheus-sink", "tasks.max": "1", "topics": tp.raw, "listen.address": "127.0.0.1:0",
			"metric.name": strings.TrimSuffix(p.promMetric, "_temperature"), "value.fields": "temperature,humidity",
			"label.fields": "device_id,place_id"})},
	}
	groups := map[string]groupWant{}
	for _, cn := range p.connectors {
		switch cn.config["connector.class"] {
		case "aggregate":
			groups["sluice-aggregate-"+cn.name] = groupWant{members: cn.tasks, partitions: 3}
		case "mqtt-source":
		default: // a sink: every topic it reads has three partitions
			groups["connect-"+cn.name] = groupWant{members: cn.tasks, partitions: 3 * len(strings.Split(cn.config["topics"], ","))}
		}
	}
	for _, cn := range p.connectors {
		sluicetest.CreateConnector(t, p.ws[0].URL, cn.name, cn.config)
	}
	for _, cn := range p.connectors {
		sluicetest.WaitState(t, p.ws[0].URL, cn.name, api.StateRunning, cn.tasks)
	}
	// Tasks are RUNNING before their consumers have joined their groups; the first frames
	// would otherwise wait for the groups' first rebalances (the broker holds a new group's
	// first one for group.initial.rebalance.delay.ms), which is start-up, not latency.
	waitGroupsStable(t, p.c.Bootstrap, groups)
	// A new MQTT session gets only what is published after it subscribed.
	client := "sluice-" + p.mqttName + "-0"
	sluicetest.Eventually(t, time.Minute, client+" subscribed", func() (bool, string) {
		for _, w := range p.ws {
			for _, line := range strings.Split(w.Log.String(), "\n") {
				if strings.Contains(line, "msg=subscribed") && strings.Contains(line, "client="+client+" ") {
					return true, ""
				}
			}
		}
		return false, "not in any worker's log yet"
	})
	var sd []string
	for _, w := range p.ws {
		sd = append(sd, w.URL+"/connectors/"+p.promName+"/prometheus-targets")
	}
	p.promJob = p.prefix
	sluicetest.ScrapeJob(t, p.svc.envDir, p.svc.envScript, p.promJob, sd...)
	return p
}

// groupWant is the settled state of a consumer group: this many members, these many
// partitions assigned over them.
type groupWant struct{ members, partitions int }

// waitGroupsStable waits until every consumer group is Stable with its members and all its
// partitions assigned.
func waitGroupsStable(t *testing.T, bootstrap string, want map[string]groupWant) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var ids []string
	for g := range want {
		ids = append(ids, g)
	}
	slices.Sort(ids)
	sluicetest.Eventually(t, 2*time.Minute, "every consumer group of the pipeline settled", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := admin.DescribeConsumerGroups(ctx, ids)
		if err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, d := range res.ConsumerGroupDescriptions {
			assigned := 0
			for _, m := range d.Members {
				assigned += len(m.Assignment.TopicPartitions)
			}
			w := want[d.GroupID]
			if d.Error.Code() != kafka.ErrNoError || d.State != kafka.ConsumerGroupStateStable || len(d.Members) != w.members || assigned != w.partitions {
				waiting = append(waiting, fmt.Sprintf("%s: %v, %d members, %d partitions", d.GroupID, d.State, len(d.Members), assigned))
			}
		}
		return len(waiting) == 0, strings.Join(waiting, "; ")
	})
}

// owner finds the process of a worker id (host:port).
func owner(ws []*sluicetest.Process, id string) *sluicetest.Process {
	for _, w := range ws {
		if w.URL == "http://"+id {
			return w
		}
	}
	return nil
}

func (p *pipeline) status(base, name string) (api.ConnectorStatus, int) {
	var st api.ConnectorStatus
	code := sluicetest.Call(p.t, "GET", base+"/connectors/"+name+"/status", nil, &st)
	return st, code
}

// killMQTTWorker kills (SIGKILL) the worker running the mqtt-source task, waits until every
// task runs on the workers left, and returns them.
func (p *pipeline) killMQTTWorker() []*sluicetest.Process {
	t := p.t
	st, code := p.status(p.ws[0].URL, p.mqttName)
	if code != 200 || len(st.Tasks) != 1 {
		t.Fatalf("mqtt-source status: %d %+v", code, st)
	}
	victim := owner(p.ws, st.Tasks[0].WorkerID)
	if victim == nil {
		t.Fatalf("mqtt-source runs on %s, none of the test's workers", st.Tasks[0].WorkerID)
	}
	var onVictim []string
	for _, cn := range p.connectors {
		st, _ := p.status(p.ws[0].URL, cn.name)
		for _, ts := range st.Tasks {
			if "http://"+ts.WorkerID == victim.URL {
				onVictim = append(onVictim, fmt.Sprintf("%s-%d", strings.TrimPrefix(cn.name, p.prefix+"-"), ts.ID))
			}
		}
	}
	var live []*sluicetest.Process
	for _, w := range p.ws {
		if w != victim {
			live = append(live, w)
		}
	}
	victim.Kill()
	killed := time.Now()
	t.Logf("killed worker %s (SIGKILL) with tasks %v, while the simulator publishes", victim.URL, onVictim)
	for _, cn := range p.connectors {
		sluicetest.Eventually(t, 2*time.Minute, cn.name+" RUNNING on the workers left", func() (bool, string) {
			st, code := p.status(live[0].URL, cn.name)
			if code != 200 || st.Connector.State != api.StateRunning || owner(live, st.Connector.WorkerID) == nil || len(st.Tasks) != cn.tasks {
				return false, fmt.Sprintf("%d %+v", code, st)
			}
			for _, ts := range st.Tasks {
				if ts.State != api.StateRunning || owner(live, ts.WorkerID) == nil {
					return false, fmt.Sprintf("%+v", st)
				}
			}
			return true, ""
		})
	}
	t.Logf("every task RUNNING on the %d workers left %v after the kill", len(live), time.Since(killed).Round(100*time.Millisecond))
	return live
}

// diffIDs describes how a count of rows per frame_id differs from the wanted one.
func diffIDs(got, want map[string]int) string {
	var missing, extra, wrong []string
	for id, n := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing = append(missing, id)
		case g != n:
			wrong = append(wrong, fmt.Sprintf("%s x%d (want %d)", id, g, n))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(wrong) == 0 {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(wrong)
	return fmt.Sprintf("%d ids (want %d): %d missing %v, %d unexpected %v, %d with wrong counts %v", len(got), len(want),
		len(missing), missing[:min(5, len(missing))], len(extra), extra[:min(5, len(extra))], len(wrong), wrong[:min(5, len(wrong))])
}

func ones(ids map[string]simulate.Frame) map[string]int {
	out := make(map[string]int, len(ids))
	for id := range ids {
		out[id] = 1
	}
	return out
}

// checkRaw checks the raw topic and the raw stores: every frame sent, exactly once each
// (in the sense stated at the top of this file), and nothing else.
func (p *pipeline) checkRaw(e *expectation, killed bool) {
	t := p.t
	once := ones(e.frames)
	raw := p.mongo.Collection("raw")
	sluicetest.Eventually(t, 2*time.Minute, "every frame in MongoDB once", func() (bool, string) {
		docs, err := mongoDocs(raw, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, d := range docs {
			got[fmt.Sprint(d["_id"])]++
		}
		d := diffIDs(got, once)
		return d == "", d
	})
	table := p.schema + ".raw"
	sluicetest.Eventually(t, time.Minute, "every frame in PostgreSQL once", func() (bool, string) {
		got, err := pgFrameIDs(p.pg, table)
		if err != nil {
			return false, err.Error()
		}
		d := diffIDs(got, once)
		return d == "", d
	})

	// Every frame reached the raw topic; nothing malformed did. Without a kill nothing was
	// delivered twice either, so the topic holds each frame as often as it was sent.
	inTopic := frameIDs(readTopic(t, p.c.Bootstrap, p.topics.raw))
	if n := inTopic[""]; n > 0 {
		t.Errorf("%d records without a frame_id on the raw topic: malformed frames got through", n)
	}
	if killed {
		redelivered := 0
		for id, n := range e.sendCount {
			if inTopic[id] < n {
				t.Errorf("frame %s is %d times on the raw topic, sent %d times", id, inTopic[id], n)
			}
			redelivered += inTopic[id] - n
		}
		t.Logf("raw topic: %d records, %d of them delivered again after the kill", total(inTopic), redelivered)
	} else if d := diffIDs(inTopic, e.sendCount); d != "" {
		t.Errorf("raw topic against the frames sent: %s", d)
	}

	// The lake holds each record of the raw topic once.
	sluicetest.Eventually(t, time.Minute, "every raw record in Iceberg once", func() (bool, string) {
		got, err := p.lake.frameIDs()
		if err != nil {
			return false, err.Error()
		}
		d := diffIDs(got, frameIDs(readTopic(t, p.c.Bootstrap, p.topics.raw)))
		return d == "", d
	})
	t.Logf("raw: %d frames in MongoDB and PostgreSQL, once each; %d rows in Iceberg, one per raw record", len(e.frames), total(inTopic))
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkDeadLetters: the malformed frames, and only they, are on the dead-letter topic; the
// other connectors reported nothing; the too-late frames are on the late topics.
func (p *pipeline) checkDeadLetters(e *expectation, killed bool) {
	t := p.t
	var dead []string
	sluicetest.Eventually(t, time.Minute, "the malformed frames on the dead-letter topic", func() (bool, string) {
		dead = dead[:0]
		for _, m := range readTopic(t, p.c.Bootstrap, p.topics.dlq) {
			dead = append(dead, string(m.Value))
			if reason, _ := sluicetest.Header(m, "mqtt.error"); reason == "" {
				return false, fmt.Sprintf("dead letter %q has no mqtt.error header", m.Value)
			}
		}
		return len(dead) >= total(e.malformed), fmt.Sprintf("%d of %d", len(dead), total(e.malformed))
	})
	got := map[string]int{}
	for _, v := range dead {
		got[v]++
	}
	for payload, n := range e.malformed {
		// After a kill, a dead letter written but not yet acknowledged to the broker is
		// written again when the broker redelivers it.
		if got[payload] < n || (!killed && got[payload] != n) {
			t.Errorf("malformed payload %q sent %d times, %d times on the dead-letter topic", payload, n, got[payload])
		}
	}
	for payload, n := range got {
		if e.malformed[payload] == 0 {
			t.Errorf("%d records on the dead-letter topic that are not malformed frames: %q", n, payload)
		}
	}
	for topic, kind := range map[string]string{p.topics.lateDevice: "per-device", p.topics.latePlace: "per-place"} {
		want := map[string]int{}
		for id := range e.late {
			want[id] = 1
		}
		sluicetest.Eventually(t, time.Minute, "the too-late frames on the "+kind+" late topic", func() (bool, string) {
			got := frameIDs(readTopic(t, p.c.Bootstrap, topic))
			for id := range got {
				got[id] = 1 // redelivered copies are too late again
			}
			d := diffIDs(got, want)
			return d == "", d
		})
	}
	if others := readTopic(t, p.c.Bootstrap, p.topics.dlqOther); len(others) > 0 {
		m := others[0]
		reason, _ := sluicetest.Header(m, "__connect.errors.exception.message")
		conn, _ := sluicetest.Header(m, "__connect.errors.connector.name")
		t.Errorf("%d records on the other connectors' dead-letter topic, e.g. from %s: %q (%s)", len(others), conn, m.Value, reason)
	}
	t.Logf("dead letters: %d malformed frames (%d sent); late topics: %d frames each", len(dead), total(e.malformed), len(e.late))
}

// checkAggregates compares the window results in MongoDB and PostgreSQL with the independent
// computation.
func (p *pipeline) checkAggregates(e *expectation) {
	t := p.t
	devReq, placeReq := e.requiredDeviceWindows(), e.requiredPlaceWindows()
	type source struct {
		what     string
		read     func() ([]gotWindow, error)
		all, req map[string]*expWindow
	}
	sources := []source{
		{"MongoDB per device", func() ([]gotWindow, error) { return mongoWindows(p.mongo.Collection("agg_device"), "device_id") }, e.byDevice, devReq},
		{"MongoDB per place", func() ([]gotWindow, error) { return mongoWindows(p.mongo.Collection("agg_place"), "place_id") }, e.byPlace, placeReq},
		{"PostgreSQL per device", func() ([]gotWindow, error) { return pgWindows(p.pg, p.schema+".agg_device", "device_id") }, e.byDevice, devReq},
		{"PostgreSQL per place", func() ([]gotWindow, error) { return pgWindows(p.pg, p.schema+".agg_place", "place_id") }, e.byPlace, placeReq},
	}
	for _, s := range sources {
		n := 0
		sluicetest.Eventually(t, 90*time.Second, s.what+" aggregates to match", func() (bool, string) {
			got, err := s.read()
			if err != nil {
				return false, err.Error()
			}
			n = len(got)
			d := compareWindows(s.what, got, s.all, s.req)
			return d == "", d
		})
		t.Logf("%s: %d windows stored, all as computed from what was sent (%d closed for certain)", s.what, n, len(s.req))
	}
	// The test database has the timescaledb extension: the sinks made hypertables.
	var hypertables string
	if err := p.pg.QueryRow(context.Background(), `SELECT coalesce(string_agg(hypertable_name, ',' ORDER BY hypertable_name), '')
		FROM timescaledb_information.hypertables WHERE hypertable_schema = $1`, p.schema).Scan(&hypertables); err != nil {
		t.Errorf("reading the hypertables: %v", err)
	} else if hypertables != "agg_device,agg_place,raw" {
		t.Errorf("hypertables %q, want agg_device, agg_place and raw", hypertables)
	}
}

// checkPrometheus: Prometheus, scraping the prometheus-sink, returns for each device the
// temperature of the last frame the simulator sent for it.
func (p *pipeline) checkPrometheus(e *expectation) {
	t := p.t
	q := fmt.Sprintf(`%s{job=%q}`, p.promMetric, p.promJob)
	sluicetest.Eventually(t, 90*time.Second, "Prometheus to return every device's latest temperature", func() (bool, string) {
		res, err := promQuery(t, p.svc.prometheus, q)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		var wrong []string
		for _, r := range res {
			dev := r.Metric["device_id"]
			last, ok := e.last[dev]
			v, err := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
			if !ok || err != nil || v != last.Temperature || r.Metric["place_id"] != last.PlaceID {
				wrong = append(wrong, fmt.Sprintf("%s/%s=%v (want %s=%v)", dev, r.Metric["place_id"], r.Value[1], last.PlaceID, last.Temperature))
				continue
			}
			got[dev]++
		}
		if len(wrong) > 0 || len(got) != len(e.last) {
			slices.Sort(wrong)
			return false, fmt.Sprintf("%d of %d devices right; wrong: %v", len(got), len(e.last), wrong)
		}
		return true, ""
	})
	t.Logf("Prometheus: the latest temperature of all %d devices as last sent", len(e.last))
}

// checkStillRunning: no connector or task failed on the way.
func (p *pipeline) checkStillRunning(live []*sluicetest.Process) {
	for _, cn := range p.connectors {
		st, code := p.status(live[0].URL, cn.name)
		ok := code == 200 && st.Connector.State == api.StateRunning && len(st.Tasks) == cn.tasks
		for _, ts := range st.Tasks {
			ok = ok && ts.State == api.StateRunning
		}
		if !ok {
			p.t.Errorf("%s at the end: %d %+v", cn.name, code, st)
		}
	}
}

// latencyPoller records when each frame first shows in the MongoDB raw collection.
type latencyPoller struct {
	coll  *mongo.Collection
	mu    sync.Mutex
	seen  map[string]time.Time
	polls int
	done  chan struct{}
	quit  chan struct{}
}

// startLatencyPoller polls the collection every 50 ms for the frames sent in the last 30 s
// (by sent_at_ms) and notes the time each frame_id is first seen, when its query returned.
func startLatencyPoller(t *testing.T, coll *mongo.Collection) *latencyPoller {
	l := &latencyPoller{coll: coll, seen: map[string]time.Time{}, done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		proj := options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}})
		for {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			since := time.Now().Add(-30 * time.Second).UnixMilli()
			docs, err := mongoDocs(coll, bson.D{{Key: "sent_at_ms", Value: bson.D{{Key: "$gte", Value: since}}}}, proj)
			now := time.Now()
			if err != nil {
				continue
			}
			l.mu.Lock()
			l.polls++
			for _, d := range docs {
				id := fmt.Sprint(d["_id"])
				if _, ok := l.seen[id]; !ok {
					l.seen[id] = now
				}
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *latencyPoller) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
}

// report prints the publish-to-visible latency of every frame, from the simulator's
// sent_at_ms of its first copy to when the poller first saw it.
func (l *latencyPoller) report(t *testing.T, e *expectation, sum simulate.Summary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lat []time.Duration
	for id, f := range e.frames {
		if at, ok := l.seen[id]; ok {
			lat = append(lat, at.Sub(time.UnixMilli(f.SentAt)))
		}
	}
	if len(lat) == 0 {
		t.Errorf("the latency poller saw no frame in %d polls", l.polls)
		return
	}
	slices.Sort(lat)
	pct := func(q float64) int64 { return lat[int(q*float64(len(lat)-1))].Milliseconds() }
	r := float64(sum.Sent) / sum.Seconds
	line := fmt.Sprintf("BENCH e2e_latency rate=%.0f p50_ms=%d p99_ms=%d frames=%d", r, pct(0.50), pct(0.99), len(lat))
	fmt.Println(line)
	t.Logf("%s (publish to visible in MongoDB: simulator sent_at_ms to the first poll that saw the document; %d polls, every 50 ms; max %v)",
		line, l.polls, lat[len(lat)-1].Round(time.Millisecond))
	if len(lat) < len(e.frames) {
		t.Logf("the poller saw %d of %d frames (the others appeared after it stopped or outside its 30 s query)", len(lat), len(e.frames))
	}
}
