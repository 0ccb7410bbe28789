package chaos

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/worker/api"

	"github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver of the Iceberg SQL catalog

	"github.com/sluicehq/sluice/chaos/check"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/simulate"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The suite's knobs. make test runs the defaults (a shortened run); make chaos sets the full
// run (5 minutes at 2,000 frames/s).
const (
	envDuration    = "SLUICE_CHAOS_DURATION"     // how long the simulator publishes (Go duration)
	envRate        = "SLUICE_CHAOS_RATE"         // frames per second
	envKillEvery   = "SLUICE_CHAOS_KILL_EVERY"   // period of the worker kills
	envOutDir      = "SLUICE_CHAOS_OUT_DIR"      // keep the sent file and the worker logs here
	envKafkaScript = "SLUICE_CHAOS_KAFKA_SCRIPT" // the scripts/testenv that runs the 3-broker Kafka, when not SLUICE_TEST_ENV_SCRIPT's
	envPyIceberg   = "SLUICE_TEST_PYICEBERG_PYTHON"

	defaultDuration  = 75 * time.Second
	defaultRate      = 1000.0
	defaultKillEvery = 20 * time.Second

	devices = 100
	places  = 10
)

func envDurationOr(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q is not a positive Go duration", name, v)
	}
	return d
}

// chaosRun is one run's cluster, its workers and what happened to them.
type chaosRun struct {
	t      *testing.T
	c      *sluicetest.Cluster
	prefix string
	outDir string

	mu      sync.Mutex
	workers []*sluicetest.Process // live ones, oldest first
	all     []*sluicetest.Process // every worker process started, for the logs
	alive   map[string]bool       // worker ids (host:port) of live workers
	events  []string              // what the chaos did, when
	evErrs  []string

	connectors map[string]int // name -> tasks
	t0         time.Time      // the simulator's start
	// unrouted holds the frames the broker acknowledged saying no subscription matched them.
	unrouted sync.Map
}

func (r *chaosRun) event(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := fmt.Sprintf("%7.1fs %s", time.Since(r.t0).Seconds(), fmt.Sprintf(format, args...))
	r.events = append(r.events, line)
	r.t.Log(line)
}

func (r *chaosRun) startWorker() *sluicetest.Process {
	w := r.c.StartProcess(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers = append(r.workers, w)
	r.all = append(r.all, w)
	r.alive[strings.TrimPrefix(w.URL, "http://")] = true
	return w
}

// killOldest SIGKILLs the longest-running worker.
func (r *chaosRun) killOldest() *sluicetest.Process {
	r.mu.Lock()
	victim := r.workers[0]
	r.workers = r.workers[1:]
	delete(r.alive, strings.TrimPrefix(victim.URL, "http://"))
	r.mu.Unlock()
	victim.Kill()
	return victim
}

func (r *chaosRun) liveURLs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.workers {
		out = append(out, w.URL)
	}
	return out
}

