package mongodbsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect"
)

// Task writes the records of its partitions to MongoDB with bulk writes.
type Task struct {
	cfg     Config
	log     *slog.Logger
	tc      connect.SinkTaskContext
	client  *mongo.Client
	db      *mongo.Database
	build   *builder
	indexes []indexSpec

	// prepared holds the collections whose time-series creation and indexes are done.
	prepared map[string]bool
	// settled holds the records of a batch Put failed to finish (with a retriable error) that
	// are written or reported already, so that the same batch handed in again does not write
	// or report them twice.
	settled map[position]bool
	// ignored counts tombstones that were ignored, for one log line.
	ignored int
	// replayed counts the inserts of a Put refused as duplicate keys whose documents were
	// stored already (a replay): they count as written.
	replayed atomic.Int64
}

// position is where a record was read from.
type position struct {
	topic     string
	partition int32
	offset    int64
}

func positionOf(r *connect.Record) position {
	return position{r.Topic, r.KafkaPartition, r.KafkaOffset}
}

// Start connects to MongoDB and, when every record goes to one collection, prepares it
// (time-series creation, indexes). A server that cannot be reached yet is no reason to fail:
// the first Put tries again, and retries until it answers.
func (t *Task) Start(ctx context.Context, cfg connect.Config, tc connect.SinkTaskContext) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return fmt.Errorf("mongodb-sink: invalid configuration: %w", err)
	}
	b, err := newBuilder(c)
	if err != nil {
		return fmt.Errorf("mongodb-sink: invalid configuration: %w", err)
	}
	indexes, err := parseIndexes(c.Indexes)
	if err != nil {
		return fmt.Errorf("mongodb-sink: invalid configuration: %w", err)
	}
	client, err := connectClient(c)
	if err != nil {
		return err
	}
	t.cfg, t.log, t.tc, t.client, t.build, t.indexes = c, tc.Logger(), tc, client, b, indexes
	t.db = client.Database(c.Database)
	t.prepared, t.settled = map[string]bool{}, map[position]bool{}
	t.log.Info("writing to MongoDB", "database", c.Database, "collection", c.Collection, "write.model", c.Model,
		"id.strategy", c.IDStrategy, "batch.size", c.BatchSize, "max.in.flight", c.MaxInFlight)
	if coll, ok := c.fixedCollection(); ok {
		if err := t.prepare(ctx, coll); err != nil {
			if !transient(err) {
				_ = t.Stop()
				return fmt.Errorf("mongodb-sink: %w", err)
			}
			t.log.Warn("cannot prepare the collection yet; trying again before the first write", "collection", coll, "err", err)
		}
	}
	return nil
}

// connectClient makes a client; it connects lazily, so it fails only on a malformed URI.
func connectClient(c Config) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(c.URI).SetAppName("sluice-mongodb-sink").SetServerSelectionTimeout(c.Timeout)
	if err := opts.Validate(); err != nil {
		return nil, &connect.FieldError{Key: "connection.uri", Message: fmt.Sprintf("Invalid value: not a MongoDB connection string: %v", err)}
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, &connect.FieldError{Key: "connection.uri", Message: fmt.Sprintf("Invalid value: %v", err)}
	}
	return client, nil
}

// Put writes the batch and returns once every record is written or, when MongoDB rejected
// it or it cannot be a document, handed to the error policy. A write that failed for a
// passing reason (MongoDB unreachable, not primary, a timeout) returns a retriable error: the
// runtime hands the same batch in again, and the records written already are left out.
func (t *Task) Put(ctx context.Context, batch []connect.Record) error {
	type bad struct {
		idx    int
		reason error
	}
	var bads []bad
	var ops []*op
	for i := range batch {
		r := &batch[i]
		if t.settled[positionOf(r)] {
			continue
		}
		o, err := t.build.build(i, r)
		switch {
		case err != nil:
			bads = append(bads, bad{i, fmt.Errorf("record %s: %w", r.Position(), err)})
		case o == nil:
			t.ignoreTombstone()
		default:
			ops = append(ops, o)
		}
	}

	var werr error
	if len(ops) > 0 {
		var written []int
		var rejected []rejection
		written, rejected, werr = t.write(ctx, ops)
		for _, idx := range written {
			t.settled[positionOf(&batch[idx])] = true
		}
		for _, rj := range rejected {
			bads = append(bads, bad{rj.idx, fmt.Errorf("record %s: %w", batch[rj.idx].Position(), rj.reason)})
		}
	}
	if n := t.replayed.Swap(0); n > 0 {
		t.log.Info("inserts refused as duplicate keys were stored already (a replay after a restart or a timed-out write); they count as written",
			"documents", n)
	}
	sort.Slice(bads, func(i, j int) bool { return bads[i].idx < bads[j].idx })
	for _, b := range bads {
		pos := positionOf(&batch[b.idx])
		if t.settled[pos] {
			continue // a server that reports one document's error twice: one dead letter
		}
		if err := t.tc.Report(ctx, batch[b.idx], b.reason); err != nil {
			return err
		}
		t.settled[pos] = true
	}
	if werr != nil {
		if transient(werr) || ctx.Err() != nil {
			return connect.Retriable(fmt.Errorf("mongodb-sink: %w", werr))
		}
		return fmt.Errorf("mongodb-sink: %w", werr)
	}
	clear(t.settled)
	return nil
}

