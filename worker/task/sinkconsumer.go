package task

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/connect"
	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// sinkConsumer is a sink task's consumer in the group connect-<name>: franz-go's kgo client,
// which fetches whole batches into Go memory without a cgo call per record (the measured
// case, docs/performance.md: the sink loop on confluent-kafka-go read at most what its
// per-record Poll allowed, and its prefetch queue held hundreds of megabytes outside the Go
// heap).
//
// Only the sink loop's goroutine uses it. The group's rebalance callbacks run in franz-go's
// goroutine, but with BlockRebalanceOnPoll they can only start while the loop is inside poll,
// and they hand their event to the loop there and wait for it: the loop's state is never
// touched from two goroutines, as with librdkafka's callbacks inside Poll.
type sinkConsumer struct {
	opts    []kgo.Opt
	cl      *kgo.Client
	events  chan *groupEvent
	closing chan struct{}
	// high is each partition's high watermark from the last fetch that carried it, for the
	// lag gauge without a request to Kafka.
	high map[connect.TopicPartition]int64
}

// groupEvent is an assignment, revocation or loss of partitions, handled by the loop.
type groupEvent struct {
	assigned bool
	lost     bool // revoked without a chance to commit
	tps      []connect.TopicPartition
	done     chan struct{}
}

// consumerIgnored are librdkafka settings with no franz-go counterpart that Sluice itself or
// users set for the sink consumer; they are dropped without a warning.
var consumerIgnored = map[string]bool{
	"queued.min.messages": true, "queued.max.messages.kbytes": true, "enable.auto.offset.store": true,
	"enable.auto.commit": true, "go.logs.channel.enable": true, "log_level": true, "enable.partition.eof": true,
	"statistics.interval.ms": true, "socket.keepalive.enable": true, "api.version.request": true,
	"broker.address.family": true, "go.events.channel.enable": true, "go.application.rebalance.enable": true,
}

// minFetchWait is the least fetch wait franz-go accepts.
const minFetchWait = 10 * time.Millisecond

// securityTranslated are the security settings groupClientOptions turns into franz-go's TLS
// and SASL options; any other ssl.* or sasl.* setting is reported as unused.
var securityTranslated = map[string]bool{
	"ssl.ca.location": true, "ssl.certificate.location": true, "ssl.key.location": true,
	"sasl.mechanism": true, "sasl.mechanisms": true, "sasl.username": true, "sasl.password": true,
}

// CheckConsumerSettings refuses, by name, consumer settings no sink task could start with (a
// value that is not a number, a fetch wait under franz-go's least, ...), so that a worker
// refuses them when it starts rather than failing every sink task.
func CheckConsumerSettings(settings ...map[string]string) error {
	_, _, err := newSinkConsumer("", "", settings...)
	return err
}

