package worker_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// fileSeqs reads a file sink's JSON lines and counts each (task, partition, seq) of datagen
// values.
func fileSeqs(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Value struct {
				Task, Partition, Seq int64
			} `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue // a torn last line of a killed writer
		}
		out[fmt.Sprintf("%d/%d/%d", line.Value.Task, line.Value.Partition, line.Value.Seq)]++
	}
	return out
}

// missingSeqs lists the (task, partition, seq) in [0, perPartition) absent from seqs.
func missingSeqs(seqs map[string]int, tasks, partitions, perPartition int) []string {
	var missing []string
	for task := 0; task < tasks; task++ {
		for p := 0; p < partitions; p++ {
			for s := 0; s < perPartition; s++ {
				if k := fmt.Sprintf("%d/%d/%d", task, p, s); seqs[k] == 0 {
					missing = append(missing, k)
				}
			}
		}
	}
	return missing
}

func datagenConfig(topic string, extra map[string]string) map[string]string {
	c := map[string]string{"connector.class": "datagen", "kafka.topic": topic, "tasks.max": "2", "partitions": "2",
		"max.records": "500", "topic.creation.default.partitions": "2", "topic.creation.default.replication.factor": "-1"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func fileSinkConfig(topic, path string) map[string]string {
	return map[string]string{"connector.class": "file", "topics": topic, "file": path, "tasks.max": "2"}
}

func TestDatagenToFileThroughREST(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("dg")
	out := filepath.Join(t.TempDir(), "out.jsonl")

	var info api.ConnectorInfo
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "gen", "config": datagenConfig(topic, nil)}, &info); code != 201 {
		t.Fatalf("create source: %d %+v", code, info)
	}
	if info.Name != "gen" || info.Type != "source" || info.Config["name"] != "gen" {
		t.Fatalf("create answered %+v", info)
	}
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "sink", "config": fileSinkConfig(topic, out)}, nil); code != 201 {
		t.Fatalf("create sink: %d", code)
	}
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "sink", "config": fileSinkConfig(topic, out)}, nil); code != 409 {
		t.Fatalf("creating an existing connector answered %d, want 409", code)
	}
	sluicetest.WaitState(t, w.URL, "gen", api.StateRunning, 2)
	sluicetest.WaitState(t, w.URL, "sink", api.StateRunning, 2)

	sluicetest.Eventually(t, 90*time.Second, "every sequence number in the file", func() (bool, string) {
		missing := missingSeqs(fileSeqs(t, out), 2, 2, 250)
		return len(missing) == 0, fmt.Sprintf("%d missing, e.g. %v", len(missing), first(missing, 5))
	})

	var list []string
	sluicetest.Call(t, "GET", w.URL+"/connectors", nil, &list)
	if strings.Join(list, ",") != "gen,sink" {
		t.Errorf("GET /connectors = %v", list)
	}
	var expanded map[string]struct {
		Status api.ConnectorStatus `json:"status"`
		Info   api.ConnectorInfo   `json:"info"`
	}
	sluicetest.Call(t, "GET", w.URL+"/connectors?expand=status&expand=info", nil, &expanded)
	if expanded["sink"].Status.Connector.State != api.StateRunning || len(expanded["gen"].Info.Tasks) != 2 {
		t.Errorf("expand=status,info = %+v", expanded)
	}
	var tasks []api.TaskInfo
	sluicetest.Call(t, "GET", w.URL+"/connectors/gen/tasks", nil, &tasks)
	if len(tasks) != 2 || tasks[1].ID.Task != 1 || tasks[0].Config["kafka.topic"] != topic {
		t.Errorf("tasks = %+v", tasks)
	}
	var topics map[string]struct{ Topics []string }
	sluicetest.Eventually(t, 10*time.Second, "active topics", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/sink/topics", nil, &topics)
		return len(topics["sink"].Topics) == 1 && topics["sink"].Topics[0] == topic, fmt.Sprint(topics)
	})

	// Source offsets: the last stored sequence of each partition.
	var offs api.ConnectorOffsets
	sluicetest.Eventually(t, 10*time.Second, "source offsets at the end", func() (bool, string) {
		sluicetest.Call(t, "GET", w.URL+"/connectors/gen/offsets", nil, &offs)
		if len(offs.Offsets) != 4 {
			return false, fmt.Sprint(offs)
		}
		for _, o := range offs.Offsets {
			if o.Offset["seq"] != float64(249) {
				return false, fmt.Sprint(offs)
			}
		}
		return true, ""
	})
	// Sink offsets: the consumer group's, summing to every record.
	sluicetest.Eventually(t, 20*time.Second, "sink offsets at the end", func() (bool, string) {
		offs = api.ConnectorOffsets{}
		sluicetest.Call(t, "GET", w.URL+"/connectors/sink/offsets", nil, &offs)
		sum := 0.0
		for _, o := range offs.Offsets {
			if o.Partition["kafka_topic"] == topic { // the group connect-sink may be older than this test
				sum += o.Offset["kafka_offset"].(float64)
			}
		}
		return sum == 1000, fmt.Sprint(offs)
	})
}

func first(s []string, n int) []string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

func TestLifecycleAndOffsets(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	topic := sluicetest.UniqueName("life")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "gen", "config": datagenConfig(topic, map[string]string{"tasks.max": "1", "partitions": "1", "max.records": "100"})}, nil)
	sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "sink", "config": fileSinkConfig(topic, out)}, nil)
	sluicetest.WaitState(t, w.URL, "gen", api.StateRunning, 1)
	sluicetest.Eventually(t, 60*time.Second, "100 records in the file", func() (bool, string) {
		n := len(fileSeqs(t, out))
		return n == 100, fmt.Sprint(n)
	})

	for _, tc := range []struct {
		verb, path string
		code       int
		state      api.State
		tasks      int
	}{
		{"PUT", "/pause", 202, api.StatePaused, 1},
		{"PUT", "/resume", 202, api.StateRunning, 1},
		{"PUT", "/stop", 204, api.StateStopped, 0},
		{"PUT", "/stop", 204, api.StateStopped, 0}, // idempotent
	} {
		if code := sluicetest.Call(t, tc.verb, w.URL+"/connectors/gen"+tc.path, nil, nil); code != tc.code {
			t.Fatalf("%s %s answered %d, want %d", tc.verb, tc.path, code, tc.code)
		}
		sluicetest.WaitState(t, w.URL, "gen", tc.state, tc.tasks)
	}

	// Offsets can be changed only when stopped: the sink is running.
	var e struct {
		Code    int    `json:"error_code"`
		Message string `json:"message"`
	}
	if code := sluicetest.Call(t, "DELETE", w.URL+"/connectors/sink/offsets", nil, &e); code != 400 || !strings.Contains(e.Message, "STOPPED") {
		t.Fatalf("reset of a running connector's offsets: %d %+v", code, e)
	}

	// Move the source ahead: it resumes at seq 1000 and generates up to max.records=100... so
	// set the offset back instead and check it replays from there.
	alter := map[string]any{"offsets": []map[string]any{{"partition": map[string]any{"task": 0, "partition": 0}, "offset": map[string]any{"seq": 89}}}}
	var msg struct{ Message string }
	if code := sluicetest.Call(t, "PATCH", w.URL+"/connectors/gen/offsets", alter, &msg); code != 200 || !strings.Contains(msg.Message, "altered") {
		t.Fatalf("alter source offsets: %d %+v", code, msg)
	}
	var offs api.ConnectorOffsets
	sluicetest.Call(t, "GET", w.URL+"/connectors/gen/offsets", nil, &offs)
	if len(offs.Offsets) != 1 || offs.Offsets[0].Offset["seq"] != float64(89) {
		t.Fatalf("offsets after alter: %+v", offs)
	}
	sluicetest.Call(t, "PUT", w.URL+"/connectors/gen/resume", nil, nil)
	sluicetest.WaitState(t, w.URL, "gen", api.StateRunning, 1)
	sluicetest.Eventually(t, 60*time.Second, "sequences 90..99 written twice after the replay", func() (bool, string) {
		seqs := fileSeqs(t, out)
		for s := 90; s < 100; s++ {
			if seqs[fmt.Sprintf("0/0/%d", s)] < 2 {
				return false, fmt.Sprintf("seq %d seen %d times", s, seqs[fmt.Sprintf("0/0/%d", s)])
			}
		}
		return seqs["0/0/89"] == 1, fmt.Sprintf("seq 89 seen %d times", seqs["0/0/89"])
	})

	// Reset the sink: it reads the topic again from the beginning.
	sluicetest.Call(t, "PUT", w.URL+"/connectors/sink/stop", nil, nil)
	sluicetest.WaitState(t, w.URL, "sink", api.StateStopped, 0)
	if code := sluicetest.Call(t, "DELETE", w.URL+"/connectors/sink/offsets", nil, &msg); code != 200 || !strings.Contains(msg.Message, "reset") {
		t.Fatalf("reset sink offsets: %d %+v", code, msg)
	}
	sluicetest.Call(t, "PUT", w.URL+"/connectors/sink/resume", nil, nil)
	sluicetest.Eventually(t, 60*time.Second, "the topic read again", func() (bool, string) {
		n := fileSeqs(t, out)["0/0/0"]
		return n >= 2, fmt.Sprint(n)
	})

	// Restarts.
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors/sink/restart", nil, nil); code != 204 {
		t.Fatalf("restart connector only: %d, want 204", code)
	}
	var st api.ConnectorStatus
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors/sink/restart?includeTasks=true", nil, &st); code != 202 || st.Tasks[0].State != api.StateRestarting {
		t.Fatalf("restart with tasks: %d %+v", code, st)
	}
	sluicetest.WaitState(t, w.URL, "sink", api.StateRunning, 2)
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors/sink/tasks/1/restart", nil, nil); code != 204 {
		t.Fatalf("restart task: %d", code)
	}
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors/sink/tasks/7/restart", nil, nil); code != 404 {
		t.Fatalf("restart of a task that does not exist: %d, want 404", code)
	}
	sluicetest.WaitState(t, w.URL, "sink", api.StateRunning, 2)

	if code := sluicetest.Call(t, "DELETE", w.URL+"/connectors/gen", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := sluicetest.Call(t, "GET", w.URL+"/connectors/gen", nil, nil); code != 404 {
		t.Fatalf("GET after delete: %d, want 404", code)
	}
}

func TestValidationNamesEveryBadField(t *testing.T) {
	c := newCluster(t)
	w := c.StartWorker(nil)
	bad := map[string]string{"connector.class": "datagen", "tasks.max": "0", "rate": "fast", "format": "xml"}
	var infos api.ConfigInfos
	if code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/datagen/config/validate", bad, &infos); code != 200 {
		t.Fatalf("validate answered %d, want 200 even when invalid", code)
	}
	errs := map[string][]string{}
	for _, ci := range infos.Configs {
		if len(ci.Value.Errors) > 0 {
			errs[ci.Value.Name] = ci.Value.Errors
		}
	}
	for _, k := range []string{"tasks.max", "rate", "format", "kafka.topic"} {
		if len(errs[k]) == 0 {
			t.Errorf("validate shows no error on %s; errors: %v", k, errs)
		}
	}
	if infos.ErrorCount != len(errs) {
		t.Errorf("error_count %d, want %d", infos.ErrorCount, len(errs))
	}
	var e struct{ Message string }
	if code := sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": "bad", "config": bad}, &e); code != 400 {
		t.Fatalf("creating with a bad config answered %d, want 400", code)
	}
	for _, k := range []string{"tasks.max", "rate", "format", "kafka.topic"} {
		if !strings.Contains(e.Message, k) {
			t.Errorf("400 message does not name %s: %s", k, e.Message)
		}
	}
	if code := sluicetest.Call(t, "PUT", w.URL+"/connector-plugins/datagen/config/validate", map[string]string{"kafka.topic": "x"}, nil); code != 400 {
		t.Errorf("validate without connector.class answered %d, want 400", code)
	}
}

func TestFailedTaskDoesNotStopOthers(t *testing.T) {
	for _, mode := range []string{"fail", "panic"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t)
			w := c.StartWorker(nil)
			topic := sluicetest.UniqueName("poison")
			admin, _ := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": c.Bootstrap})
			defer admin.Close()
			if _, err := admin.CreateTopics(t.Context(), []kafka.TopicSpecification{{Topic: topic, NumPartitions: 2, ReplicationFactor: -1}}); err != nil {
				t.Fatal(err)
			}
			name := sluicetest.UniqueName("probe-" + mode)
			// Task 1 fails on its first record; task 0 keeps running, takes over task 1's
			// partition, and writes every record.
			sluicetest.Call(t, "POST", w.URL+"/connectors", map[string]any{"name": name, "config": map[string]string{
				"connector.class": "probe-sink", "topics": topic, "tasks.max": "2", "mode": mode, "fail.task": "1"}}, nil)
			sluicetest.WaitState(t, w.URL, name, api.StateRunning, 2)
			sluicetest.Eventually(t, 30*time.Second, "each task holding a partition", func() (bool, string) {
				held := partitionsHeld(name)
				return held[0] == 1 && held[1] == 1, fmt.Sprint(held)
			})
			var msgs []*kafka.Message
			for i := 0; i < 10; i++ {
				msgs = append(msgs, &kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
			}
			sluicetest.Produce(t, c.Bootstrap, topic, msgs...)
			var st api.ConnectorStatus
			sluicetest.Eventually(t, 60*time.Second, "one task FAILED, the other RUNNING", func() (bool, string) {
				sluicetest.Call(t, "GET", w.URL+"/connectors/"+name+"/status", nil, &st)
				failed, running := 0, 0
				for _, ts := range st.Tasks {
					switch ts.State {
					case api.StateFailed:
						failed++
						if !strings.Contains(ts.Trace, "boom") {
							return false, "trace without the cause: " + ts.Trace
						}
					case api.StateRunning:
						running++
					}
				}
				return failed == 1 && running == 1 && st.Connector.State == api.StateRunning, fmt.Sprintf("%+v", st)
			})
			sluicetest.Eventually(t, 60*time.Second, "every record written by the healthy task", func() (bool, string) {
				n := len(collectedValues(name))
				return n == 10, fmt.Sprint(n)
			})
		})
	}
}
