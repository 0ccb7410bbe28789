package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The Kafka Connect yardstick of `make bench` (issue 18): the same work done by a distributed
// Apache Kafka Connect worker (its Maven Central jars, scripts/testenv connect) and by a Sluice
// worker process, one side at a time, on the same broker: 1,000,000 lines of 95 bytes from a
// file to a topic (FileStreamSource / file-source), and from the topic to a file
// (FileStreamSink / file, the value alone per line, without fsync on either side), one task,
// StringConverter on both. It prints records/s, CPU-seconds of the worker process, idle and
// peak resident memory, and the ratios, as BENCH lines.

// benchLines is how many lines each side moves each way; lineBytes is each line's length
// with its newline (a fixed length, so a sink file's size counts its lines).
const (
	benchLines = 1_000_000
	lineBytes  = 95
)

// benchSide is one system under measurement: how to start it and create its connectors.
type benchSide struct {
	name   string
	start  func(t *testing.T) (url string, pid int)
	source func(file, topic string) map[string]string
	sink   func(topic, file string) map[string]string
	// sinkLineBytes is how long a line the sink writes is: FileStreamSink writes the string as
	// it is, Sluice's file sink (format value) writes it as JSON, in quotes.
	sinkLineBytes int64
}

// phase is what one side measured while doing one job.
type phase struct {
	wall, firstToLast time.Duration
	cpu               float64 // CPU-seconds of the worker process
	peakRSS           int64   // bytes
	peakAnon          int64   // bytes of anonymous memory (RssAnon: heaps and queues, not the mapped binary)
}

// rate is the records per second from the first record done to the last: start-up (a
// consumer group join takes Kafka Connect from 0.3 to 8 s here) is left out on both sides,
// and reported apart as the wall time.
func (p phase) rate() float64 { return benchLines / p.firstToLast.Seconds() }

func (p phase) String() string {
	return fmt.Sprintf("%v (first to last %v, %.0f records/s), %.1f CPU-s, peak RSS %d MB (anon %d)", p.wall.Round(10*time.Millisecond),
		p.firstToLast.Round(10*time.Millisecond), p.rate(), p.cpu, p.peakRSS>>20, p.peakAnon>>20)
}

type sideResult struct {
	idleRSS               int64
	idleAnon              int64
	source, sink, discard phase
}

// discardSink is the settings that make a side's file sink a discarding one: Kafka's Filter
// transformation (on both sides) drops every record before the task, so what is measured is
// the runtime: consuming, converting, transforming and committing. Its end is the connector's
// group committing the last offset (both workers commit every 100 ms here).
var discardSink = map[string]string{"transforms": "drop", "transforms.drop.type": "org.apache.kafka.connect.transforms.Filter"}