func (t *Task) ignoreTombstone() {
	if t.ignored == 0 {
		why := "delete.on.null is false"
		if t.cfg.DeleteOnNull {
			why = "id.strategy " + t.cfg.IDStrategy + " gives a tombstone no _id"
		}
		t.log.Info("ignoring tombstones (records with a null value)", "why", why)
	}
	t.ignored++
}

// rejection is a record MongoDB refused.
type rejection struct {
	idx    int
	reason error
}

// write runs the operations: per collection and lane, in order, in bulk writes of at most
// batch.size, with up to max.in.flight bulk writes at once. It returns the batch positions
// written and rejected, and the error that stopped a lane, if any.
func (t *Task) write(ctx context.Context, ops []*op) (written []int, rejected []rejection, err error) {
	type laneKey struct {
		coll string
		lane uint32
	}
	var order []laneKey
	lanes := map[laneKey][]*op{}
	for _, o := range ops {
		k := laneKey{o.coll, o.lane}
		if _, ok := lanes[k]; !ok {
			order = append(order, k)
		}
		lanes[k] = append(lanes[k], o)
	}
	for _, k := range order {
		if !t.prepared[k.coll] {
			if err := t.prepare(ctx, k.coll); err != nil {
				return nil, nil, err
			}
		}
	}

	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, t.cfg.MaxInFlight)
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(coll *mongo.Collection, ops []*op) {
			defer func() { <-sem; wg.Done() }()
			w, rj, err := t.writeLane(ctx, coll, ops)
			mu.Lock()
			defer mu.Unlock()
			written, rejected = append(written, w...), append(rejected, rj...)
			if err != nil {
				errs = append(errs, err)
			}
		}(t.db.Collection(k.coll), lanes[k])
	}
	wg.Wait()
	if len(errs) == 0 {
		return written, rejected, nil
	}
	// Retriable only when every failure is: one lasting failure fails the task.
	for _, e := range errs {
		if !transient(e) {
			return written, rejected, e
		}
	}
	return written, rejected, errs[0]
}

// writeLane writes one lane's operations in order, batch.size at a time, and stops at the
// first failure of a whole bulk write.
func (t *Task) writeLane(ctx context.Context, coll *mongo.Collection, ops []*op) (written []int, rejected []rejection, err error) {
	for len(ops) > 0 {
		n := min(len(ops), t.cfg.BatchSize)
		w, rj, err := t.bulk(ctx, coll, ops[:n])
		written, rejected = append(written, w...), append(rejected, rj...)
		if err != nil {
			return written, rejected, err
		}
		ops = ops[n:]
	}
	return written, rejected, nil
}

