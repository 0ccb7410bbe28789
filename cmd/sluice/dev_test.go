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

	"github.com/sluicehq/sluice/internal/sluicetest"
)

// TestDevShowsDataFlowingAndStopsCleanly runs `sluice dev` as `make dev` does, with nothing but
// the process itself: within a minute frames flow from the simulator through MQTT and Kafka into
// every connector and the lake has data files; cancelling (Ctrl-C) stops it cleanly.
func TestDevShowsDataFlowingAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo pipeline")
	}
	dir := t.TempDir()
	var out, errs sluicetest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"--rest", fmt.Sprintf("127.0.0.1:%d", sluicetest.FreePort(t)),
		"--mqtt", fmt.Sprintf("127.0.0.1:%d", sluicetest.FreePort(t)),
		"--metrics-port", strconv.Itoa(sluicetest.FreePort(t)), "--dir", dir, "--rate", "50"}
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
		_ = filepath.WalkDir(filepath.Join(dir, "warehouse"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				files++
			}
			return nil
		})
		return files > 0, fmt.Sprintf("%d parquet files; %s", files, last[1])
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sluice dev stopped with %v\nstderr:\n%s", err, errs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("sluice dev did not stop within a minute of Ctrl-C\nstdout:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "stopping: simulator sent") {
		t.Errorf("no summary at the end:\n%s", out.String())
	}
}
