package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// clientFactory builds Kafka clients with the worker's settings: bootstrap servers, the
// security settings every client shares, then the producer./consumer./admin. settings, then
// the settings the caller gives (a connector's overrides, the runtime's own needs).
type clientFactory struct {
	bootstrap string
	client    ClientSettings
	clientID  string
}

func newClientFactory(cfg *WorkerConfig, clientID string) *clientFactory {
	return &clientFactory{bootstrap: cfg.BootstrapServers, client: cfg.Client, clientID: clientID}
}

func (f *clientFactory) configMap(kind map[string]string, extra ...map[string]string) *kafka.ConfigMap {
	// librdkafka logs warnings and errors (its info lines, like telemetry notices, are noise
	// on a worker's stderr); producer.log_level and the like change it.
	m := kafka.ConfigMap{"bootstrap.servers": f.bootstrap, "client.id": f.clientID, "log_level": 4}
	set := func(src map[string]string) {
		for k, v := range src {
			m[k] = goTyped(k, v)
		}
	}
	set(f.client.Common)
	set(kind)
	for _, e := range extra {
		set(e)
	}
	return &m
}

// maxInFlight is librdkafka's setting for the produce requests a connection has in flight.
const maxInFlight = "max.in.flight.requests.per.connection"

// librdkafkaAliases are the other names librdkafka takes for settings Sluice gives a default:
// a default set beside a user's alias would leave librdkafka to pick one of the two.
var librdkafkaAliases = map[string][]string{maxInFlight: {"max.in.flight"}}

// unlessSet returns the defaults that none of settings sets, by its name or an alias:
// Sluice's choices, which a worker setting (producer.*, consumer.*) or a connector's
// override may change.
func unlessSet(defaults map[string]string, settings ...map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range defaults {
		set := false
		for _, name := range append([]string{k}, librdkafkaAliases[k]...) {
			for _, s := range settings {
				_, ok := s[name]
				set = set || ok
			}
		}
		if !set {
			out[k] = v
		}
	}
	return out
}

func (f *clientFactory) producer(extra ...map[string]string) (*kafka.Producer, error) {
	// murmur2_random partitions keyed records as Kafka's Java clients do, so a record lands
	// where Kafka Connect would put it.
	//
	// confluent-kafka-go makes a delivery-report channel and a produce channel of a million
	// entries each for every producer (24 MB of Go heap, counted live): with the worker's own
	// producers and the tasks', that doubled the heap the collector lets grow (GOGC) and most of
	// a worker's peak memory was that. Reports are read as they come, and Produce is called
	// directly (the produce channel is unused), so 10,000 and 1 lose nothing.
	base := map[string]string{"partitioner": "murmur2_random", "go.logs.channel.enable": "false",
		"go.events.channel.size": "10000", "go.produce.channel.size": "1"}
	// One produce request in flight per broker connection, not librdkafka's five: with more,
	// a new producer's first batch to a partition can fail (a partition just created, or
	// whose leader just moved, answers NOT_LEADER) while the next batch, already sent, is
	// accepted, as Kafka takes any first sequence number from a producer it has no state
	// for; librdkafka then reports the failed batch delivered ("implicitly acked", offset
	// -1001) although Kafka never wrote it (confluent-kafka-go issue 921). Sluice lost the
	// first readings of new topics that way (issue 16). Measured on one broker, the cost is
	// within the noise: librdkafka's batches grow instead. producer.max.in.flight.requests.per.connection
	// sets it back, for those who accept the risk.
	//
	// The queue of messages waiting to be sent is bounded at 32 MB, Kafka's Java producer's
	// buffer.memory, not librdkafka's 1 GB: a source of large records would otherwise hold up
	// to a gigabyte before Produce pushed back. Small records meet the count bound first
	// (queue.buffering.max.messages, 100,000). Measured with 95-byte records: no cost.
	// producer.queue.buffering.max.kbytes sets it otherwise.
	defaults := unlessSet(map[string]string{maxInFlight: "1", "queue.buffering.max.kbytes": "32768"},
		append([]map[string]string{f.client.Common, f.client.Producer}, extra...)...)
	return kafka.NewProducer(f.configMap(f.client.Producer, append([]map[string]string{base, defaults}, extra...)...))
}

func (f *clientFactory) consumer(extra ...map[string]string) (*kafka.Consumer, error) {
	return kafka.NewConsumer(f.configMap(f.client.Consumer, extra...))
}

func (f *clientFactory) admin(extra ...map[string]string) (*kafka.AdminClient, error) {
	return kafka.NewAdminClient(f.configMap(f.client.Admin, extra...))
}

// topicSpec describes an internal or connector topic the worker makes sure exists.
type topicSpec struct {
	name        string
	partitions  int
	replication int
	compact     bool
	// exactPartitions refuses an existing topic with another partition count.
	exactPartitions bool
	configs         map[string]string
}

