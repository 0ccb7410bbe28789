package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/internal/simulate"
	"github.com/sluicehq/sluice/worker"
	"github.com/sluicehq/sluice/worker/api"
)

// devOptions are the flags of `sluice dev`.
type devOptions struct {
	rest, mqtt, dir string
	mongodb         string
	timescale       string
	influxdb        string // InfluxDB URL; the token, if any, from INFLUXDB_TOKEN
	influxBucket    string
	influxOrg       string
	influxToken     bool // INFLUXDB_TOKEN is set: the connector refers to it as ${env:INFLUXDB_TOKEN}
	metricsPort     int
	logLevel        string
	sim             func() (simulate.Config, error)
}

// devConnector is one connector of the demo pipeline.
type devConnector struct {
	name   string
	config map[string]string
}

// The demo's topics.
const (
	devRawTopic     = "sensor-frames"
	devDeadLetters  = "sensor-frames-dlq"
	devAggTopic     = "sensor-aggregates"
	devMetricsTopic = "sensor-metrics"
)

// devPipeline is the demo pipeline: sensors -> MQTT -> mqtt-source -> raw topic -> aggregation,
// a lake (iceberg-sink), a scrape endpoint (prometheus-sink), and MongoDB and TimescaleDB when
// their connection settings are given.
func devPipeline(o devOptions, mqttURL string) []devConnector {
	tolerant := map[string]string{"errors.tolerance": "all", "errors.log.enable": "true",
		"errors.deadletterqueue.topic.name": devDeadLetters, "errors.deadletterqueue.context.headers.enable": "true",
		"errors.deadletterqueue.topic.replication.factor": "1"}
	with := func(cfg map[string]string, extra ...map[string]string) map[string]string {
		for _, e := range extra {
			for k, v := range e {
				cfg[k] = v
			}
		}
		return cfg
	}
	p := []devConnector{
		{"sensors-mqtt", with(map[string]string{
			"connector.class": "mqtt-source", "mqtt.server.uris": mqttURL, "mqtt.topics": "sensors/#", "mqtt.qos": "1",
			"kafka.topic": devRawTopic, "key.source": "field", "key.field": "device_id",
			"timestamp.source": "field", "timestamp.field": "ts", "payload.format": "json",
			"topic.creation.default.partitions": "3", "topic.creation.default.replication.factor": "1"}, tolerant)},
		// Per-sensor 10 s windows, so the demo shows aggregates within seconds.
		{"sensors-aggregate", with(map[string]string{
			"connector.class": "aggregate", "kafka.bootstrap.servers": "${bootstrap}", "source.topic": devRawTopic,
			"output.topic": devAggTopic, "metrics.topic": devMetricsTopic, "group.by": "device_id",
			"window.size": "10s", "watermark.out.of.order": "2s", "allowed.lateness": "30s",
			"dedupe.field": "frame_id", "topic.replication.factor": "1"}, tolerant)},
		{"sensors-lake", with(map[string]string{
			"connector.class": "iceberg-sink", "topics": devRawTopic,
			"catalog.uri": filepath.Join(o.dir, "catalog.db"), "warehouse": "file://" + filepath.Join(o.dir, "warehouse"),
			"table.namespace": "sensors", "schema.timestamp.fields": "ts", "schema.json.numbers": "double", "commit.interval": "10s"}, tolerant)},
		{"sensors-prometheus", with(map[string]string{
			"connector.class": "prometheus-sink", "topics": devRawTopic, "listen.address": fmt.Sprintf("127.0.0.1:%d", o.metricsPort),
			"metric.name": "sensor", "value.fields": "temperature,humidity,pressure,luminosity,battery",
			"label.fields": "device_id,place_id"}, tolerant)},
	}
	if o.mongodb != "" {
		// Raw frames by frame id (a duplicate overwrites itself), aggregates by their window key.
		p = append(p, devConnector{"sensors-mongodb", with(map[string]string{
			"connector.class": "mongodb-sink", "topics": devRawTopic, "connection.uri": o.mongodb,
			"database": "sluice_dev", "collection": "frames", "id.strategy": "fields", "id.fields": "frame_id"}, tolerant)},
			devConnector{"sensors-mongodb-aggregates", with(map[string]string{
				"connector.class": "mongodb-sink", "topics": devAggTopic, "connection.uri": o.mongodb,
				"database": "sluice_dev", "collection": "aggregates", "id.strategy": "key"}, tolerant)})
	}
	if o.timescale != "" {
		p = append(p, devConnector{"sensors-timescale", with(map[string]string{
			"connector.class": "timescale-sink", "topics": devRawTopic, "connection.url": o.timescale,
			"table": "sensor_frames", "time.field": "ts", "insert.mode": "upsert", "key.columns": "frame_id,time",
			"auto.create": "true", "auto.evolve": "true"}, tolerant)},
			devConnector{"sensors-timescale-aggregates", with(map[string]string{
				"connector.class": "timescale-sink", "topics": devAggTopic, "connection.url": o.timescale,
				"table": "sensor_aggregates", "time.field": "window_start", "insert.mode": "upsert",
				"key.columns": "device_id,time", "auto.create": "true", "auto.evolve": "true"}, tolerant)})
	}
	if o.influxdb != "" {
		cfg := map[string]string{
			"connector.class": "influxdb-sink", "topics": devAggTopic, "influxdb.url": o.influxdb,
			"influxdb.bucket": o.influxBucket, "influxdb.org": o.influxOrg,
			"tags": "device_id", "time.field": "window_start"}
		if o.influxToken {
			cfg["influxdb.token"] = "${env:INFLUXDB_TOKEN}" // resolved by the worker, never stored
		}
		p = append(p, devConnector{"sensors-influxdb-aggregates", with(cfg, tolerant)})
	}
	return p
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o devOptions
	fs.StringVar(&o.rest, "rest", "127.0.0.1:8083", "address of the REST API")
	fs.StringVar(&o.mqtt, "mqtt", "127.0.0.1:1883", "address of the embedded MQTT broker")
	fs.StringVar(&o.dir, "dir", "sluice-dev", "directory for the demo's files (the lake's warehouse)")
	fs.StringVar(&o.mongodb, "mongodb", "", "MongoDB URI: adds the mongodb sink")
	fs.StringVar(&o.timescale, "timescale", "", "PostgreSQL/TimescaleDB URL: adds the timescale sink")
	fs.StringVar(&o.influxdb, "influxdb", "", "InfluxDB URL (http://localhost:8086): adds the influxdb sink for the aggregates; its token, if any, is read from $INFLUXDB_TOKEN")
	fs.StringVar(&o.influxBucket, "influxdb-bucket", "sensors", "InfluxDB bucket (on InfluxDB 1.8+, the database)")
	fs.StringVar(&o.influxOrg, "influxdb-org", "", "InfluxDB organization (2.x)")
	fs.IntVar(&o.metricsPort, "metrics-port", 9400, "port of the prometheus sink's scrape endpoint")
	fs.StringVar(&o.logLevel, "log-level", "WARN", "worker log level")
	simFlags := flag.NewFlagSet("simulate", flag.ContinueOnError)
	o.sim = simulateFlags(simFlags)
	// The simulator's settings are the demo's, except where it must point.
	devices := fs.Int("devices", 20, "simulated sensors")
	rate := fs.Float64("rate", 20, "frames per second over all sensors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_ = simFlags.Parse([]string{"--devices", fmt.Sprint(*devices), "--rate", fmt.Sprint(*rate), "--malformed", "0.01",
		"--duplicates", "0.01", "--out-of-order", "0.02"})
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	abs, _ := filepath.Abs(o.dir)
	o.dir = abs

	// An in-process Kafka and MQTT broker.
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return fmt.Errorf("embedded Kafka: %w", err)
	}
	defer kafka.Close()
	bootstrap := strings.Join(kafka.ListenAddrs(), ",")
	broker := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_ = broker.AddHook(new(auth.AllowHook), nil)
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: o.mqtt})); err != nil {
		return fmt.Errorf("embedded MQTT broker on %s: %w", o.mqtt, err)
	}
	go func() { _ = broker.Serve() }()
	defer broker.Close()
	mqttURL := "tcp://" + o.mqtt

	// One worker, driven through its REST API like any other.
	settings := map[string]string{
		"bootstrap.servers": bootstrap, "group.id": "sluice-dev", "listeners": "http://" + o.rest,
		"config.storage.topic": "sluice-configs", "offset.storage.topic": "sluice-offsets", "status.storage.topic": "sluice-status",
		"config.storage.replication.factor": "1", "offset.storage.replication.factor": "1", "status.storage.replication.factor": "1",
		"offset.flush.interval.ms": "1000", "scheduled.rebalance.max.delay.ms": "0",
		"key.converter": "string", "value.converter": "json", "value.converter.schemas.enable": "false",
	}
	if o.influxToken = os.Getenv("INFLUXDB_TOKEN") != ""; o.influxToken {
		settings["config.providers"] = "env"
		settings["config.providers.env.param.allowlist.pattern"] = "INFLUXDB_TOKEN"
	}
	cfg, err := worker.ParseWorkerConfig(settings)
	if err != nil {
		return err
	}
	levels := worker.NewLogLevels(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn)
	if _, err := levels.Set("root", o.logLevel); err != nil {
		return err
	}
	ws, err := startWorker(ctx, cfg, levels, io.Discard)
	if err != nil {
		return err
	}
	defer ws.stop()
	base := ws.w.URL()

	// The aggregate connector writes through its own transactional clients, so the runtime's
	// record counters say nothing of it: the progress line counts the others.
	var created, counted []string
	for _, c := range devPipeline(o, mqttURL) {
		if _, ok := connect.Default().Lookup(c.config["connector.class"]); !ok {
			fmt.Fprintf(stdout, "  (skipping %s: this build has no %s connector)\n", c.name, c.config["connector.class"])
			continue
		}
		for k, v := range c.config {
			c.config[k] = strings.ReplaceAll(v, "${bootstrap}", bootstrap)
		}
		if err := devCreate(ctx, base, c); err != nil {
			return err
		}
		created = append(created, c.name)
		if c.config["connector.class"] != "aggregate" {
			counted = append(counted, c.name)
		}
	}

	simCfg, err := o.sim()
	if err != nil {
		return err
	}
	simCfg.Broker = mqttURL
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan simulate.Summary, 1)
	go func() {
		sum, err := simulate.Run(simCtx, simCfg)
		if err != nil && simCtx.Err() == nil {
			fmt.Fprintf(stderr, "simulator: %v\n", err)
		}
		simDone <- sum
	}()

	fmt.Fprintf(stdout, `Sluice dev: %d simulated sensors -> MQTT -> Kafka -> %s
  web console     %s/ui/
  REST API        %s   (curl %s/connectors?expand=status)
  worker metrics  %s/metrics
  sensor metrics  http://127.0.0.1:%d/metrics   (prometheus-sink)
  lake warehouse  %s
  Kafka           %s (embedded)   MQTT %s (embedded)
Ctrl-C stops.
`, simCfg.Devices, strings.Join(created, ", "), base, base, base, base, o.metricsPort, filepath.Join(o.dir, "warehouse"), bootstrap, mqttURL)

	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopSim()
			sum := <-simDone
			fmt.Fprintf(stdout, "\nstopping: simulator %s\n", sum)
			return nil
		case <-tick.C:
			fmt.Fprintf(stdout, "\r%s", devProgress(ctx, ws.w, base, counted, created))
		}
	}
}

// devCreate creates a connector through the REST API.
func devCreate(ctx context.Context, base string, c devConnector) error {
	body, _ := json.Marshal(map[string]any{"name": c.name, "config": c.config})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/connectors", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("creating %s: %w", c.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("creating %s: %s %s", c.name, resp.Status, b)
	}
	return nil
}

// devProgress is one line: records through each connector and the tasks' states.
func devProgress(ctx context.Context, w *worker.Worker, base string, counted, names []string) string {
	counts := map[string]float64{}
	mfs, _ := w.Metrics().Gather()
	for _, mf := range mfs {
		if n := mf.GetName(); n != "sluice_source_records_written_total" && n != "sluice_sink_records_put_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	running, total := 0, 0
	for _, n := range names {
		var st api.ConnectorStatus
		if devGet(ctx, base+"/connectors/"+n+"/status", &st) == nil {
			for _, t := range st.Tasks {
				total++
				if t.State == api.StateRunning {
					running++
				}
			}
		}
	}
	var parts []string
	for _, n := range counted {
		parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(n, "sensors-"), counts[n]))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%s | records: %s | tasks running %d/%d   ", time.Now().Format("15:04:05"), strings.Join(parts, ", "), running, total)
}

func devGet(ctx context.Context, url string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
