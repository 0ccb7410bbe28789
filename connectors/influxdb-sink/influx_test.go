package influxdbsink

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// Task-level tests against the test InfluxDB (1.8, started by scripts/testenv): points are
// written through the task and read back with InfluxQL through the server's /query.

var dbSeq struct {
	sync.Mutex
	n int
}

// testDatabase creates a database of its own for the test, dropped at its end.
func testDatabase(t *testing.T) (base, db string) {
	t.Helper()
	base = connecttest.Env(t, connecttest.EnvInfluxDB)
	dbSeq.Lock()
	dbSeq.n++
	db = fmt.Sprintf("t_%d_%d", time.Now().UnixNano()%1e9, dbSeq.n)
	dbSeq.Unlock()
	influxQL(t, base, "", "CREATE DATABASE "+db)
	t.Cleanup(func() { influxQL(t, base, "", "DROP DATABASE "+db) })
	return base, db
}

// influxQL runs a query and returns the rows of its first series as text cells joined by |.
func influxQL(t testing.TB, base, db, q string) []string {
	t.Helper()
	rows, err := sluicetest.InfluxQL(base, db, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func startTask(t *testing.T, base string, kv ...string) (*Task, *connecttest.SinkContext) {
	t.Helper()
	cfg := connect.Config{"influxdb.url": base, "batch.linger": "0"}
	for i := 0; i < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	tc := connecttest.NewSinkContext(t, 0)
	task := &Task{}
	if err := task.Start(t.Context(), cfg, tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop() })
	return task, tc
}

func put(t *testing.T, task *Task, recs ...connect.Record) {
	t.Helper()
	if err := task.Put(t.Context(), recs); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{}); err != nil {
		t.Fatalf("PreCommit: %v", err)
	}
}