// ensureTopic creates the topic when it is missing and checks an existing one: internal
// topics must be compacted, and the config topic must have exactly one partition.
func ensureTopic(ctx context.Context, admin *kafka.AdminClient, spec topicSpec) error {
	cfg := maps.Clone(spec.configs)
	if cfg == nil {
		cfg = map[string]string{}
	}
	if spec.compact {
		cfg["cleanup.policy"] = "compact"
	}
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{
		Topic: spec.name, NumPartitions: spec.partitions, ReplicationFactor: spec.replication, Config: cfg,
	}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", spec.name, err)
	}
	switch code := res[0].Error.Code(); code {
	case kafka.ErrNoError, kafka.ErrTopicAlreadyExists:
	case kafka.ErrInvalidReplicationFactor, kafka.ErrPolicyViolation:
		return fmt.Errorf("create topic %s with replication factor %d: %v (set the replication factor setting, -1 uses the broker default)", spec.name, spec.replication, res[0].Error)
	default:
		return fmt.Errorf("create topic %s: %v", spec.name, res[0].Error)
	}
	// It exists: check it. A topic just created, by this worker or another, may not be
	// visible in full yet (no partitions in the metadata, no configs in DescribeConfigs):
	// three workers started at once on a new group race here, so an incomplete answer is
	// asked again.
	wait := backoff{initial: 100 * time.Millisecond, max: time.Second}
	for deadline := time.Now().Add(topicVisibleTimeout); ; {
		done, err := checkTopic(ctx, admin, spec)
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) || sleepCtx(ctx, wait.wait()) != nil {
			return fmt.Errorf("topic %s exists, but Kafka did not show its partitions and configs within %v", spec.name, topicVisibleTimeout)
		}
	}
}

// clusterID asks Kafka for its cluster id until it answers or ctx ends, telling failed
// attempts to failed, and returns the admin client that got the answer. It sends a
// DescribeCluster request for each attempt (the client's ClusterID waits for metadata without
// asking for it: a worker of a clean-clone CI run waited on it for minutes while the broker
// served every other worker), and after every third failed attempt it starts over with a new
// admin client from renew.
func clusterID(ctx context.Context, admin *kafka.AdminClient, renew func() (*kafka.AdminClient, error), failed func(error)) (string, *kafka.AdminClient, error) {
	wait := backoff{initial: 200 * time.Millisecond, max: 2 * time.Second}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, clusterIDAttempt)
		res, err := admin.DescribeCluster(actx, kafka.SetAdminRequestTimeout(clusterIDAttempt))
		cancel()
		if err == nil && res.ClusterID != nil {
			return *res.ClusterID, admin, nil
		}
		if err == nil {
			err = errors.New("Kafka described the cluster without an id")
		}
		failed(fmt.Errorf("attempt %d: %w", attempt, err))
		if sleepCtx(ctx, wait.wait()) != nil {
			return "", admin, err
		}
		if attempt%3 == 0 {
			if fresh, rerr := renew(); rerr == nil {
				admin.Close()
				admin = fresh
			}
		}
	}
}

// clusterIDAttempt bounds one attempt of clusterID.
const clusterIDAttempt = 10 * time.Second

// topicVisibleTimeout bounds how long a worker waits for a topic someone else is creating.
const topicVisibleTimeout = 30 * time.Second

// checkTopic checks an existing topic against spec; done is false while what Kafka says of it
// is incomplete (a topic being created).
func checkTopic(ctx context.Context, admin *kafka.AdminClient, spec topicSpec) (done bool, err error) {
	md, err := admin.GetMetadata(&spec.name, false, timeoutMs(ctx, 10e9))
	if err != nil {
		return false, fmt.Errorf("describe topic %s: %w", spec.name, err)
	}
	tm := md.Topics[spec.name]
	n := len(tm.Partitions)
	if n == 0 || tm.Error.Code() != kafka.ErrNoError {
		return false, nil
	}
	if spec.exactPartitions && n != spec.partitions {
		return true, fmt.Errorf("topic %s has %d partitions; it must have exactly %d", spec.name, n, spec.partitions)
	}
	if spec.compact {
		desc, err := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: spec.name}})
		if err != nil {
			return false, fmt.Errorf("describe topic %s: %w", spec.name, err)
		}
		if desc[0].Error.Code() != kafka.ErrNoError {
			return false, nil
		}
		policy, ok := desc[0].Config["cleanup.policy"]
		if !ok || policy.Value == "" {
			return false, nil
		}
		if !strings.Contains(policy.Value, "compact") {
			return true, fmt.Errorf("topic %s has cleanup.policy=%s; it must be compact, or configs, offsets and statuses would be deleted", spec.name, policy.Value)
		}
	}
	return true, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// goTyped gives the Go client's own go.* settings the types it insists on; librdkafka's
// settings take strings.
func goTyped(key, v string) kafka.ConfigValue {
	if !strings.HasPrefix(key, "go.") {
		return v
	}
	// Numbers first: "1" is a size (go.produce.channel.size), not true.
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}