// newSinkConsumer builds the options of a sink task's consumer from librdkafka-named settings
// (the worker's common and consumer.* settings, Sluice's defaults, the connector's
// consumer.override.*; later maps win). It returns the settings it could not apply, for the
// task to warn about. The client is made by start.
func newSinkConsumer(bootstrap, clientID string, settings ...map[string]string) (*sinkConsumer, []string, error) {
	all := map[string]string{}
	for _, s := range settings {
		maps.Copy(all, s)
	}
	opts, err := kafkaclient.GroupOptions(all)
	if err != nil {
		return nil, nil, err
	}
	// A connector's consumer.override.bootstrap.servers or client.id (where the override policy
	// lets it) wins, as it did with librdkafka.
	if v := all["bootstrap.servers"]; v != "" {
		bootstrap = v
	}
	if v := all["client.id"]; v != "" {
		clientID = v
	}
	opts = append(opts, kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.ClientID(clientID),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		// librdkafka's default, kept: a sink reads only committed transactions (the aggregate
		// connector writes transactionally).
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var unused []string
	ms := func(k, v string) (time.Duration, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("consumer setting %s: %q is not a number of milliseconds", k, v)
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	num := func(k, v string) (int32, error) {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("consumer setting %s: %q is not a positive number", k, v)
		}
		return int32(n), nil
	}
	for _, k := range slices.Sorted(maps.Keys(all)) {
		v := all[k]
		var d time.Duration
		var n int32
		var err error
		switch k {
		case "group.id":
			opts = append(opts, kgo.ConsumerGroup(v))
		case "client.id", "bootstrap.servers", "security.protocol":
		case "auto.offset.reset":
			switch strings.ToLower(v) {
			case "earliest", "smallest", "beginning":
				opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			case "latest", "largest", "end":
				opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
			case "none", "error":
				opts = append(opts, kgo.ConsumeResetOffset(kgo.NoResetOffset()))
			default:
				return nil, nil, fmt.Errorf("consumer setting auto.offset.reset: %q is not earliest, latest or none", v)
			}
		case "isolation.level":
			switch strings.ToLower(v) {
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			case "read_uncommitted":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
			default:
				return nil, nil, fmt.Errorf("consumer setting isolation.level: %q is not read_committed or read_uncommitted", v)
			}
		case "partition.assignment.strategy":
			var bs []kgo.GroupBalancer
			for _, s := range strings.Split(v, ",") {
				switch strings.ToLower(strings.TrimSpace(s)) {
				case "cooperative-sticky":
					bs = append(bs, kgo.CooperativeStickyBalancer())
				case "range":
					bs = append(bs, kgo.RangeBalancer())
				case "roundrobin":
					bs = append(bs, kgo.RoundRobinBalancer())
				default:
					return nil, nil, fmt.Errorf("consumer setting partition.assignment.strategy: %q is not cooperative-sticky, range or roundrobin", s)
				}
			}
			opts = append(opts, kgo.Balancers(bs...))
		case "session.timeout.ms":
			if d, err = ms(k, v); err == nil {
				opts = append(opts, kgo.SessionTimeout(d))
			}
		case "heartbeat.interval.ms":
			if d, err = ms(k, v); err == nil {
				opts = append(opts, kgo.HeartbeatInterval(d))
			}
		case "max.poll.interval.ms":
			if d, err = ms(k, v); err == nil {
				opts = append(opts, kgo.RebalanceTimeout(d))
			}
		case "fetch.wait.max.ms", "fetch.max.wait.ms":
			if d, err = ms(k, v); err == nil && d < minFetchWait {
				// franz-go refuses less when the task starts; say so, naming the setting.
				err = fmt.Errorf("consumer setting %s: %q is under %d, the least the sink consumer waits", k, v, minFetchWait.Milliseconds())
			}
			if err == nil {
				opts = append(opts, kgo.FetchMaxWait(d))
			}
		case "metadata.max.age.ms", "topic.metadata.refresh.interval.ms":
			if d, err = ms(k, v); err == nil {
				opts = append(opts, kgo.MetadataMaxAge(d))
			}
		case "fetch.max.bytes":
			if n, err = num(k, v); err == nil {
				opts = append(opts, kgo.FetchMaxBytes(n))
			}
		case "max.partition.fetch.bytes", "fetch.message.max.bytes":
			if n, err = num(k, v); err == nil {
				opts = append(opts, kgo.FetchMaxPartitionBytes(n))
			}
		case "fetch.min.bytes":
			if n, err = num(k, v); err == nil {
				opts = append(opts, kgo.FetchMinBytes(n))
			}
		case "group.instance.id":
			opts = append(opts, kgo.InstanceID(v))
		case "client.rack":
			opts = append(opts, kgo.Rack(v))
		default:
			if !consumerIgnored[k] && !securityTranslated[k] {
				unused = append(unused, k)
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return &sinkConsumer{opts: opts, events: make(chan *groupEvent), closing: make(chan struct{}),
		high: map[connect.TopicPartition]int64{}}, unused, nil
}

// start makes the client, which joins the group and subscribes to the topics (or, with
// regex, to every topic the pattern matches). startOffsets gives the offsets the task asked
// for in Open, which replace the committed ones of newly assigned partitions.
func (c *sinkConsumer) start(topics []string, regex string, startOffsets func([]connect.TopicPartition) map[connect.TopicPartition]int64) error {
	opts := append(slices.Clone(c.opts),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.deliver(&groupEvent{assigned: true, tps: topicPartitions(m)})
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m) > 0 {
				c.deliver(&groupEvent{tps: topicPartitions(m)})
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m) > 0 {
				c.deliver(&groupEvent{lost: true, tps: topicPartitions(m)})
			}
		}),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			var tps []connect.TopicPartition
			for t, ps := range offs {
				for p := range ps {
					tps = append(tps, connect.TopicPartition{Topic: t, Partition: p})
				}
			}
			for tp, off := range startOffsets(tps) {
				offs[tp.Topic][tp.Partition] = kgo.NewOffset().At(off).WithEpoch(-1)
			}
			return offs, nil
		}))
	if regex != "" {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(regex))
	} else {
		opts = append(opts, kgo.ConsumeTopics(topics...))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	c.cl = cl
	return nil
}

// deliver hands a group event to the loop, which handles it inside poll, and waits for it; once
// the consumer is closing nothing waits (the task is stopped by then).
func (c *sinkConsumer) deliver(ev *groupEvent) {
	ev.done = make(chan struct{})
	select {
	case c.events <- ev:
		<-ev.done
	case <-c.closing:
	}
}

func topicPartitions(m map[string][]int32) []connect.TopicPartition {
	var out []connect.TopicPartition
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, connect.TopicPartition{Topic: t, Partition: p})
		}
	}
	return out
}