// TestChaos is issue item 17: see the package documentation.
func TestChaos(t *testing.T) {
	v := connecttest.Envs(t, connecttest.EnvKafka, connecttest.EnvKafkaBrokers, connecttest.EnvPostgres, connecttest.EnvMQTT,
		connecttest.EnvMongoDB, connecttest.EnvTestenvScript)
	kafkaAddr, brokers, pgURL, mqttURL, mongoURL, envScript := v[0], v[1], v[2], v[3], v[4], v[5]
	if brokers != "3" {
		t.Skipf("chaos suite skipped: it needs three Kafka brokers (%s=%s; run `make chaos`, or `scripts/testenv up --brokers 3`)",
			connecttest.EnvKafkaBrokers, brokers)
	}
	python := os.Getenv(envPyIceberg)
	if python == "" {
		t.Skipf("chaos suite skipped: %s is not set (scripts/testenv up installs pyiceberg, the checker's Iceberg reader)", envPyIceberg)
	}
	kafkaScript := os.Getenv(envKafkaScript)
	if kafkaScript == "" {
		kafkaScript = envScript
	}
	duration := envDurationOr(t, envDuration, defaultDuration)
	killEvery := envDurationOr(t, envKillEvery, defaultKillEvery)
	rate := defaultRate
	if s := os.Getenv(envRate); s != "" {
		var err error
		if rate, err = strconv.ParseFloat(s, 64); err != nil || rate <= 0 {
			t.Fatalf("%s=%q is not a positive number", envRate, s)
		}
	}
	outDir := os.Getenv(envOutDir)
	if outDir == "" {
		outDir = t.TempDir()
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	count := int(rate * duration.Seconds())
	t.Logf("chaos: %v at %.0f frames/s (%d frames from %d devices), a worker killed every %v; output in %s",
		duration, rate, count, devices, killEvery, outDir)

	r := &chaosRun{t: t, c: sluicetest.NewCluster(t), alive: map[string]bool{}}
	// Debug logs trace each mqtt-source connection's first messages from the broker to their
	// acknowledgement, so a frame lost at the start can be followed (issue 16, item 0).
	r.c.ProcessFlags = []string{"--log-level", "DEBUG"}
	r.prefix, r.outDir = r.c.Prefix, outDir
	raw := r.prefix + "-raw"
	mqttRoot := r.prefix + "/sensors"

	// The stores, before the workers, so the workers stop first at the end.
	pgSchema := strings.ReplaceAll(r.prefix, "-", "_")
	pgExec(t, pgURL, "CREATE SCHEMA "+pgSchema)
	t.Cleanup(func() { pgExec(t, pgURL, "DROP SCHEMA IF EXISTS "+pgSchema+" CASCADE") })
	mongoDB := strings.ReplaceAll(r.prefix, "-", "_")
	t.Cleanup(func() { dropMongo(mongoURL, mongoDB) })
	lakeDir := t.TempDir()
	lake := lakeOf(lakeDir)
	lake.createTable(t)

	awaitBrokers(t, kafkaAddr, 3)
	// The internal topics, made here: a worker that creates one itself reads its metadata at
	// once, and on three brokers that can come back without partitions (worker/clients.go
	// ensureTopic waits for visibility only for a topic it found existing), failing the start
	// with "topic ... has no partitions".
	createTopics(t, kafkaAddr, map[string]int{r.prefix + "-configs": 1, r.prefix + "-offsets": 5, r.prefix + "-status": 2}, true)
	for range 3 {
		r.startWorker()
	}
	t.Cleanup(func() { r.saveLogs(outDir) })

	// mqtt-source first, alone: two tasks on one shared subscription, writing to a topic that
	// does not exist yet, which topic.creation makes with six partitions.
	if topicExists(t, kafkaAddr, raw) {
		t.Fatalf("topic %s exists before the run", raw)
	}
	mqttName := r.prefix + "-mqtt"
	r.connectors = map[string]int{mqttName: 2}
	createConnector(t, r.workers[0].URL, mqttName, map[string]string{
		"connector.class": "mqtt-source", "tasks.max": "2", "mqtt.server.uris": mqttURL, "mqtt.topics": mqttRoot + "/#",
		"mqtt.qos": "1", "mqtt.clean.start": "false", "mqtt.session.expiry": "10m", "mqtt.shared.subscription": "always",
		"kafka.topic": raw, "key.source": "field", "key.field": "device_id",
		"timestamp.source": "field", "timestamp.field": "ts", "payload.format": "json",
		"topic.creation.default.partitions": "6", "topic.creation.default.replication.factor": "-1"})
	awaitRunning(t, r, mqttName, 2)
	// The simulator starts as soon as both tasks have logged that they subscribed (a new MQTT
	// session gets only what is published after it subscribed), as in issue item 0.
	clients := []string{"sluice-" + mqttName + "-0", "sluice-" + mqttName + "-1"}
	awaitSubscribed(t, r, clients)
	if topicExists(t, kafkaAddr, raw) {
		t.Logf("note: topic %s already exists when the simulator starts", raw)
	}

	// The simulator, writing every frame it had acknowledged to the sent file.
	sentPath := filepath.Join(outDir, "sent.tsv")
	sentFile, err := os.Create(sentPath)
	if err != nil {
		t.Fatal(err)
	}
	sentW := bufio.NewWriterSize(sentFile, 1<<16)
	var sentN atomic.Int64
	var sentErr error
	simCfg := simulate.Config{Broker: mqttURL, ClientID: r.prefix + "-simulator", Topic: mqttRoot + "/{place}/{device}",
		Devices: devices, Places: places, Rate: rate, QoS: 1, Count: count, Seed: uint64(time.Now().UnixNano()),
		OnSent: func(s simulate.Sent) {
			if err := check.WriteFrame(sentW, check.Frame{ID: s.Frame.FrameID, Device: s.Frame.DeviceID, Topic: s.Topic,
				SentAt: time.UnixMilli(s.Frame.SentAt)}); err != nil && sentErr == nil {
				sentErr = err
			}
			if s.NoSubscribers {
				r.unrouted.Store(s.Frame.FrameID, true)
			}
			sentN.Add(1)
		}}
	type simResult struct {
		sum simulate.Summary
		err error
	}
	simDone := make(chan simResult, 1)
	simCtx, stopSim := context.WithCancel(context.Background())
	simExited := make(chan struct{})
	// Should the test end early, the simulator stops and the sent file is complete.
	t.Cleanup(func() { stopSim(); <-simExited })
	r.t0 = time.Now()
	go func() {
		defer close(simExited)
		sum, err := simulate.Run(simCtx, simCfg)
		if ferr := sentW.Flush(); ferr != nil && sentErr == nil {
			sentErr = ferr
		}
		sentFile.Close()
		simDone <- simResult{sum, err}
	}()
	r.event("simulator started (both mqtt-source tasks subscribed)")

	// The sinks, once the topic exists (the brokers create topics on a metadata request, so
	// a consumer could otherwise make it first, with one partition).
	partitions := awaitTopic(t, kafkaAddr, raw)
	r.event("topic %s exists with %d partitions", raw, partitions)
	if partitions != 6 {
		t.Errorf("topic %s has %d partitions, want the 6 of topic.creation.default.partitions", raw, partitions)
	}
	tsName, mongoName, iceName := r.prefix+"-timescale", r.prefix+"-mongodb", r.prefix+"-iceberg"
	sinks := []struct {
		name   string
		tasks  int
		config map[string]string
	}{
		{tsName, 2, map[string]string{"connector.class": "timescale-sink", "tasks.max": "2", "topics": raw,
			"connection.url": pgURL, "table": pgSchema + ".raw", "time.field": "ts", "insert.mode": "upsert",
			"key.columns": "frame_id,time", "auto.create": "true", "auto.evolve": "true", "auto.create.json.numbers": "double"}},
		{mongoName, 2, map[string]string{"connector.class": "mongodb-sink", "tasks.max": "2", "topics": raw,
			"connection.uri": mongoURL, "database": mongoDB, "collection": "raw", "write.model": "upsert",
			"id.strategy": "fields", "id.fields": "frame_id"}},
		{iceName, 1, map[string]string{"connector.class": "iceberg-sink", "tasks.max": "1", "topics": raw,
			"catalog.uri": lake.uri, "warehouse": lake.warehouse, "table.namespace": lake.namespace,
			"table.route": "static", "table.name": lake.table, "commit.interval": "5s"}},
	}
	for _, s := range sinks {
		createConnector(t, r.workers[0].URL, s.name, s.config)
		r.mu.Lock()
		r.connectors[s.name] = s.tasks
		r.mu.Unlock()
	}
	for _, s := range sinks {
		awaitRunning(t, r, s.name, s.tasks)
	}
	r.event("every connector RUNNING")

	// The status poller: the longest time any task was not RUNNING on a live worker.
	poll := startStatusPoller(r)

	// The chaos, from now (the pipeline is whole) over what is left of the run, at least
	// long enough for every event: the servers' restarts on their own schedule, the kills
	// here, every killEvery until the window is over and the simulator done.
	tRun := time.Now()
	window := max(duration-tRun.Sub(r.t0), 3*killEvery)
	var wg sync.WaitGroup
	fail := func(format string, args ...any) {
		r.mu.Lock()
		r.evErrs = append(r.evErrs, fmt.Sprintf(format, args...))
		r.mu.Unlock()
	}
	restart := func(script, svc string, at, down time.Duration) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(tRun.Add(at)))
			r.event("stopping %s", svc)
			if out, err := exec.Command(script, "stop", svc).CombinedOutput(); err != nil {
				fail("stop %s: %v: %s", svc, err, out)
			}
			time.Sleep(down)
			r.event("starting %s", svc)
			// On a loaded machine a server may take longer than testenv waits; a second
			// start launches it again if it died, and the checks wait for it.
			for try := 1; ; try++ {
				out, err := exec.Command(script, "start", svc).CombinedOutput()
				if err == nil {
					break
				}
				if try == 3 {
					fail("start %s: %v: %s", svc, err, out)
					return
				}
				r.event("start %s: %v (trying again)", svc, err)
			}
			r.event("%s up again", svc)
		}()
	}
	restart(envScript, "postgres", window*2/10, 3*time.Second)
	restart(kafkaScript, "kafka-2", window*35/100, min(15*time.Second, window/5))
	restart(envScript, "mongodb", window*6/10, 3*time.Second)
	t.Cleanup(wg.Wait) // whatever happens, the shared servers are started again

	kills := 0
	var res simResult
	simFinished := false
	killTimer := time.NewTimer(killEvery)
	defer killTimer.Stop()
	for !simFinished || time.Since(tRun)+killEvery/2 < window {
		select {
		case res = <-simDone:
			simFinished = true
			r.event("simulator done: %s (%.0f frames/s)", res.sum, float64(res.sum.Sent)/res.sum.Seconds)
		case <-killTimer.C:
			if time.Since(tRun) >= window && simFinished {
				continue
			}
			victim := r.killOldest()
			kills++
			r.event("kill %d: SIGKILLed worker %s", kills, victim.URL)
			w := r.startWorker()
			r.event("kill %d: started worker %s", kills, w.URL)
			killTimer.Reset(time.Until(tRun.Add(time.Duration(kills+1) * killEvery)))
		}
	}
	if res.err != nil {
		t.Fatalf("simulator: %v", res.err)
	}
	if sentErr != nil {
		t.Fatalf("sent file: %v", sentErr)
	}
	simRate := float64(res.sum.Sent) / res.sum.Seconds
	wg.Wait()
	awaitBrokers(t, kafkaAddr, 3)
	r.mu.Lock()
	for _, e := range r.evErrs {
		t.Errorf("chaos: %s", e)
	}
	r.mu.Unlock()

	// The check: until every store holds every frame, or nothing has changed for a while.
	cfg := check.Config{SentFile: sentPath, Kafka: kafkaAddr, Topic: raw, Postgres: pgURL, PGTable: pgSchema + ".raw",
		MongoDB: mongoURL, MongoDatabase: mongoDB, MongoCollection: "raw",
		Python: python, IcebergCatalog: filepath.Join(lakeDir, "catalog.db"), IcebergWarehouse: lake.warehouse,
		IcebergTable: lake.namespace + "." + lake.table,
		SinkGroups:   map[string]string{"postgresql": "connect-" + tsName, "mongodb": "connect-" + mongoName, "iceberg": "connect-" + iceName}}
	var result *check.Result
	drainDeadline := time.Now().Add(max(5*time.Minute, 2*duration))
	same, last := 0, ""
	for {
		res, err := check.Run(context.Background(), cfg)
		if err != nil {
			t.Logf("check: %v", err)
		} else {
			result = res
			state := summary(res)
			t.Logf("check (%v): %s", res.Took.Round(100*time.Millisecond), state)
			if res.Clean() {
				break
			}
			if state == last {
				same++
			} else {
				same, last = 0, state
			}
		}
		// A store that has not moved over three checks after the run is done will not.
		if same >= 3 || time.Now().After(drainDeadline) {
			break
		}
		time.Sleep(10 * time.Second)
	}
	notRunning := poll.stop()
	if result == nil {
		t.Fatal("the checker never read the stores")
	}

	// The figures.
	fmt.Printf("BENCH chaos sent=%d rate=%.0f duration=%.0fs kills=%d broker_restarts=1 postgres_restarts=1 mongodb_restarts=1 max_not_running_ms=%d task=%s\n",
		len(result.Sent), simRate, res.sum.Seconds, kills, notRunning.longest.Milliseconds(), notRunning.task)
	for _, s := range append([]check.Store{result.Topic}, result.Stores...) {
		line := fmt.Sprintf("BENCH chaos store=%s sent=%d found=%d lost=%d duplicated=%d unexpected=%d rows=%d",
			s.Name, len(result.Sent), s.Found, s.Lost, s.Duplicated, s.Unexpected, s.Rows)
		if s.Name != "topic" {
			line += fmt.Sprintf(" sink_lag=%d", s.Lag)
		}
		if s.Name == "iceberg" {
			line += fmt.Sprintf(" differing_from_topic=%d", s.Against)
		}
		fmt.Println(line)
	}
	t.Logf("longest time a task was not RUNNING: %v (%s, from %.1fs); %d status polls", notRunning.longest.Round(time.Millisecond),
		notRunning.task, notRunning.from.Sub(r.t0).Seconds(), notRunning.polls)

	// The verdict: nothing lost anywhere; nothing twice in the idempotent stores; the lake
	// holds each record of the raw topic once.
	if result.Topic.Lost > 0 {
		t.Errorf("%d frames sent never reached the raw topic", result.Topic.Lost)
	}
	for _, s := range result.Stores {
		switch {
		case s.Lost > 0 && s.Lag > 0:
			t.Errorf("%s: %d frames missing, and its sink has %d records of the topic still to write (stuck or too slow)", s.Name, s.Lost, s.Lag)
		case s.Lost > 0:
			t.Errorf("%s: %d frames lost (its sink has committed the whole topic)", s.Name, s.Lost)
		}
		if s.Unexpected > 0 {
			t.Errorf("%s: %d frame ids that were never sent", s.Name, s.Unexpected)
		}
		if s.Name != "iceberg" && s.Duplicated > 0 {
			t.Errorf("%s: %d duplicated rows in an idempotent store", s.Name, s.Duplicated)
		}
		if s.Against > 0 {
			t.Errorf("%s: %d frames whose rows differ from their records in the raw topic", s.Name, s.Against)
		}
	}
	if !result.Clean() {
		r.explainLosses(result)
	}
	r.checkStillRunning()
}

