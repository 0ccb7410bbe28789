// Package kafkaclient makes the worker's Kafka clients: confluent-kafka-go producers, consumers
// and admin clients with the worker's settings and Sluice's defaults, franz-go options with the
// same security settings, and the topics the worker makes sure exist.
package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/internal/retry"
)

// Factory builds Kafka clients with the worker's settings: bootstrap servers, the
// security settings every client shares, then the producer./consumer./admin. settings, then
// the settings the caller gives (a connector's overrides, the runtime's own needs).
type Factory struct {
	bootstrap string
	client    Settings
	clientID  string
}

// ClientSettings are Kafka client settings by client kind, in librdkafka's names.
type Settings struct {
	Common, Producer, Consumer, Admin map[string]string
}

// NewFactory makes a factory of clients of the brokers at bootstrap, with settings, named
// clientID.
func NewFactory(bootstrap string, settings Settings, clientID string) *Factory {
	return &Factory{bootstrap: bootstrap, client: settings, clientID: clientID}
}

// ClientID is the client.id the factory gives its clients.
func (f *Factory) ClientID() string { return f.clientID }

func (f *Factory) ConfigMap(kind map[string]string, extra ...map[string]string) *kafka.ConfigMap {
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

// MaxInFlight is librdkafka's setting for the produce requests a connection has in flight.
const MaxInFlight = "max.in.flight.requests.per.connection"

// librdkafkaAliases are the other names librdkafka takes for settings Sluice gives a default:
// a default set beside a user's alias would leave librdkafka to pick one of the two.
var librdkafkaAliases = map[string][]string{MaxInFlight: {"max.in.flight"}}

// UnlessSet returns the defaults that none of settings sets, by its name or an alias:
// Sluice's choices, which a worker setting (producer.*, consumer.*) or a connector's
// override may change.
func UnlessSet(defaults map[string]string, settings ...map[string]string) map[string]string {
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

func (f *Factory) Producer(extra ...map[string]string) (*kafka.Producer, error) {
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
	defaults := UnlessSet(map[string]string{MaxInFlight: "1", "queue.buffering.max.kbytes": "32768"},
		append([]map[string]string{f.client.Common, f.client.Producer}, extra...)...)
	return kafka.NewProducer(f.ConfigMap(f.client.Producer, append([]map[string]string{base, defaults}, extra...)...))
}

func (f *Factory) Consumer(extra ...map[string]string) (*kafka.Consumer, error) {
	return kafka.NewConsumer(f.ConfigMap(f.client.Consumer, extra...))
}

func (f *Factory) Admin(extra ...map[string]string) (*kafka.AdminClient, error) {
	return kafka.NewAdminClient(f.ConfigMap(f.client.Admin, extra...))
}

// TopicSpec describes an internal or connector topic the worker makes sure exists.
type TopicSpec struct {
	Name        string
	Partitions  int
	Replication int
	Compact     bool
	// ExactPartitions refuses an existing topic with another partition count.
	ExactPartitions bool
	Configs         map[string]string
}

// EnsureTopic creates the topic when it is missing and checks an existing one: internal
// topics must be compacted, and the config topic must have exactly one partition.
func EnsureTopic(ctx context.Context, admin *kafka.AdminClient, spec TopicSpec) error {
	cfg := maps.Clone(spec.Configs)
	if cfg == nil {
		cfg = map[string]string{}
	}
	if spec.Compact {
		cfg["cleanup.policy"] = "compact"
	}
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{
		Topic: spec.Name, NumPartitions: spec.Partitions, ReplicationFactor: spec.Replication, Config: cfg,
	}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", spec.Name, err)
	}
	switch code := res[0].Error.Code(); code {
	case kafka.ErrNoError, kafka.ErrTopicAlreadyExists:
	case kafka.ErrInvalidReplicationFactor, kafka.ErrPolicyViolation:
		return fmt.Errorf("create topic %s with replication factor %d: %v (set the replication factor setting, -1 uses the broker default)", spec.Name, spec.Replication, res[0].Error)
	default:
		return fmt.Errorf("create topic %s: %v", spec.Name, res[0].Error)
	}
	// It exists: check it. A topic just created, by this worker or another, may not be
	// visible in full yet (no partitions in the metadata, no configs in DescribeConfigs):
	// three workers started at once on a new group race here, so an incomplete answer is
	// asked again.
	wait := retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for deadline := time.Now().Add(TopicVisibleTimeout); ; {
		done, err := checkTopic(ctx, admin, spec)
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) || retry.Sleep(ctx, wait.Wait()) != nil {
			return fmt.Errorf("topic %s exists, but Kafka did not show its partitions and configs within %v", spec.Name, TopicVisibleTimeout)
		}
	}
}

// ClusterID asks Kafka for its cluster id until it answers or ctx ends, telling failed
// attempts to failed, and returns the admin client that got the answer. It sends a
// DescribeCluster request for each attempt (the client's ClusterID waits for metadata without
// asking for it: a worker of a clean-clone CI run waited on it for minutes while the broker
// served every other worker), and after every third failed attempt it starts over with a new
// admin client from renew.
func ClusterID(ctx context.Context, admin *kafka.AdminClient, renew func() (*kafka.AdminClient, error), failed func(error)) (string, *kafka.AdminClient, error) {
	wait := retry.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
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
		if retry.Sleep(ctx, wait.Wait()) != nil {
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

// TopicVisibleTimeout bounds how long a worker waits for a topic someone else is creating.
const TopicVisibleTimeout = 30 * time.Second

// checkTopic checks an existing topic against spec; done is false while what Kafka says of it
// is incomplete (a topic being created).
func checkTopic(ctx context.Context, admin *kafka.AdminClient, spec TopicSpec) (done bool, err error) {
	md, err := admin.GetMetadata(&spec.Name, false, TimeoutMs(ctx, 10e9))
	if err != nil {
		return false, fmt.Errorf("describe topic %s: %w", spec.Name, err)
	}
	tm := md.Topics[spec.Name]
	n := len(tm.Partitions)
	if n == 0 || tm.Error.Code() != kafka.ErrNoError {
		return false, nil
	}
	if spec.ExactPartitions && n != spec.Partitions {
		return true, fmt.Errorf("topic %s has %d partitions; it must have exactly %d", spec.Name, n, spec.Partitions)
	}
	if spec.Compact {
		desc, err := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: spec.Name}})
		if err != nil {
			return false, fmt.Errorf("describe topic %s: %w", spec.Name, err)
		}
		if desc[0].Error.Code() != kafka.ErrNoError {
			return false, nil
		}
		policy, ok := desc[0].Config["cleanup.policy"]
		if !ok || policy.Value == "" {
			return false, nil
		}
		if !strings.Contains(policy.Value, "compact") {
			return true, fmt.Errorf("topic %s has cleanup.policy=%s; it must be compact, or configs, offsets and statuses would be deleted", spec.Name, policy.Value)
		}
	}
	return true, nil
}

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

// TimeoutMs is the milliseconds librdkafka may block for: max, or less when ctx ends sooner.
func TimeoutMs(ctx context.Context, max time.Duration) int {
	d := max
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl)
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return int(d / time.Millisecond)
}
