package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/worker/cluster"
)

// startTestWorker starts a worker of a group of its own on the test Kafka.
func startTestWorker(t *testing.T) *Worker {
	t.Helper()
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	prefix := fmt.Sprintf("catchup-%d", time.Now().UnixNano())
	cfg, err := ParseWorkerConfig(map[string]string{
		"bootstrap.servers": bootstrap, "group.id": prefix,
		"config.storage.topic": prefix + "-configs", "offset.storage.topic": prefix + "-offsets", "status.storage.topic": prefix + "-status",
		"config.storage.replication.factor": "-1", "offset.storage.replication.factor": "-1", "status.storage.replication.factor": "-1",
		"listeners": "http://127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(cfg, Options{Registry: connect.NewRegistry(), Levels: NewLogLevels(slog.DiscardHandler, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// A leader that is behind a member on the config topic (and cannot catch up) assigns nothing
// and tells everyone to rejoin; a member told it is behind says so in /health, rejoins, and
// is healthy again once the next round finds it current. Neither waits without bound.
func TestConfigOffsetCatchUpIsBoundedAndVisible(t *testing.T) {
	w := startTestWorker(t)
	// Leave the real group, so that no rebalance changes the state this test looks at.
	w.leave()
	w.leave = nil
	h := (*groupHandler)(w)
	ctx := context.Background()
	at := w.configs.Snapshot().Offset

	start := time.Now()
	out := h.Lead(ctx, 7, []cluster.JoinedMember{
		{ID: "me", MemberState: cluster.MemberState{URL: w.url, ConfigOffset: at}},
		{ID: "ahead", MemberState: cluster.MemberState{URL: "http://127.0.0.1:1", ConfigOffset: at + 100}},
	})
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the leader spent %v catching up; the bound is 10 s", took)
	}
	for id, a := range out {
		if a.Error != cluster.ConfigMismatch || len(a.Assigned.Connectors)+len(a.Assigned.Tasks) != 0 {
			t.Errorf("member %s got %+v, want a config mismatch and no work", id, a)
		}
	}

	h.Assigned(ctx, cluster.Assignment{Error: cluster.NoError, ConfigOffset: at + 100, Generation: 8, MemberID: "me", Leader: "me", LeaderURL: w.url})
	if msg := w.Health(ctx).Message; !strings.Contains(msg, "behind the leader") {
		t.Errorf("health does not say the worker is behind: %q", msg)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.leaderOnly(cancelled); err == nil || !strings.Contains(err.Error(), "leader unknown") {
		t.Errorf("a worker behind the leader answered a write with %v, want a 409 saying the leader is unknown", err)
	}

	// The next round finds it current.
	h.State()
	h.Assigned(ctx, cluster.Assignment{Error: cluster.NoError, ConfigOffset: at, Generation: 9, MemberID: "me", Leader: "me", LeaderURL: w.url})
	if msg := w.Health(ctx).Message; strings.Contains(msg, "behind") || strings.Contains(msg, "rebalance") {
		t.Errorf("once current, health still says %q", msg)
	}
	if err := w.leaderOnly(ctx); err != nil {
		t.Errorf("the current leader refused a write: %v", err)
	}
}