// awaitRunning waits until the connector and its tasks are RUNNING, as a live worker says;
// on a loaded machine the first rebalances take minutes.
func awaitRunning(t *testing.T, r *chaosRun, name string, tasks int) {
	t.Helper()
	sluicetest.Eventually(t, 4*time.Minute, fmt.Sprintf("%s RUNNING with %d tasks", name, tasks), func() (bool, string) {
		st, err := getStatus(r.liveURLs()[0], name)
		if err != nil {
			return false, err.Error()
		}
		ok := st.Connector.State == api.StateRunning && len(st.Tasks) == tasks
		for _, ts := range st.Tasks {
			ok = ok && ts.State == api.StateRunning
		}
		return ok, fmt.Sprintf("%+v", st)
	})
}

// createConnector creates a connector, asking again while the cluster answers 409 (a
// rebalance is underway: on a loaded machine workers lose and regain their membership).
func createConnector(t *testing.T, base, name string, config map[string]string) {
	t.Helper()
	sluicetest.Eventually(t, 3*time.Minute, "connector "+name+" created", func() (bool, string) {
		var out map[string]any
		code := sluicetest.Call(t, "POST", base+"/connectors", map[string]any{"name": name, "config": config}, &out)
		if code == http.StatusConflict {
			if strings.Contains(fmt.Sprint(out["message"]), "already exists") {
				return true, "" // an earlier try went through after all
			}
			return false, fmt.Sprintf("%d %v", code, out)
		}
		if code != http.StatusCreated {
			t.Fatalf("create connector %s: %d %v", name, code, out)
		}
		return true, ""
	})
}

