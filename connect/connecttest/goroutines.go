package connecttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Goroutines finds the goroutines a plugin leaves running: run every call into the plugin
// through Do, and after the last Stop call CheckStopped.
//
// Do runs the call with a goroutine profiler label of its own, and Go hands a label on to
// every goroutine a goroutine starts, so the goroutines the plugin starts (and those they
// start, and those its client libraries start for it) carry the label, and nothing else
// does. This is the baseline comparison of goleak, made exact: a test's own clients (the
// reader of the test server, an MQTT publisher) start and stop goroutines of the same
// libraries while the plugin runs, and a diff of all goroutines before and after could not
// tell theirs from the plugin's. A goroutine the plugin has started on its behalf by a
// goroutine that existed before (a process-wide pool) carries no label and is not seen.
type Goroutines struct {
	plugin string
	label  string
}

// goroutineLabelKey is the profiler label Do sets.
const goroutineLabelKey = "sluice.acceptance"

var trackSeq atomic.Int64

// TrackGoroutines returns a tracker for the goroutines of the named plugin.
func TrackGoroutines(plugin string) *Goroutines {
	return &Goroutines{plugin: plugin, label: fmt.Sprintf("%s#%d", plugin, trackSeq.Add(1))}
}

// Do runs f, a call into the plugin, so that the goroutines it starts are tracked.
func (g *Goroutines) Do(f func()) {
	pprof.Do(context.Background(), pprof.Labels(goroutineLabelKey, g.label), func(context.Context) { f() })
}

// goroutineGroup is a set of goroutines with one stack, as the goroutine profile groups them.
type goroutineGroup struct {
	count  int
	labels string
	frames []string // function and file:line, innermost first
}

func (gg goroutineGroup) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d goroutine(s) labelled %s:", gg.count, gg.labels)
	for _, f := range gg.frames {
		b.WriteString("\n\t\t")
		b.WriteString(f)
	}
	return b.String()
}

// running returns the goroutines started under Do that are running now. No goroutine is
// excused: none of the client libraries the connectors use (confluent-kafka-go, the MongoDB
// driver, pgx, database/sql with pgx and SQLite, iceberg-go, paho, influxdb-client-go, net/http
// with a transport of the connector's own) keeps a process-wide pool under a plugin's label;
// all their goroutines end when the client is closed. A connector that shares
// http.DefaultTransport would leave its idle keep-alive connections' readLoop and writeLoop
// goroutines for up to 90 s; close a transport of the connector's own instead.
func (g *Goroutines) running() ([]goroutineGroup, error) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return nil, fmt.Errorf("writing the goroutine profile: %w", err)
	}
	groups, err := parseGoroutineProfile(&buf)
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("%q:%q", goroutineLabelKey, g.label)
	var out []goroutineGroup
	for _, gg := range groups {
		if strings.Contains(gg.labels, want) {
			out = append(out, gg)
		}
	}
	return out, nil
}

// parseGoroutineProfile reads the goroutine profile in its debug=1 text form:
//
//	goroutine profile: total 3
//	1 @ 0x47d92e 0x480b25 0x4dc3a9 0x483e41
//	# labels: {"sluice.acceptance":"file#1"}
//	#	0x480b24	time.Sleep+0x164	/usr/local/go/src/runtime/time.go:363
//	#	0x4dc3a8	main.main.func1.1+0x28	/tmp/main.go:14
//
// with a blank line between groups.
func parseGoroutineProfile(r io.Reader) ([]goroutineGroup, error) {
	var (
		out []goroutineGroup
		cur *goroutineGroup
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "goroutine profile:"):
			cur = nil
		case strings.HasPrefix(line, "# labels: "):
			if cur != nil {
				cur.labels = strings.TrimPrefix(line, "# labels: ")
			}
		case strings.HasPrefix(line, "#"):
			f := strings.Fields(strings.TrimPrefix(line, "#"))
			if cur == nil || len(f) < 3 {
				continue
			}
			fn, _, _ := strings.Cut(f[1], "+0x")
			cur.frames = append(cur.frames, fn+" "+f[2])
		default:
			n, _, ok := strings.Cut(line, " @ ")
			count, err := strconv.Atoi(n)
			if !ok || err != nil {
				return nil, fmt.Errorf("goroutine profile: unexpected line %q", line)
			}
			out = append(out, goroutineGroup{count: count})
			cur = &out[len(out)-1]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the goroutine profile: %w", err)
	}
	return out, nil
}

// CheckStopped fails the test when goroutines started under Do are still running once the
// timeout has passed (they get that long to end), listing their stacks. Call it after the
// plugin's last Stop.
func (g *Goroutines) CheckStopped(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		left, err := g.running()
		if err != nil {
			t.Fatalf("plugin %s: %v", g.plugin, err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			n := 0
			stacks := make([]string, len(left))
			for i, gg := range left {
				n += gg.count
				stacks[i] = "\t" + gg.String()
			}
			t.Errorf("plugin %s: %d goroutine(s) it started still run %v after Stop:\n%s",
				g.plugin, n, timeout, strings.Join(stacks, "\n"))
			return
		}
		<-tick.C
	}
}
