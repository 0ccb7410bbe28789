package influxdbsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/sluicehq/sluice/connect"
)

// Task writes records to InfluxDB as points. Put encodes each record into a line of line
// protocol and keeps the lines until batch.size of them wait, batch.linger has passed since
// the oldest, or the runtime commits offsets (PreCommit): then they are written, batch.size
// lines per request. PreCommit returns the offsets only once everything handed to Put is
// written, so a committed offset never covers a point InfluxDB does not have.
type Task struct {
	cfg    Config
	tc     connect.SinkTaskContext
	log    *slog.Logger
	client influxdb2.Client
	write  api.WriteAPIBlocking
	enc    *encoder

	body    []byte    // the waiting lines
	pending []waiting // one per waiting line, in order
	oldest  time.Time // when the first waiting line arrived
	// accepted is, per partition, the offset after the last record taken into pending: a
	// batch handed to Put again after a retriable error is not taken twice.
	accepted connect.Offsets

	mu        sync.Mutex
	timer     *time.Timer
	notBefore time.Time // a 429 or 503 asked to wait until then
	failed    error     // the error policy refused a record while PreCommit wrote
}

// waiting is a line waiting to be written and the record it came from.
type waiting struct {
	rec        connect.Record
	start, end int // the line in body, newline included
}

// Start connects the client (no request is made until the first write).
func (t *Task) Start(_ context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("influxdb-sink: invalid configuration: %w", err)
	}
	t.cfg, t.tc, t.log = c, tc, tc.Logger()
	t.client = newClient(c)
	t.write = t.client.WriteAPIBlocking(c.Org, c.bucket())
	t.enc = newEncoder(&t.cfg)
	t.accepted = connect.Offsets{}
	t.log.Info("writing points to InfluxDB", "url", c.URL, "bucket", c.bucket(), "precision", c.Precision)
	return nil
}

// newClient makes an influxdb-client-go client for the configuration. Its blocking write API
// does not retry: the runtime does, with the task's status saying so.
func newClient(c Config) influxdb2.Client {
	opts := influxdb2.DefaultOptions().
		SetPrecision(precisionOf(c.Precision)).
		SetUseGZip(c.Gzip).
		SetHTTPRequestTimeout(uint(max(c.Timeout/time.Second, 1))).
		SetMaxRetries(0).
		SetLogLevel(0)
	return influxdb2.NewClientWithOptions(c.URL, c.authToken(), opts)
}

// Put takes the batch's records into the waiting lines and writes them when batch.size are
// waiting or the oldest waited batch.linger. A record that cannot be a point goes to the
// error policy.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	if err := t.takeFailed(); err != nil {
		return err
	}
	for i := range batch {
		rec := &batch[i]
		tp := connect.TopicPartition{Topic: rec.Topic, Partition: rec.KafkaPartition}
		if next, ok := t.accepted[tp]; ok && rec.KafkaOffset < next {
			continue // taken already, before a retry
		}
		t.accepted[tp] = rec.KafkaOffset + 1
		if rec.Value == nil {
			continue // a tombstone: InfluxDB deletes by predicate, not by record
		}
		start := len(t.body)
		body, err := t.enc.encode(t.body, rec)
		if err != nil {
			if rerr := t.tc.Report(ctx, *rec, err); rerr != nil {
				return rerr
			}
			continue
		}
		t.body = body
		if len(t.pending) == 0 {
			t.oldest = time.Now()
			t.armLinger()
		}
		t.pending = append(t.pending, waiting{rec: *rec, start: start, end: len(body)})
	}
	if len(t.pending) >= t.cfg.BatchSize || (len(t.pending) > 0 && time.Since(t.oldest) >= t.cfg.BatchLinger) {
		return t.flush(ctx)
	}
	return nil
}

// armLinger asks the runtime for an offset commit (and so a PreCommit, which writes) once the
// first waiting line has waited batch.linger, for when no more records come to Put.
func (t *Task) armLinger() {
	if t.cfg.BatchLinger <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(t.cfg.BatchLinger, t.tc.RequestCommit)
	} else {
		t.timer.Reset(t.cfg.BatchLinger)
	}
}

// PreCommit writes everything waiting; the offsets are safe once it did.
func (t *Task) PreCommit(ctx context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	if err := t.flush(ctx); err != nil {
		if !connect.IsRetriable(err) {
			t.setFailed(err) // the next Put fails the task with it
		}
		return nil, err
	}
	return offsets, nil
}

// Close forgets what was taken from partitions the task no longer reads: their records may
// come again, from the committed offsets, when they come back.
func (t *Task) Close(ctx context.Context, partitions []connect.TopicPartition) error {
	err := t.flush(ctx)
	for _, tp := range partitions {
		delete(t.accepted, tp)
	}
	if err != nil && !connect.IsRetriable(err) {
		return err
	}
	return nil // what was not written comes again to whoever reads the partitions next
}

// Open is part of PartitionAware; nothing is kept per partition before records come.
func (t *Task) Open(context.Context, []connect.TopicPartition) error { return nil }

// Stop closes the client; what is still waiting was not committed and comes again.
func (t *Task) Stop() error {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	if t.client != nil {
		t.client.Close()
	}
	return nil
}

func (t *Task) setFailed(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = err
}

func (t *Task) takeFailed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// flush writes the waiting lines, batch.size per request, and forgets each request's lines
// once written: a retry after an error writes only what is left (and InfluxDB overwrites a
// point written twice with itself).
func (t *Task) flush(ctx context.Context) error {
	if err := t.waitRetryAfter(ctx); err != nil {
		return err
	}
	for len(t.pending) > 0 {
		n := min(len(t.pending), t.cfg.BatchSize)
		if err := t.writeLines(ctx, t.pending[:n]); err != nil {
			return err
		}
		t.pending = t.pending[n:]
	}
	t.pending, t.body = t.pending[:0], t.body[:0]
	return nil
}