// summary is one line of a check's figures.
func summary(res *check.Result) string {
	parts := []string{fmt.Sprintf("sent %d", len(res.Sent))}
	for _, s := range append([]check.Store{res.Topic}, res.Stores...) {
		part := fmt.Sprintf("%s found %d lost %d dup %d", s.Name, s.Found, s.Lost, s.Duplicated)
		if s.Name != "topic" {
			part += fmt.Sprintf(" lag %d", s.Lag)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// explainLosses says, for each lost frame, when it was published, where it is missing, and
// what the workers logged around then.
func (r *chaosRun) explainLosses(res *check.Result) {
	var report strings.Builder
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		r.t.Log(line)
		report.WriteString(line + "\n")
	}
	defer func() {
		path := filepath.Join(r.outDir, "losses.txt")
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err == nil {
			r.t.Logf("the losses, with the worker logs around them, are in %s", path)
		}
	}()
	lost := map[string][]string{}
	for _, s := range append([]check.Store{res.Topic}, res.Stores...) {
		for _, id := range s.LostIDs {
			lost[id] = append(lost[id], s.Name)
		}
	}
	ids := make([]string, 0, len(lost))
	for id := range lost {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return res.Sent[a].SentAt.Compare(res.Sent[b].SentAt) })
	// The first frame of each device, for "was it the device's first?"
	first := map[string]string{}
	for id, f := range res.Sent {
		if g, ok := first[f.Device]; !ok || f.SentAt.Before(res.Sent[g].SentAt) || (f.SentAt.Equal(res.Sent[g].SentAt) && id < g) {
			first[f.Device] = id
		}
	}
	r.mu.Lock()
	say("the chaos, in order:\n%s", strings.Join(r.events, "\n"))
	r.mu.Unlock()
	for i, id := range ids {
		if i == 20 {
			say("... and %d more lost frames", len(ids)-20)
			break
		}
		f := res.Sent[id]
		_, unrouted := r.unrouted.Load(id)
		say("LOST %s (device %s, MQTT topic %s, first of its device: %v) published %s (%.3fs into the run), missing from %v; the broker's PUBACK said no subscription matched it: %v",
			id, f.Device, f.Topic, first[f.Device] == id, f.SentAt.UTC().Format("15:04:05.000"), f.SentAt.Sub(r.t0).Seconds(), lost[id], unrouted)
	}
	if len(ids) == 0 {
		return
	}
	// What the workers' debug logs say of the lost frames' MQTT topics: whether an
	// mqtt-source connection received them and acknowledged them to the broker.
	r.mu.Lock()
	all := slices.Clone(r.all)
	r.mu.Unlock()
	for _, id := range ids[:min(5, len(ids))] {
		topic := "topic=" + res.Sent[id].Topic + " "
		var traced []string
		for _, w := range all {
			for _, line := range strings.Split(w.Log.String(), "\n") {
				if strings.Contains(line, topic) && strings.Contains(line, "msg=\"message ") {
					traced = append(traced, w.URL+" "+line)
				}
			}
		}
		say("%s: its MQTT topic in the mqtt-source traces (a connection's first %d messages and acknowledgements):\n%s", id, 100, strings.Join(traced, "\n"))
	}
	// Worker log lines around the first lost frames' publish times.
	windows := map[time.Time]bool{}
	for _, id := range ids[:min(5, len(ids))] {
		windows[res.Sent[id].SentAt.Truncate(time.Second)] = true
	}
	for at := range windows {
		from, to := at.Add(-2*time.Second), at.Add(3*time.Second)
		var lines []string
		r.mu.Lock()
		procs := slices.Clone(r.all)
		r.mu.Unlock()
		for _, w := range procs {
			for _, line := range strings.Split(w.Log.String(), "\n") {
				if ts, ok := logTime(line); ok && !ts.Before(from) && ts.Before(to) && !strings.Contains(line, "level=DEBUG") {
					lines = append(lines, w.URL+" "+line)
				}
			}
		}
		slices.SortFunc(lines, func(a, b string) int {
			ta, _ := logTime(a[strings.Index(a, " ")+1:])
			tb, _ := logTime(b[strings.Index(b, " ")+1:])
			return ta.Compare(tb)
		})
		if len(lines) > 80 {
			lines = append(lines[:80], fmt.Sprintf("... %d more", len(lines)-80))
		}
		say("worker logs from %s to %s:\n%s", from.UTC().Format("15:04:05.000"), to.UTC().Format("15:04:05.000"), strings.Join(lines, "\n"))
	}
}

// logTime reads the time= field that starts a worker's log line.
func logTime(line string) (time.Time, bool) {
	v, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	v, _, _ = strings.Cut(v, " ")
	ts, err := time.Parse(time.RFC3339Nano, v)
	return ts, err == nil
}

// saveLogs writes each worker's log, and the chaos' events, into dir.
func (r *chaosRun) saveLogs(dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, w := range r.all {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("worker-%d.log", i+1)), []byte(w.URL+"\n"+w.Log.String()), 0o644)
	}
	_ = os.WriteFile(filepath.Join(dir, "events.txt"), []byte(strings.Join(r.events, "\n")+"\n"), 0o644)
}

