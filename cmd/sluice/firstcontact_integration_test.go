package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
	"github.com/sluicehq/sluice/worker/api"
)

// readmeExample returns the README's worker.properties and the body of its POST /connectors,
// as a new user copies them.
func readmeExample(t *testing.T) (properties, createBody string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	i := strings.Index(section, "## Running a worker")
	if i < 0 {
		t.Fatal("README has no 'Running a worker' section")
	}
	section = section[i:]
	m := regexp.MustCompile("(?s)```properties\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("README's 'Running a worker' has no properties block")
	}
	body := regexp.MustCompile(`(?s)-X POST localhost:8083/connectors .*?-d '([^']*)'`).FindStringSubmatch(section)
	if body == nil {
		t.Fatal("README's 'Running a worker' has no POST /connectors example")
	}
	return m[1], body[1]
}

// The README's worker, exactly as written (only Kafka's and the API's addresses differ), runs
// the README's connector: no converter or other setting left out of its properties is needed.
func TestReadmeWorkerRunsTheReadmeConnector(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	properties, body := readmeExample(t)
	if !strings.Contains(properties, "bootstrap.servers=localhost:9092\n") {
		t.Fatalf("README's properties no longer name bootstrap.servers=localhost:9092:\n%s", properties)
	}
	if !strings.Contains(properties, "listeners=http://127.0.0.1:8083\n") {
		t.Fatalf("README's properties no longer name listeners=http://127.0.0.1:8083:\n%s", properties)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", sluicetest.FreePort(t))
	properties = strings.Replace(properties, "bootstrap.servers=localhost:9092", "bootstrap.servers="+bootstrap, 1)
	properties = strings.Replace(properties, "listeners=http://127.0.0.1:8083", "listeners="+url, 1)
	path := filepath.Join(t.TempDir(), "worker.properties")
	if err := os.WriteFile(path, []byte(properties), 0o600); err != nil {
		t.Fatal(err)
	}
	p := sluicetest.LaunchProcess(t, url, "worker", "--config", path)
	p.AwaitHealthy(t, 90*time.Second)

	resp, err := http.Post(url+"/connectors", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /connectors with the README's body: %s", resp.Status)
	}
	t.Cleanup(func() { sluicetest.Call(t, "DELETE", url+"/connectors/gen", nil, nil) })
	st := sluicetest.WaitState(t, url, "gen", api.StateRunning, 1)
	if st.Tasks[0].Trace != "" {
		t.Fatalf("task trace %q", st.Tasks[0].Trace)
	}
	sluicetest.Eventually(t, 60*time.Second, "the README's connector writing records", func() (bool, string) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		m := regexp.MustCompile(`sluice_source_records_written_total\{connector="gen",task="0"\} (\d+)`).FindStringSubmatch(b.String())
		return m != nil && m[1] != "0", fmt.Sprint(m)
	})
}

// Workers started at the same moment on a new group (docker compose starts three at once)
// race to create the internal topics: every one of them joins.
func TestWorkersStartedAtOnceOnANewGroupAllJoin(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := sluicetest.NewCluster(t)
			ps := make([]*sluicetest.Process, n)
			for i := range ps {
				settings := c.Settings(fmt.Sprintf("http://127.0.0.1:%d", sluicetest.FreePort(t)), nil)
				args := []string{"worker"}
				for k, v := range settings {
					args = append(args, "--set", k+"="+v)
				}
				ps[i] = sluicetest.LaunchProcess(t, settings["listeners"], args...)
			}
			for _, p := range ps {
				p.AwaitHealthy(t, 2*time.Minute)
			}
		})
	}
}

// A write sent the moment a worker's API answers, before the worker has joined its group, is
// held until it has joined (as Kafka Connect holds it) rather than answered 409.
func TestFirstWriteAfterStartIsHeldUntilTheWorkerJoined(t *testing.T) {
	c := sluicetest.NewCluster(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", sluicetest.FreePort(t))
	args := []string{"worker"}
	for k, v := range c.Settings(url, nil) {
		args = append(args, "--set", k+"="+v)
	}
	p := sluicetest.LaunchProcess(t, url, args...)
	var healthBeforeJoin []int
	sluicetest.Eventually(t, 60*time.Second, "the API to answer", func() (bool, string) {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		healthBeforeJoin = append(healthBeforeJoin, resp.StatusCode)
		return true, ""
	})
	code := sluicetest.Call(t, "POST", url+"/connectors", map[string]any{"name": "first", "config": map[string]string{
		"connector.class": "datagen", "kafka.topic": sluicetest.UniqueName("first"), "rate": "10"}}, nil)
	if code != http.StatusCreated {
		t.Fatalf("the first POST /connectors: %d, want 201\n%s", code, p.Log.String())
	}
	t.Logf("/health answered %v before the first write", healthBeforeJoin)
	p.AwaitHealthy(t, 30*time.Second)
}