// waitRetryAfter waits until the time a 429 or 503 answer asked for.
func (t *Task) waitRetryAfter(ctx context.Context) error {
	t.mu.Lock()
	wait := time.Until(t.notBefore)
	t.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return connect.Retriable(ctx.Err())
	}
}

// writeLines writes contiguous waiting lines in one request. Lines InfluxDB refuses (a 400:
// it stores the others and names the first it refused) go to the error policy: the named
// line is found among them, or the lines are split in halves until each refused one stands
// alone; the rest is written again, which leaves the stored points as they are.
func (t *Task) writeLines(ctx context.Context, lines []waiting) error {
	if len(lines) == 0 {
		return nil
	}
	body := t.body[lines[0].start:lines[len(lines)-1].end]
	err := t.write.WriteRecord(ctx, string(bytes.TrimSuffix(body, []byte{'\n'})))
	if err == nil {
		return nil
	}
	var herr *influxhttp.Error
	if !errors.As(err, &herr) || herr.StatusCode == 0 {
		if ctx.Err() != nil {
			return connect.Retriable(ctx.Err())
		}
		return connect.Retriable(fmt.Errorf("writing %d points to %s: %w", len(lines), t.cfg.URL, err))
	}
	msg := serverMessage(herr)
	switch code := herr.StatusCode; {
	case (code == http.StatusBadRequest || code == http.StatusUnprocessableEntity) && pointsRefused(msg):
		return t.refused(ctx, lines, msg)
	case code == http.StatusRequestEntityTooLarge && len(lines) == 1:
		return t.report(ctx, lines[0], msg) // a point larger than the server takes
	case code == http.StatusRequestEntityTooLarge:
		return t.writeHalves(ctx, lines)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		wait := time.Duration(herr.RetryAfter) * time.Second
		if wait > 0 {
			t.mu.Lock()
			t.notBefore = time.Now().Add(wait)
			t.mu.Unlock()
		}
		return connect.Retriable(fmt.Errorf("InfluxDB answered %d (%s); retrying after %v: %s", code, http.StatusText(code), wait, msg))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("InfluxDB refused the credentials for bucket %q (%d %s): %s; check influxdb.token, or influxdb.username and influxdb.password",
			t.cfg.bucket(), code, http.StatusText(code), msg)
	case code == http.StatusNotFound:
		return fmt.Errorf("InfluxDB has no bucket or database %q (404): %s; create it first", t.cfg.bucket(), msg)
	case code >= 500:
		return connect.Retriable(fmt.Errorf("InfluxDB answered %d (%s): %s", code, http.StatusText(code), msg))
	}
	return fmt.Errorf("InfluxDB answered %d (%s) to a write of %d points: %s", herr.StatusCode, http.StatusText(herr.StatusCode), len(lines), msg)
}

// refused handles a 400 for lines: InfluxDB stored the lines it could and names the first
// one it could not.
func (t *Task) refused(ctx context.Context, lines []waiting, msg string) error {
	if len(lines) == 1 {
		return t.report(ctx, lines[0], msg)
	}
	if named, ok := namedLine(msg); ok {
		for i, l := range lines {
			if strings.TrimSuffix(string(t.body[l.start:l.end]), "\n") == named {
				if err := t.report(ctx, l, msg); err != nil {
					return err
				}
				if err := t.writeLines(ctx, lines[:i]); err != nil {
					return err
				}
				return t.writeLines(ctx, lines[i+1:])
			}
		}
	}
	return t.writeHalves(ctx, lines)
}

// writeHalves writes the first half of lines, then the second, each as writeLines does.
func (t *Task) writeHalves(ctx context.Context, lines []waiting) error {
	half := len(lines) / 2
	if err := t.writeLines(ctx, lines[:half]); err != nil {
		return err
	}
	return t.writeLines(ctx, lines[half:])
}

// pointsRefused tells a 400 about points (a partial write: InfluxDB 1.x and 2.x say "partial
// write", "unable to parse" or "field type conflict"; 3.x "partial write of line protocol" or
// "parsing failed") from one about the request itself (a precision, a parameter), which every
// point would meet: that one fails the task instead of sending every record to the error
// policy.
func pointsRefused(msg string) bool {
	for _, s := range []string{"partial write", "unable to parse", "field type conflict", "parsing failed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (t *Task) report(ctx context.Context, l waiting, msg string) error {
	reason := fmt.Errorf("InfluxDB refused the point %q: %s", strings.TrimSuffix(string(t.body[l.start:l.end]), "\n"), msg)
	if err := t.tc.Report(ctx, l.rec, reason); err != nil {
		return err
	}
	return nil
}

// namedLine is the line a partial-write error quotes: unable to parse '<line>': reason.
func namedLine(msg string) (string, bool) {
	const marker = "unable to parse '"
	i := strings.Index(msg, marker)
	if i < 0 {
		return "", false
	}
	rest := msg[i+len(marker):]
	j := strings.LastIndex(rest, "': ")
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// serverMessage is what the server said: InfluxDB 2 and 3 answer JSON with code and message,
// 1.x an error in JSON that the client leaves in the X-Influxdb-Error header.
func serverMessage(e *influxhttp.Error) string {
	if e.Header != nil {
		if m := e.Header.Get("X-Influxdb-Error"); m != "" {
			return m
		}
	}
	if e.Message != "" {
		return e.Message
	}
	return e.Error()
}
