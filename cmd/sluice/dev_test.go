package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// TestDevShowsDataFlowingAndStopsCleanly runs `sluice dev` as `make dev` does, with nothing but
// the process itself: within a minute frames flow from the simulator through MQTT and Kafka into
// every connector and the lake has data files; cancelling (Ctrl-C) stops it cleanly.
func TestDevShowsDataFlowingAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo pipeline")
	}
	runDevUntilDataFlows(t, nil)
}

// TestDevWritesAggregatesToInfluxDB runs `sluice dev --influxdb URL` against the test InfluxDB,
// with a token in INFLUXDB_TOKEN as a user would give it: the aggregates arrive as points, and
// the token is in no connector configuration the REST API returns.
func TestDevWritesAggregatesToInfluxDB(t *testing.T) {
	base := connecttest.Env(t, connecttest.EnvInfluxDB)
	db := strings.ReplaceAll(sluicetest.UniqueName("dev"), "-", "_")
	if _, err := sluicetest.InfluxQL(base, "", "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sluicetest.InfluxQL(base, "", "DROP DATABASE "+db) })
	t.Setenv("INFLUXDB_TOKEN", "dev-secret-token")
	runDevUntilDataFlows(t, func(rest string) {
		sluicetest.Eventually(t, time.Minute, "aggregates in InfluxDB", func() (bool, string) {
			rows, err := sluicetest.InfluxQL(base, db, `SELECT count(frames) FROM "sensor-aggregates"`)
			return err == nil && len(rows) == 1, fmt.Sprintf("%v %v", rows, err)
		})
		var cfg map[string]string
		sluicetest.Call(t, "GET", rest+"/connectors/sensors-influxdb-aggregates/config", nil, &cfg)
		if cfg["influxdb.token"] != "${env:INFLUXDB_TOKEN}" {
			t.Errorf("the connector's token is %q, want the placeholder", cfg["influxdb.token"])
		}
	}, "--influxdb", base, "--influxdb-bucket", db)
}

// runDevUntilDataFlows starts `sluice dev` with extra flags, waits until records flow through
// every connector and the lake has a data file, runs check (if any) with the REST API's base
// URL while it still runs, and stops it with Ctrl-C.
func runDevUntilDataFlows(t *testing.T, check func(rest string), extra ...string) {
	dir := t.TempDir()
	var out, errs sluicetest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	rest := fmt.Sprintf("127.0.0.1:%d", sluicetest.FreePort(t))
	args := append([]string{"--rest", rest,
		"--mqtt", fmt.Sprintf("127.0.0.1:%d", sluicetest.FreePort(t)),
		"--metrics-port", strconv.Itoa(sluicetest.FreePort(t)), "--dir", dir, "--rate", "50"}, extra...)
	go func() { done <- runDev(ctx, args, &out, &errs) }()

	progress := regexp.MustCompile(`records: ([^|]*) \| tasks running (\d+)/(\d+)`)
	counts := regexp.MustCompile(`([a-z-]+) (\d+)`)
	sluicetest.Eventually(t, time.Minute, "records through every connector and a data file in the lake", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("sluice dev ended early: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errs.String())
		default:
		}
		lines := progress.FindAllStringSubmatch(out.String(), -1)
		if len(lines) == 0 {
			return false, "no progress line yet"
		}
		last := lines[len(lines)-1]
		if last[2] != last[3] || last[2] == "0" {
			return false, "tasks running " + last[2] + "/" + last[3]
		}
		for _, c := range counts.FindAllStringSubmatch(last[1], -1) {
			if c[2] == "0" {
				return false, "nothing through " + c[1] + " yet: " + last[1]
			}
		}
		files := 0
		_ = filepath.WalkDir(filepath.Join(dir, "warehouse"), func(p string, _ fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				files++
			}
			return nil
		})
		return files > 0, fmt.Sprintf("%d parquet files; %s", files, last[1])
	})

	if check != nil {
		check("http://" + rest)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sluice dev stopped with %v\nstderr:\n%s", err, errs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("sluice dev did not stop within a minute of Ctrl-C\nstdout:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "web console     http://"+rest+"/ui/") {
		t.Errorf("the console's address is not printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "stopping: simulator sent") {
		t.Errorf("no summary at the end:\n%s", out.String())
	}
}