// checkStillRunning: every connector and task RUNNING at the end.
func (r *chaosRun) checkStillRunning() {
	urls := r.liveURLs()
	for name, tasks := range r.connectors {
		sluicetest.Eventually(r.t, time.Minute, name+" RUNNING at the end", func() (bool, string) {
			st, err := getStatus(urls[0], name)
			if err != nil {
				return false, err.Error()
			}
			ok := st.Connector.State == api.StateRunning && len(st.Tasks) == tasks
			for _, ts := range st.Tasks {
				ok = ok && ts.State == api.StateRunning
			}
			return ok, fmt.Sprintf("%+v", st)
		})
	}
}

func getStatus(base, name string) (api.ConnectorStatus, error) {
	var st api.ConnectorStatus
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(base + "/connectors/" + name + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("%s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// notRunning is the poller's finding.
type notRunning struct {
	longest time.Duration
	task    string
	from    time.Time
	polls   int
}

type statusPoller struct {
	quit, done chan struct{}
	res        notRunning
}

// startStatusPoller polls every connector's status on a live worker every 250 ms and keeps
// the longest span during which a task was not RUNNING on a live worker (its state other than
// RUNNING, the task missing, or its worker one that was killed).
func startStatusPoller(r *chaosRun) *statusPoller {
	p := &statusPoller{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		downSince := map[string]time.Time{}
		note := func(task string, since, until time.Time) {
			if d := until.Sub(since); d > p.res.longest {
				p.res.longest, p.res.task, p.res.from = d, task, since
			}
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				now := time.Now()
				for task, since := range downSince {
					note(task, since, now)
				}
				return
			case <-tick.C:
			}
			r.mu.Lock()
			conns := make(map[string]int, len(r.connectors))
			for k, v := range r.connectors {
				conns[k] = v
			}
			alive := make(map[string]bool, len(r.alive))
			for k, v := range r.alive {
				alive[k] = v
			}
			r.mu.Unlock()
			urls := r.liveURLs()
			now := time.Now()
			for name, tasks := range conns {
				var st api.ConnectorStatus
				var err error
				for _, u := range urls {
					if st, err = getStatus(u, name); err == nil {
						break
					}
				}
				if err != nil {
					continue // no live worker answered: no sample
				}
				up := map[int]bool{}
				for _, ts := range st.Tasks {
					if ts.State == api.StateRunning && alive[ts.WorkerID] {
						up[int(ts.ID)] = true
					}
				}
				for id := range tasks {
					task := fmt.Sprintf("%s-%d", strings.TrimPrefix(name, r.prefix+"-"), id)
					since, down := downSince[task]
					switch {
					case up[id] && down:
						note(task, since, now)
						delete(downSince, task)
					case !up[id] && !down:
						downSince[task] = now
					}
				}
			}
			p.res.polls++
		}
	}()
	return p
}

func (p *statusPoller) stop() notRunning {
	close(p.quit)
	<-p.done
	return p.res
}

// awaitSubscribed waits until each MQTT client has logged that it subscribed, polling the
// worker logs often, so that the simulator starts right after.
func awaitSubscribed(t *testing.T, r *chaosRun, clients []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var missing []string
		r.mu.Lock()
		procs := slices.Clone(r.all)
		r.mu.Unlock()
		for _, c := range clients {
			found := false
			for _, w := range procs {
				for _, line := range strings.Split(w.Log.String(), "\n") {
					if strings.Contains(line, "msg=subscribed") && strings.Contains(line, "client="+c+" ") {
						found = true
					}
				}
			}
			if !found {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mqtt-source clients %v did not log msg=subscribed within a minute", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- Kafka

func topicPartitions(t *testing.T, bootstrap, topic string) (int, error) {
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := admin.DescribeTopics(ctx, kafka.NewTopicCollectionOfTopicNames([]string{topic}))
	if err != nil {
		return 0, err
	}
	d := res.TopicDescriptions[0]
	if d.Error.Code() != kafka.ErrNoError {
		return 0, d.Error
	}
	return len(d.Partitions), nil
}

// createTopics creates topics with these partition counts and the brokers' replication
// factor, compacted when compact is set.
func createTopics(t *testing.T, bootstrap string, partitions map[string]int, compact bool) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var specs []kafka.TopicSpecification
	for topic, n := range partitions {
		spec := kafka.TopicSpecification{Topic: topic, NumPartitions: n, ReplicationFactor: -1}
		if compact {
			spec.Config = map[string]string{"cleanup.policy": "compact"}
		}
		specs = append(specs, spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			t.Fatalf("create topic %s: %v", r.Topic, r.Error)
		}
	}
}

func topicExists(t *testing.T, bootstrap, topic string) bool {
	n, err := topicPartitions(t, bootstrap, topic)
	return err == nil && n > 0
}

// awaitBrokers waits until the cluster shows n brokers.
func awaitBrokers(t *testing.T, bootstrap string, n int) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	sluicetest.Eventually(t, 5*time.Minute, fmt.Sprintf("%d Kafka brokers", n), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := admin.DescribeCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(d.Nodes) == n, fmt.Sprintf("%d brokers", len(d.Nodes))
	})
}

// awaitTopic waits until the topic exists and returns its partition count.
func awaitTopic(t *testing.T, bootstrap, topic string) int {
	t.Helper()
	n := 0
	sluicetest.Eventually(t, 3*time.Minute, "topic "+topic+" to exist", func() (bool, string) {
		var err error
		n, err = topicPartitions(t, bootstrap, topic)
		if err != nil {
			return false, err.Error()
		}
		return n > 0, ""
	})
	return n
}

// ---- PostgreSQL and MongoDB

func pgExec(t *testing.T, url, stmt string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatal(err)
	}
}

func dropMongo(uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return
	}
	_ = client.Database(db).Drop(ctx)
	_ = client.Disconnect(ctx)
}

// ---- Iceberg

// lake is a local Iceberg warehouse with a SQLite SQL catalog.
type lake struct {
	dir, uri, warehouse, namespace, table string
}

func lakeOf(dir string) lake {
	return lake{dir: dir, uri: "sqlite://" + filepath.Join(dir, "catalog.db"), warehouse: "file://" + filepath.Join(dir, "warehouse"),
		namespace: "chaos", table: "raw"}
}

// createTable makes the frames' table before the sink starts, with doubles for the readings
// (from the first record's JSON the sink would make a whole reading's column a long).
func (l lake) createTable(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.dir, "catalog.db")+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := sqlcat.NewCatalog("sluice", db, sqlcat.SQLite, iceberg.Properties{"warehouse": l.warehouse,
		"init_catalog_tables": "true", sqlcat.SchemaVersionKey: sqlcat.SchemaVersionV1})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	sluicetest.CreateFramesTable(t, cat, l.namespace, l.table)
}
