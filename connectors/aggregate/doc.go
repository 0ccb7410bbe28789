package aggregate

// pluginDoc is the prose of the generated reference page, docs/connectors/aggregate.md.
const pluginDoc = `Aggregates a raw topic of JSON frames over event-time windows (tumbling or hopping), per group
key (for example ` + "`device_id`" + ` or ` + "`place_id`" + `), into an aggregated topic and optionally a
metrics topic for the prometheus-sink, exactly once.

### How it works

**A stream processor hosted as a connector.** It reads Kafka and writes Kafka (consume,
transform, produce, as Kafka Streams does); the runtime only hosts it, for its REST
configuration, status, restarts, placement on workers and error policy. The runtime's source
loop is at least once (records are produced, then their offsets stored), and a window result
written twice is a wrong aggregate downstream, so each task owns its own Kafka clients and
keeps its consumed offsets, its window state and its results in one Kafka transaction. A consumer in the group
` + "`kafka.group.id`" + ` (static membership, instance ` + "`<group>-<task id>`" + `) reads
` + "`source.topic`" + ` with ` + "`isolation.level=read_committed`" + `, and a transactional producer with
` + "`transactional.id`" + ` ` + "`sluice-aggregate-<connector>-<task id>`" + ` writes everything. The task's
Poll runs one transaction and returns no records:

1. consume frames for up to ` + "`commit.interval`" + ` (at most ` + "`commit.max.records`" + `) and add each to its
   windows;
2. emit the windows the watermark has closed (and re-emit windows late frames changed) to
   ` + "`output.topic`" + ` and ` + "`metrics.topic`" + `; write too-late frames to ` + "`late.topic`" + `;
3. write the changed window state, watermarks and counters to the compacted changelog topic;
4. add the consumed offsets to the transaction (` + "`SendOffsetsToTransaction`" + ` with the consumer's
   group metadata) and commit.

When a task starts or is given partitions it reads their committed offsets (which waits for
transactions still open on them), reads the changelog back to its end with read_committed,
and continues at those offsets. A restarted or moved task has the same ` + "`transactional.id`" + `, so
its start fences the producer of its predecessor and aborts its open transaction. A failed
transaction is aborted and the task rewinds to the last committed one. So a read_committed
consumer of the output sees each window result exactly once across crashes, restarts and
rebalances. The connector creates its topics when missing: output, metrics and late topics
with the source topic's partition count, the changelog compacted with one partition per
source partition (one with global partitioning).

### Windows and time

A frame's event time comes from ` + "`event.time.field`" + ` (RFC 3339 / ISO 8601, or epoch
milliseconds). Windows are ` + "`[k*advance, k*advance + window.size)`" + `. Each source partition has a
watermark: the greatest event time seen in it minus ` + "`watermark.out.of.order`" + ` (with global
partitioning a window's watermark is the least of the partitions that have frames). A frame is
judged against the watermark before it: windows whose end plus ` + "`allowed.lateness`" + ` the
watermark has reached take no more frames. A window is emitted once the watermark reaches its
end (` + "`revision`" + ` 0, ` + "`final`" + ` true); a late frame within the allowed lateness updates it and it is
emitted again with the next revision; once the lateness has passed the window is dropped.
A frame none of whose windows still takes frames is too late: it goes to ` + "`late.topic`" + `
(in the transaction, with headers ` + "`sluice.aggregate.reason`" + ` and ` + "`sluice.aggregate.source`" + `), or,
without one, to the runtime's error policy (so set ` + "`errors.tolerance=all`" + ` and a dead-letter
topic; note that records reported to the error policy are outside the transaction and may be
reported again after a crash). Frames that are not JSON objects or lack a group field or
event time also go to the error policy, and so do frames no aggregate could hold: a reading
that is not a finite number (` + "`\"NaN\"`" + `, ` + "`\"Infinity\"`" + `, beyond a 64-bit float) or
that would make a window's sum overflow, an event time outside the years 1 to 9999 or more
than ` + "`event.time.max.future`" + ` ahead of the wall clock (it would move the watermark, which
the changelog keeps, so far that every later frame were too late), and frames a limit turns
away (see Limits). The error names the field and its value; the task keeps running. With
` + "`dedupe.field`" + ` set, a frame whose id one of its windows already counted is dropped. The counts of accepted, duplicate and too-late frames are
kept per source partition in the changelog and logged when a task stops.

Windows close only as event time advances in their partition: the last windows of a stream
that stops stay open until newer frames arrive.

### Output

Key: a JSON object of the group fields and ` + "`window_start`" + `, for example
` + "`{\"device_id\":\"d1\",\"window_start\":\"2026-11-23T10:00:00.000Z\"}`" + `. Value: the group fields,
` + "`window_start`" + `, ` + "`window_end`" + ` (RFC 3339, UTC), ` + "`frames`" + `, ` + "`<field>_<aggregation>`" + ` for every
value field and aggregation (null for min, max, avg, first and last when no frame had the
field), ` + "`revision`" + ` and ` + "`final`" + `. The latest revision of a key is the window's result.

Metrics records (` + "`metrics.topic`" + `): one per window and ` + "`<prefix>_frames`" + `, and per value field and
aggregation ` + "`<prefix>_<field>_<aggregation>`" + `, shaped
` + "`{\"name\": ..., \"labels\": {<group labels>, \"window\": \"1m0s\"}, \"value\": ..., \"timestamp\": <window end ms>}`" + `
and keyed by the series (` + "`name{labels}`" + `). The prometheus-sink reads them with
` + "`metric.name.field=name`" + `, ` + "`value.fields=value`" + `, ` + "`label.fields=labels.device_id,labels.window`" + `
and, to expose the window end, ` + "`timestamps.enable=true`" + ` with ` + "`timestamp.field=timestamp`" + `.

### Partitioning and tasks

With ` + "`partitioning=aligned`" + ` (the default) window state is per source partition and up to
` + "`tasks.max`" + ` tasks share the partitions; this is right when all frames of a group key are in one
partition (the raw topic keyed by device id, aggregated per device). To aggregate over a key
that spans partitions (per place while the topic is keyed by device), use
` + "`partitioning=global`" + `: one task keeps one state over all partitions. For per-sensor and
per-place aggregates run two connectors on the same raw topic.

### Throughput

` + benchDoc