func TestThroughputAgainstKafkaConnect(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("a benchmark: make bench runs it (SLUICE_BENCH=1)")
	}
	lib := os.Getenv("SLUICE_BENCH_CONNECT_LIB")
	if lib == "" {
		t.Skip("needs Kafka Connect's jars: SLUICE_BENCH_CONNECT_LIB=$(scripts/testenv connect)")
	}
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	dir := t.TempDir()
	input := filepath.Join(dir, "input.txt")
	writeLines(t, input)

	sides := []benchSide{
		{
			name: "kafka-connect",
			start: func(t *testing.T) (string, int) {
				return startKafkaConnect(t, lib, bootstrap, dir)
			},
			source: func(file, topic string) map[string]string {
				return map[string]string{"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
					"file": file, "topic": topic, "tasks.max": "1"}
			},
			sink: func(topic, file string) map[string]string {
				return map[string]string{"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
					"file": file, "topics": topic, "tasks.max": "1"}
			},
			sinkLineBytes: lineBytes,
		},
		{
			name: "sluice",
			start: func(t *testing.T) (string, int) {
				c := sluicetest.NewCluster(t)
				// SLUICE_BENCH_WORKER_SETTINGS="k=v,k=v" adds worker settings, to measure them.
				settings := sluicetest.SettingsFromEnv("SLUICE_BENCH_WORKER_SETTINGS", map[string]string{
					"value.converter":              "org.apache.kafka.connect.storage.StringConverter",
					"connector.file.allowed.paths": dir, "offset.flush.interval.ms": "100"})
				p := c.StartProcess(settings)
				return p.URL, p.Cmd.Process.Pid
			},
			source: func(file, topic string) map[string]string {
				return map[string]string{"connector.class": "file-source", "file": file, "kafka.topic": topic, "tasks.max": "1"}
			},
			sink: func(topic, file string) map[string]string {
				return map[string]string{"connector.class": "file", "file": file, "topics": topic, "tasks.max": "1",
					"format": "value", "fsync": "false"}
			},
			sinkLineBytes: lineBytes + 2,
		},
	}
	results := map[string]sideResult{}
	for _, side := range sides {
		// SLUICE_BENCH_SIDES=sluice runs one side alone, to try settings (no ratios then).
		if only := os.Getenv("SLUICE_BENCH_SIDES"); only != "" && !strings.Contains(only, side.name) {
			continue
		}
		t.Run(side.name, func(t *testing.T) {
			url, pid := side.start(t)
			// Idle: connected, internal topics read, no connectors; a moment to settle.
			time.Sleep(3 * time.Second)
			var r sideResult
			r.idleRSS, r.idleAnon = rss(pid)
			topic := sluicetest.UniqueName("bench-kc-" + side.name)
			sluicetest.CreateTopic(t, bootstrap, topic, 1)
			r.source = measure(t, pid, func() {
				sluicetest.CreateConnector(t, url, side.name+"-source", side.source(input, topic))
			}, func() int64 { return topicRecords(t, bootstrap, topic) })
			out := filepath.Join(dir, side.name+"-out.txt")
			r.sink = measure(t, pid, func() {
				sluicetest.CreateConnector(t, url, side.name+"-sink", side.sink(topic, out))
			}, func() int64 {
				st, err := os.Stat(out)
				if err != nil {
					return 0
				}
				return st.Size() / side.sinkLineBytes
			})
			r.discard = measure(t, pid, func() {
				cfg := side.sink(topic, filepath.Join(dir, side.name+"-discarded.txt"))
				maps.Copy(cfg, discardSink)
				sluicetest.CreateConnector(t, url, side.name+"-discard", cfg)
			}, func() int64 { return committedRecords(t, bootstrap, "connect-"+side.name+"-discard", topic) })
			results[side.name] = r
			t.Logf("%s: idle RSS %d MB (anon %d); source %s; sink %s; discarding sink %s", side.name, r.idleRSS>>20, r.idleAnon>>20, r.source, r.sink, r.discard)
		})
	}
	if len(results) < len(sides) {
		return
	}
	kc, sl := results["kafka-connect"], results["sluice"]
	if kc.source.wall == 0 || sl.source.wall == 0 {
		t.Fatal("a side did not finish")
	}
	for _, job := range []struct {
		name   string
		kc, sl phase
	}{{"file_source_to_kafka", kc.source, sl.source}, {"kafka_to_file_sink", kc.sink, sl.sink},
		{"kafka_to_discarding_sink", kc.discard, sl.discard}} {
		fmt.Printf("BENCH vs_kafka_connect %s kc_records_per_s=%.0f sluice_records_per_s=%.0f speed_ratio=%.2f kc_wall_s=%.2f sluice_wall_s=%.2f kc_cpu_s=%.1f sluice_cpu_s=%.1f records_per_cpu_s_ratio=%.2f kc_peak_rss_mb=%d sluice_peak_rss_mb=%d kc_peak_anon_mb=%d sluice_peak_anon_mb=%d\n",
			job.name, job.kc.rate(), job.sl.rate(), job.sl.rate()/job.kc.rate(), job.kc.wall.Seconds(), job.sl.wall.Seconds(),
			job.kc.cpu, job.sl.cpu, job.kc.cpu/job.sl.cpu, job.kc.peakRSS>>20, job.sl.peakRSS>>20, job.kc.peakAnon>>20, job.sl.peakAnon>>20)
	}
	fmt.Printf("BENCH vs_kafka_connect idle_rss_mb kc=%d sluice=%d ratio=%.2f anon_kc=%d anon_sluice=%d\n", kc.idleRSS>>20, sl.idleRSS>>20, float64(sl.idleRSS)/float64(kc.idleRSS), kc.idleAnon>>20, sl.idleAnon>>20)
}