// bulk sends one bulk write. Documents the server rejects one by one are returned as
// rejections and the others count as written; in an ordered bulk write, the server stops at
// a rejected document, so the rest is sent again.
func (t *Task) bulk(ctx context.Context, coll *mongo.Collection, ops []*op) (written []int, rejected []rejection, err error) {
	models := make([]mongo.WriteModel, len(ops))
	for len(ops) > 0 {
		models = models[:len(ops)]
		for i, o := range ops {
			models[i] = o.model
		}
		wctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		_, err := coll.BulkWrite(wctx, models, options.BulkWrite().SetOrdered(t.cfg.Ordered))
		cancel()
		if err == nil {
			for _, o := range ops {
				written = append(written, o.idx)
			}
			return written, rejected, nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || transient(err) {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return written, rejected, fmt.Errorf("bulk write of %d documents to collection %s: %w", len(ops), coll.Name(), err)
		}
		failed := map[int]bool{}
		first := len(ops)
		var dups []int // inserts refused for a duplicate key: replays, or true duplicates
		for _, we := range bwe.WriteErrors {
			if we.Index < 0 || we.Index >= len(ops) {
				return written, rejected, fmt.Errorf("bulk write to collection %s: the server reported an error for document %d of %d: %w", coll.Name(), we.Index, len(ops), err)
			}
			failed[we.Index] = true
			first = min(first, we.Index)
			if duplicateKey(we.Code) && ops[we.Index].doc != nil {
				dups = append(dups, we.Index)
			}
		}
		// An ordered bulk write stopped at first: the inserts after it that are stored
		// already (a replay) need not be sent again.
		lookup := dups
		if t.cfg.Ordered && len(dups) == 1 && dups[0] == first {
			lookup = replayWindow(ops, first)
		}
		replays, err := t.storedReplays(ctx, coll, ops, lookup)
		if err != nil {
			return written, rejected, err
		}
		for _, we := range bwe.WriteErrors {
			if !replays[we.Index] {
				rejected = append(rejected, rejection{ops[we.Index].idx, writeError(coll.Name(), we)})
			}
		}
		if !t.cfg.Ordered {
			for i, o := range ops {
				if !failed[i] || replays[i] {
					written = append(written, o.idx)
				}
			}
			t.replayed.Add(int64(len(replays)))
			return written, rejected, nil
		}
		for _, o := range ops[:first] {
			written = append(written, o.idx)
		}
		next := first + 1
		if replays[first] {
			for next < len(ops) && replays[next] {
				next++
			}
			for _, o := range ops[first:next] {
				written = append(written, o.idx)
			}
			t.replayed.Add(int64(next - first))
		}
		ops = ops[next:]
	}
	return written, rejected, nil
}

// duplicateKey reports whether a write error code is a duplicate key.
func duplicateKey(code int) bool {
	return code == 11000 || code == 11001 || code == 12582
}

// maxReplayLookup bounds the _ids looked up at once after a duplicate key.
const maxReplayLookup = 1000

// replayWindow is the positions in ops, from first on, of the inserts whose stored document
// tells whether they are replays: it ends before a write that is not an insert and before an
// _id met twice, since the writes before it in the bulk write could change what is stored.
func replayWindow(ops []*op, first int) []int {
	var window []int
	seen := map[string]bool{}
	for i := first; i < len(ops) && len(window) < maxReplayLookup; i++ {
		if ops[i].doc == nil {
			break
		}
		k := idKey(ops[i].doc.Index(0).Value())
		if seen[k] {
			break
		}
		seen[k] = true
		window = append(window, i)
	}
	return window
}

// idKey identifies an _id value by its type and bytes.
func idKey(v bson.RawValue) string {
	return string(rune(v.Type)) + string(v.Value)
}

// storedReplays looks up the stored documents with the _ids of the inserts at positions in
// ops and returns the positions whose insert is a replay: the document stored under its _id
// is the same document, or was written from the same record (id.strategy coordinates, or the
// same document.kafka.field). A duplicate key on another unique index, or a different
// document under the _id, is no replay.
func (t *Task) storedReplays(ctx context.Context, coll *mongo.Collection, ops []*op, positions []int) (map[int]bool, error) {
	replays := map[int]bool{}
	if len(positions) == 0 {
		return replays, nil
	}
	ids := make(bson.A, len(positions))
	for i, p := range positions {
		ids[i] = ops[p].doc.Index(0).Value()
	}
	lctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	cur, err := coll.Find(lctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	var stored []bson.Raw
	if err == nil {
		err = cur.All(lctx, &stored)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("looking up the stored documents of %d inserts refused as duplicate keys in collection %s: %w", len(positions), coll.Name(), err)
	}
	byID := make(map[string]bson.Raw, len(stored))
	for _, d := range stored {
		byID[idKey(d.Lookup("_id"))] = d
	}
	for _, p := range positions {
		doc := ops[p].doc
		have, ok := byID[idKey(doc.Index(0).Value())]
		if ok && t.sameRecord(doc, have) {
			replays[p] = true
		}
	}
	return replays, nil
}

// sameRecord reports whether a stored document holds the same record as doc, an insert's
// document with the same _id.
func (t *Task) sameRecord(doc, stored bson.Raw) bool {
	if t.cfg.IDStrategy == IDCoordinates {
		return true // the _id is where the record was read from
	}
	if t.cfg.KafkaField != "" {
		mine, err1 := doc.LookupErr(t.cfg.KafkaField)
		theirs, err2 := stored.LookupErr(t.cfg.KafkaField)
		if err1 == nil && err2 == nil && sameValue(mine, theirs) {
			return true
		}
	}
	return sameDocument(doc, stored)
}

// sameDocument compares two documents field by field, in any field order.
func sameDocument(a, b bson.Raw) bool {
	ae, err := a.Elements()
	if err != nil {
		return false
	}
	be, err := b.Elements()
	if err != nil || len(ae) != len(be) {
		return false
	}
	for _, e := range ae {
		other, err := b.LookupErr(e.Key())
		if err != nil || !sameValue(e.Value(), other) {
			return false
		}
	}
	return true
}

// sameValue compares two BSON values; documents in any field order, arrays in order.
func sameValue(a, b bson.RawValue) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		return sameDocument(a.Value, b.Value)
	}
	return bytes.Equal(a.Value, b.Value)
}