// benchDoc holds the figures of the throughput harness (SLUICE_BENCH=1 go test -run Bench
// ./connectors/aggregate/).
const benchDoc = `Measured by the harness in bench_integration_test.go (` + "`SLUICE_BENCH=1 go test -run TestBench ./connectors/aggregate/`" + `),
medians of 3 rounds, on the project's shared 2-core test machine with one local broker: 300,000
frames of about 200 bytes in one partition, one task, 10 s tumbling windows over 100 devices,
four value fields, all seven aggregations, dedupe by frame id, a metrics topic.

| pipeline | frames/s |
|---|---|
| aggregate connector (one task, exactly once) | 106,600–109,100 |
| plain copy: read_committed consumer to producer | 132,000–132,400 |
| transactional copy: the same in 1 s transactions with the offsets | 129,800–130,400 |

Two runs of 2026-12-07. The connector runs at 0.81–0.84 of a plain copy and of a transactional
one. Its own work is about 2 µs a frame on one core (BenchmarkParseAndAdd): frames are parsed
with fastjson, reading only the group, time, id and value fields; decoding each frame into a
map with encoding/json took 4 µs and held the connector at 0.25 of a copy (0.52 in the same
harness the day the parser changed).

### Limits

- Open windows: a task holds at most ` + "`window.max.open`" + ` windows (group key and window start;
  100,000 by default, about 1 kB of memory each plus their event ids). A frame that would open
  one more first makes the windows the watermark (with its own time) has expired emit and go;
  if that frees no room it goes to the error policy, naming the group field and value, and the
  task's status trace says the limit is reached until the open windows are down to 90% of it.
  Frames turned away still move the watermark, so windows keep closing.
- Event ids: the changelog stores each changed window whole once per transaction, including
  its event ids when ` + "`dedupe.field`" + ` is set. A window keeps at most ` + "`dedupe.max.ids`" + ` ids
  (20,000 by default) and at most 800 kB of them as JSON, so that its changelog record stays
  below Kafka's default 1 MB a record; a frame that would add one more goes to the error
  policy, naming the id. A group key is at most 4096 bytes of JSON, for the same reason.
- Event time: frames more than ` + "`event.time.max.future`" + ` (5 minutes by default) ahead of the
  task's wall clock go to the error policy; keep the clocks of the devices and the workers in
  sync (NTP), or raise it. A source partition whose greatest event time in the changelog is
  further ahead than that (written before the check existed) restarts its watermark from the
  wall clock when the task restores it, with a warning in the log.
- Tasks use static group membership: a task that stops for good (tasks.max lowered, connector
  deleted) keeps its partitions until ` + "`session.timeout.ms`" + ` (45 s by default; set
  ` + "`kafka.session.timeout.ms`" + ` to change it) has passed.
- With global partitioning a source partition that stops receiving frames holds the watermark
  back.`