// writeLines writes benchLines fixed-length lines.
func writeLines(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range benchLines {
		fmt.Fprintf(w, "%0*d\n", lineBytes-1, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// measure starts a job and samples the worker process until done reports every line: the
// time from the start, from the first line done to the last, the CPU time the process used,
// and its peak resident memory.
func measure(t *testing.T, pid int, start func(), done func() int64) phase {
	t.Helper()
	cpu0 := cpuSeconds(t, pid)
	t0 := time.Now()
	start()
	var p phase
	var first time.Time
	deadline := t0.Add(10 * time.Minute)
	for {
		m, anon := rss(pid)
		p.peakRSS, p.peakAnon = max(p.peakRSS, m), max(p.peakAnon, anon)
		n := done()
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		if n >= benchLines {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d lines", n, benchLines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.wall, p.firstToLast = time.Since(t0), time.Since(first)
	p.cpu = cpuSeconds(t, pid) - cpu0
	return p
}

// procStatus reads a process's /proc status lines as name -> value ("VmRSS" -> "131072 kB").
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields, nil
}

// rss is a process's resident set size and the anonymous part of it, in bytes; 0 when they
// cannot be read.
func rss(pid int) (total, anon int64) {
	fields, _ := procStatus(pid)
	kb, _ := strconv.ParseInt(strings.TrimSuffix(fields["VmRSS"], " kB"), 10, 64)
	anonKB, _ := strconv.ParseInt(strings.TrimSuffix(fields["RssAnon"], " kB"), 10, 64)
	return kb << 10, anonKB << 10
}

// cpuSeconds reads the user and system CPU time a process has used, from /proc.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// topicRecords sums the high watermarks of a topic's partitions.
func topicRecords(t *testing.T, bootstrap, topic string) int64 {
	watermarks.once.Do(func() {
		watermarks.c, watermarks.err = kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
	})
	if watermarks.err != nil {
		t.Fatal(watermarks.err)
	}
	md, err := watermarks.c.GetMetadata(&topic, false, 5000)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range md.Topics[topic].Partitions {
		_, high, err := watermarks.c.QueryWatermarkOffsets(topic, p.ID, 5000)
		if err != nil {
			return 0
		}
		n += high
	}
	return n
}

// committedRecords is the offset a consumer group committed for a topic's partition 0: the
// records a one-partition sink is done with.
func committedRecords(t *testing.T, bootstrap, group, topic string) int64 {
	committed.once.Do(func() {
		committed.a, committed.err = kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	})
	if committed.err != nil {
		t.Fatal(committed.err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := committed.a.ListConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{
		{Group: group, Partitions: []kafka.TopicPartition{{Topic: &topic, Partition: 0}}}})
	if err != nil || len(res.ConsumerGroupsTopicPartitions) == 0 || len(res.ConsumerGroupsTopicPartitions[0].Partitions) == 0 {
		return 0
	}
	return max(0, int64(res.ConsumerGroupsTopicPartitions[0].Partitions[0].Offset))
}

var committed struct {
	once sync.Once
	a    *kafka.AdminClient
	err  error
}

var watermarks struct {
	once sync.Once
	c    *kafka.Consumer
	err  error
}

// startKafkaConnect runs a distributed Kafka Connect worker from the jars in lib as its own
// start script (connect-distributed.sh) does, with its heap and GC settings, and waits until
// its REST API lists the file connectors.
func startKafkaConnect(t *testing.T, lib, bootstrap, dir string) (string, int) {
	t.Helper()
	prefix := sluicetest.UniqueName("bench-kc")
	port := sluicetest.FreePort(t)
	props := filepath.Join(dir, "connect-distributed.properties")
	settings := []string{
		"bootstrap.servers=" + bootstrap,
		"group.id=" + prefix,
		"key.converter=org.apache.kafka.connect.storage.StringConverter",
		"value.converter=org.apache.kafka.connect.storage.StringConverter",
		"config.storage.topic=" + prefix + "-configs",
		"offset.storage.topic=" + prefix + "-offsets",
		"status.storage.topic=" + prefix + "-status",
		"config.storage.replication.factor=1",
		"offset.storage.replication.factor=1",
		"status.storage.replication.factor=1",
		fmt.Sprintf("listeners=http://127.0.0.1:%d", port),
		"rest.advertised.host.name=127.0.0.1",
		"offset.flush.interval.ms=100", // sink offsets committed as often as Sluice's here (the discarding sink's end)
	}
	if err := os.WriteFile(props, []byte(strings.Join(settings, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("java", "-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
		"-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
		"-cp", filepath.Join(lib, "*"), "org.apache.kafka.connect.cli.ConnectDistributed", props)
	log := &sluicetest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("Kafka Connect log:\n%s", log.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	sluicetest.Eventually(t, 2*time.Minute, "Kafka Connect to list its plugins", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("Kafka Connect exited: %s", log.String())
		default:
		}
		resp, err := http.Get(url + "/connector-plugins")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var plugins []map[string]any
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&plugins) != nil {
			return false, resp.Status
		}
		return len(plugins) >= 2, fmt.Sprint(plugins)
	})
	return url, cmd.Process.Pid
}