// PreCommit lets everything be committed: Put returns only once its records are written.
func (t *Task) PreCommit(_ context.Context, offsets connect.Offsets) (connect.Offsets, error) {
	return offsets, nil
}

// Stop disconnects.
func (t *Task) Stop() error {
	if t.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := t.client.Disconnect(ctx)
	t.client = nil
	if err != nil {
		return fmt.Errorf("mongodb-sink: disconnecting: %w", err)
	}
	return nil
}

// prepare creates a collection as a time-series collection when asked, and its indexes, once
// per task.
func (t *Task) prepare(ctx context.Context, name string) error {
	if t.cfg.TSTimeField == "" && len(t.indexes) == 0 {
		t.prepared[name] = true
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	if t.cfg.TSTimeField != "" {
		if err := createTimeSeries(ctx, t.db, name, t.cfg); err != nil {
			return err
		}
	}
	if len(t.indexes) > 0 {
		models := make([]mongo.IndexModel, len(t.indexes))
		for i, spec := range t.indexes {
			models[i] = indexModel(spec)
		}
		if _, err := t.db.Collection(name).Indexes().CreateMany(ctx, models); err != nil {
			return fmt.Errorf("creating the indexes of collection %s: %w", name, err)
		}
	}
	t.prepared[name] = true
	return nil
}

func indexModel(spec indexSpec) mongo.IndexModel {
	keys := make(bson.D, len(spec.keys))
	for i, k := range spec.keys {
		keys[i] = bson.E{Key: k.field, Value: k.order}
	}
	m := mongo.IndexModel{Keys: keys}
	if spec.unique {
		m.Options = options.Index().SetUnique(true)
	}
	return m
}

// createCommand is the create command of a time-series collection.
func createCommand(name string, c Config) bson.D {
	ts := bson.D{{Key: "timeField", Value: c.TSTimeField}}
	if c.TSMetaField != "" {
		ts = append(ts, bson.E{Key: "metaField", Value: c.TSMetaField})
	}
	ts = append(ts, bson.E{Key: "granularity", Value: c.TSGranular})
	cmd := bson.D{{Key: "create", Value: name}, {Key: "timeseries", Value: ts}}
	if c.TSExpire > 0 {
		cmd = append(cmd, bson.E{Key: "expireAfterSeconds", Value: int64(c.TSExpire / time.Second)})
	}
	return cmd
}

// codeNamespaceExists is the server's answer to creating a collection that exists.
const codeNamespaceExists = 48

// createTimeSeries creates a time-series collection unless it exists, then checks that the
// collection is one: a server without time-series collections may create an ordinary one.
func createTimeSeries(ctx context.Context, db *mongo.Database, name string, c Config) error {
	err := db.RunCommand(ctx, createCommand(name, c)).Err()
	existed := false
	if se := mongo.ServerError(nil); errors.As(err, &se) && se.HasErrorCode(codeNamespaceExists) {
		existed, err = true, nil
	}
	if err != nil {
		return fmt.Errorf("creating time-series collection %s: %w", name, err)
	}
	specs, err := db.ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: name}})
	if err != nil {
		return fmt.Errorf("checking collection %s: %w", name, err)
	}
	if len(specs) == 1 && specs[0].Type == "timeseries" {
		return nil
	}
	kind := "nothing"
	if len(specs) == 1 {
		kind = fmt.Sprintf("a collection of type %q", specs[0].Type)
	}
	if existed {
		return fmt.Errorf("collection %s exists and is %s, not a time-series collection (timeseries.time.field %q): drop it, or write to another collection", name, kind, c.TSTimeField)
	}
	return fmt.Errorf("asked to create collection %s as a time-series collection (timeseries.time.field %q), the server made %s: %w (MongoDB has them from 5.0; leave timeseries.time.field empty for this server)",
		name, c.TSTimeField, kind, errTimeSeriesUnsupported)
}