// TestPointsReadBack writes through the 2.x API (bucket, org, token) and the 1.x path
// (database, retention policy, user) and reads back tags, field types and times.
func TestPointsReadBack(t *testing.T) {
	for _, path := range []struct {
		name     string
		settings func(db string) []string
	}{
		{"v2 API", func(db string) []string {
			return []string{"influxdb.bucket", db, "influxdb.org", "ignored-by-1.8", "influxdb.token", "any"}
		}},
		{"1.x path", func(db string) []string {
			return []string{"influxdb.database", db, "influxdb.retention.policy", "autogen", "influxdb.username", "u", "influxdb.password", "p"}
		}},
	} {
		t.Run(path.name, func(t *testing.T) {
			base, db := testDatabase(t)
			task, tc := startTask(t, base, append(path.settings(db), "tags", "device_id,place", "time.field", "ts",
				"measurement.name", "climate", "fields.json.numbers", "infer")...)
			var recs []connect.Record
			for i := range 5 {
				recs = append(recs, connect.Record{Topic: "iot", KafkaOffset: int64(i), Value: map[string]any{
					"device_id": fmt.Sprint("d-", i%2), "place": "hall", "temp": 20.5 + float64(i), "count": int64(i), "ok": i%2 == 0,
					"note": fmt.Sprint("n", i), "ts": t0.Add(time.Duration(i) * time.Nanosecond).Format(time.RFC3339Nano)}})
			}
			put(t, task, recs...)
			if len(tc.Reported) > 0 {
				t.Fatalf("reported %v", tc.Reasons)
			}
			got := influxQL(t, base, db, "SELECT device_id, place, temp, count, ok, note FROM climate ORDER BY time")
			want := []string{
				"1714564800123456789|d-0|hall|20.5|0|true|n0",
				"1714564800123456790|d-1|hall|21.5|1|false|n1",
				"1714564800123456791|d-0|hall|22.5|2|true|n2",
				"1714564800123456792|d-1|hall|23.5|3|false|n3",
				"1714564800123456793|d-0|hall|24.5|4|true|n4",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("points:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if got := influxQL(t, base, db, "SHOW FIELD KEYS FROM climate"); strings.Join(got, ",") != "count|integer,note|string,ok|boolean,temp|float" {
				t.Errorf("field types %v", got)
			}
			if got := influxQL(t, base, db, "SHOW TAG KEYS FROM climate"); strings.Join(got, ",") != "device_id,place" {
				t.Errorf("tag keys %v", got)
			}

			// Written again (a replay after a crash), the points stay as they are, once each.
			put(t, task, recs...)
			task2, _ := startTask(t, base, append(path.settings(db), "tags", "device_id,place", "time.field", "ts",
				"measurement.name", "climate", "fields.json.numbers", "infer")...)
			put(t, task2, recs...)
			if got := influxQL(t, base, db, "SELECT count(temp) FROM climate"); len(got) != 1 || !strings.HasSuffix(got[0], "|5") {
				t.Errorf("count after writing every record three times: %v, want 5", got)
			}
		})
	}
}

// TestDefaultsWriteTheTopic: the settings a user starts with, only a URL and a bucket.
func TestDefaultsWriteTheTopic(t *testing.T) {
	base, db := testDatabase(t)
	task, _ := startTask(t, base, "influxdb.bucket", db, "batch.linger", "100ms")
	if err := task.Put(t.Context(), []connect.Record{{Topic: "iot.raw", Time: t0, Value: map[string]any{"device_id": "d-1", "temp": int64(21)}}}); err != nil {
		t.Fatal(err)
	}
	if got := influxQL(t, base, db, `SELECT * FROM "iot.raw"`); len(got) != 0 {
		t.Errorf("written before batch.linger passed or a commit came: %v", got)
	}
	if _, err := task.PreCommit(t.Context(), connect.Offsets{}); err != nil {
		t.Fatal(err)
	}
	if got := influxQL(t, base, db, `SELECT * FROM "iot.raw"`); strings.Join(got, ",") != "1714564800123456789|d-1|21" {
		t.Errorf("points %v", got)
	}
	if got := influxQL(t, base, db, `SHOW FIELD KEYS FROM "iot.raw"`); strings.Join(got, ",") != "device_id|string,temp|float" {
		t.Errorf("field types %v", got)
	}
}

// TestRefusedPointsGoToTheErrorPolicy: InfluxDB refuses points whose field type conflicts with
// the stored one (naming no line): the task finds them by halving the request, reports them
// with InfluxDB's message, and the others are stored.
func TestRefusedPointsGoToTheErrorPolicy(t *testing.T) {
	base, db := testDatabase(t)
	task, tc := startTask(t, base, "influxdb.bucket", db, "measurement.name", "m", "tags", "dev")
	put(t, task, connect.Record{Topic: "x", Time: t0, Value: map[string]any{"dev": "a", "v": 1.0}})
	var recs []connect.Record
	for i := range 10 {
		v := any(float64(i))
		switch i {
		case 3:
			v = "text"
		case 7:
			v = true
		}
		recs = append(recs, connect.Record{Topic: "x", KafkaOffset: int64(i + 1), Time: t0.Add(time.Duration(i+1) * time.Second), Value: map[string]any{"dev": "a", "v": v}})
	}
	recs = append(recs, connect.Record{Topic: "x", KafkaOffset: 11, Time: t0, Value: map[string]any{"dev": int64(5), "v": 1.0}}) // a tag that is not a string
	put(t, task, recs...)
	want := map[int64]string{4: `field type conflict`, 8: `field type conflict`, 11: `field "dev": bad value 5: a tag value must be a string`}
	if len(tc.Reported) != len(want) {
		t.Fatalf("reported %d records (%v), want %d", len(tc.Reported), tc.Reasons, len(want))
	}
	for i, rec := range tc.Reported {
		if w := want[rec.KafkaOffset]; w == "" || !strings.Contains(tc.Reasons[i].Error(), w) {
			t.Errorf("offset %d reported with %q, want %q", rec.KafkaOffset, tc.Reasons[i], w)
		}
	}
	if got := influxQL(t, base, db, "SELECT count(v) FROM m"); len(got) != 1 || !strings.HasSuffix(got[0], "|9") {
		t.Errorf("stored %v, want the 9 good points", got)
	}
}

// TestBusyServerIsRetriedAfterItsRetryAfter puts a proxy in front of the test InfluxDB that
// answers the first write 429 with Retry-After: 1 and the second 503, then lets writes
// through: Put says retriable both times, waits out the Retry-After, and the points arrive.
func TestBusyServerIsRetriedAfterItsRetryAfter(t *testing.T) {
	base, db := testDatabase(t)
	target, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var writes []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/write") {
			mu.Lock()
			writes = append(writes, time.Now())
			n := len(writes)
			mu.Unlock()
			switch n {
			case 1:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			case 2:
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	task, _ := startTask(t, srv.URL, "influxdb.bucket", db)
	recs := []connect.Record{{Topic: "m", KafkaOffset: 0, Time: t0, Value: map[string]any{"v": 1.0}}, {Topic: "m", KafkaOffset: 1, Time: t0.Add(time.Second), Value: map[string]any{"v": 2.0}}}
	for i, want := range []string{"429", "503"} {
		err := task.Put(t.Context(), recs) // the runtime hands the same batch in again
		if err == nil || !connect.IsRetriable(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Put %d = %v, want a retriable error saying %s", i+1, err, want)
		}
	}
	if err := task.Put(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	gap := writes[1].Sub(writes[0])
	mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Errorf("the write after a 429 with Retry-After: 1 came %v after it", gap)
	}
	if got := influxQL(t, base, db, "SELECT count(v) FROM m"); len(got) != 1 || !strings.HasSuffix(got[0], "|2") {
		t.Errorf("stored %v, want both points once", got)
	}
}

// TestMissingDatabaseFailsWithTheServersMessage: a 404 is not retried.
func TestMissingDatabaseFailsWithTheServersMessage(t *testing.T) {
	base := connecttest.Env(t, connecttest.EnvInfluxDB)
	task, _ := startTask(t, base, "influxdb.database", "no_such_db")
	err := task.Put(t.Context(), []connect.Record{{Topic: "m", Time: t0, Value: map[string]any{"v": 1.0}}})
	if err == nil || connect.IsRetriable(err) || !strings.Contains(err.Error(), `no bucket or database "no_such_db"`) {
		t.Fatalf("Put = %v, want a non-retriable error naming the database", err)
	}
}