func partitionMap(tps []connect.TopicPartition) map[string][]int32 {
	m := map[string][]int32{}
	for _, tp := range tps {
		m[tp.Topic] = append(m[tp.Topic], tp.Partition)
	}
	return m
}

// poll returns up to max records, waiting up to wait for the first, and lets the group
// rebalance meanwhile: handle runs each group event in this goroutine. Errors of single
// partitions are logged through warn; only a closed client is an error.
func (c *sinkConsumer) poll(ctx context.Context, wait time.Duration, max int, handle func(context.Context, *groupEvent), warn func(string, ...any)) ([]*kgo.Record, error) {
	c.cl.AllowRebalance()
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	got := make(chan kgo.Fetches, 1)
	go func() { got <- c.cl.PollRecords(pctx, max) }()
	for {
		select {
		case ev := <-c.events:
			handle(ctx, ev)
			close(ev.done)
		case f := <-got:
			if f.IsClientClosed() {
				return nil, errors.New("consumer closed")
			}
			f.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					warn("consumer error", "topic", t, "partition", p, "err", err)
				}
			})
			f.EachPartition(func(p kgo.FetchTopicPartition) {
				if p.Err == nil {
					c.high[connect.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.HighWatermark
				}
			})
			return f.Records(), nil
		}
	}
}

// serveOnly lets the group rebalance for up to wait without reading records, handling the
// events as poll does (the loop has a batch's worth in hand already).
func (c *sinkConsumer) serveOnly(ctx context.Context, wait time.Duration, handle func(context.Context, *groupEvent)) error {
	c.cl.AllowRebalance()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case ev := <-c.events:
			handle(ctx, ev)
			close(ev.done)
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// serveWaiting lets the group rebalance and handles the events already waiting, without
// waiting for any.
func (c *sinkConsumer) serveWaiting(ctx context.Context, handle func(context.Context, *groupEvent)) {
	c.cl.AllowRebalance()
	for {
		select {
		case ev := <-c.events:
			handle(ctx, ev)
			close(ev.done)
		default:
			return
		}
	}
}

// commit commits the offsets (the next offset to read, per partition) and waits for the
// answer; a partition the coordinator refused is an error.
func (c *sinkConsumer) commit(ctx context.Context, offsets connect.Offsets) error {
	m := map[string]map[int32]kgo.EpochOffset{}
	for tp, off := range offsets {
		if m[tp.Topic] == nil {
			m[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		m[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	var failed error
	c.cl.CommitOffsetsSync(ctx, m, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failed = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && failed == nil {
					failed = fmt.Errorf("%s-%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return failed
}

func (c *sinkConsumer) pause(tps []connect.TopicPartition) {
	if len(tps) > 0 {
		c.cl.PauseFetchPartitions(partitionMap(tps))
	}
}

func (c *sinkConsumer) resume(tps []connect.TopicPartition) {
	if len(tps) > 0 {
		c.cl.ResumeFetchPartitions(partitionMap(tps))
	}
}

// seek makes the next record read from the partition the one at offset. It reports false when
// the client cannot move the partition yet: franz-go's SetOffsets skips a partition it holds no
// position for (its starting offset still loading, or none committed and nothing read), and
// the caller must try again once records of it arrive.
func (c *sinkConsumer) seek(tp connect.TopicPartition, offset int64) bool {
	if _, known := c.cl.UncommittedOffsets()[tp.Topic][tp.Partition]; !known {
		return false
	}
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.Topic: {tp.Partition: {Epoch: -1, Offset: offset}}})
	return true
}

// buffered says whether the consumer holds fetched records a poll would return at once.
func (c *sinkConsumer) buffered() bool { return c.cl.BufferedFetchRecords() > 0 }

// highWatermark is the partition's high watermark as the last fetch saw it.
func (c *sinkConsumer) highWatermark(tp connect.TopicPartition) (int64, bool) {
	h, ok := c.high[tp]
	return h, ok
}

// forget drops what the consumer knows of partitions no longer assigned.
func (c *sinkConsumer) forget(tps []connect.TopicPartition) {
	for _, tp := range tps {
		delete(c.high, tp)
	}
	c.resume(tps) // a pause must not outlive the assignment
}

// close leaves the group; callbacks it causes find the loop gone and return at once.
func (c *sinkConsumer) close() {
	close(c.closing)
	if c.cl != nil {
		c.cl.AllowRebalance()
		c.cl.Close()
	}
}

// kafkaMessage is the record as the error policy takes it: the original bytes and position,
// for the dead-letter topic. Made only for a record that failed.
func kafkaMessage(r *kgo.Record) *kafka.Message {
	topic := r.Topic
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: r.Partition, Offset: kafka.Offset(r.Offset)},
		Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return m
}
