package smoke

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sluicehq/sluice/connect/connecttest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func TestKafkaProduceConsumeAndCompactedTopic(t *testing.T) {
	bootstrap := connecttest.Env(t, connecttest.EnvKafka)
	ctx := ctxT(t, time.Minute)

	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := unique("smoke-compacted")
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		Config: map[string]string{"cleanup.policy": "compact"},
	}})
	if err != nil || res[0].Error.Code() != kafka.ErrNoError {
		t.Fatalf("create compacted topic: %v %v", err, res)
	}
	// A topic just created may not show its configs yet (seen in a CI run: an empty answer
	// 30 ms after CreateTopics returned): ask again for a while.
	var got string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		desc, err := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
		if err == nil && len(desc) == 1 {
			got = desc[0].Config["cleanup.policy"].Value
		}
		if got == "compact" || time.Now().After(deadline) {
			break
		}
	}
	if got != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", got)
	}

	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.idempotence": true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan kafka.Event, 1)
	err = p.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            []byte("k"), Value: []byte("hello"),
	}, done)
	if err != nil {
		t.Fatal(err)
	}
	if m := (<-done).(*kafka.Message); m.TopicPartition.Error != nil {
		t.Fatalf("delivery: %v", m.TopicPartition.Error)
	}

	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": bootstrap, "group.id": unique("smoke"), "auto.offset.reset": "earliest",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			continue
		}
		if string(m.Key) != "k" || string(m.Value) != "hello" {
			t.Fatalf("read %q=%q, want k=hello", m.Key, m.Value)
		}
		return
	}
	t.Fatal("no record read back within a minute")
}

func TestPostgresRoundTrip(t *testing.T) {
	dsn := connecttest.Env(t, connecttest.EnvPostgres)
	ctx := ctxT(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := strings.ReplaceAll(unique("smoke"), "-", "_")
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP TABLE "+table) })
	if _, err := conn.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", 7, "seven"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = $1", 7).Scan(&v); err != nil || v != "seven" {
		t.Fatalf("read back %q, %v; want seven", v, err)
	}
}

// mqttClient connects an MQTT v5 client to a tcp:// or ssl:// URL.
func mqttClient(ctx context.Context, rawURL string, tlsConf *tls.Config, onMsg func(*paho.Publish)) (*paho.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	if u.Scheme == "ssl" || u.Scheme == "tls" {
		conn, err = (&tls.Dialer{Config: tlsConf}).DialContext(ctx, "tcp", u.Host)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		// Mosquitto is shared with the other packages' tests, which may keep it busy for a
		// while (a TLS handshake and CONNECT took over paho's default 10 s in a CI run).
		PacketTimeout: 30 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}},
	})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: unique("smoke"), KeepAlive: 30, CleanStart: true})
	if err != nil {
		return nil, err
	}
	if ca.ReasonCode != 0 {
		return nil, fmt.Errorf("connack reason %d", ca.ReasonCode)
	}
	return c, nil
}

// mqttRoundTrip subscribes, publishes a message and receives it back. Mosquitto 2.0.11 now
// and then drops a fresh TLS connection as "malformed packet" right after accepting its
// CONNECT, or leaves a SUBSCRIBE unanswered while the other packages' tests keep it busy
// (both seen in CI runs); a client reconnects, and so does this one, up to three times.
func mqttRoundTrip(t *testing.T, rawURL string, tlsConf *tls.Config) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = mqttRoundTripOnce(t, rawURL, tlsConf); err == nil {
			return
		}
		t.Logf("%s, attempt %d: %v", rawURL, attempt, err)
	}
	t.Fatalf("%s: %v", rawURL, err)
}

func mqttRoundTripOnce(t *testing.T, rawURL string, tlsConf *tls.Config) error {
	ctx := ctxT(t, 30*time.Second)
	got := make(chan string, 1)
	c, err := mqttClient(ctx, rawURL, tlsConf, func(p *paho.Publish) {
		select {
		case got <- string(p.Payload):
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
	topic := "smoke/" + unique("t")
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("reading")}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case v := <-got:
		if v != "reading" {
			t.Fatalf("got %q, want reading", v)
		}
		return nil
	case <-ctx.Done():
		return errors.New("message not received")
	}
}

func TestMQTTv5Plain(t *testing.T) {
	mqttRoundTrip(t, connecttest.Env(t, connecttest.EnvMQTT), nil)
}

func TestMQTTv5MutualTLS(t *testing.T) {
	env := connecttest.Envs(t, connecttest.EnvMQTTTLS, connecttest.EnvMQTTTLSCA, connecttest.EnvMQTTTLSCert, connecttest.EnvMQTTTLSKey)
	caPEM, err := os.ReadFile(env[1])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in " + env[1])
	}
	cert, err := tls.LoadX509KeyPair(env[2], env[3])
	if err != nil {
		t.Fatal(err)
	}
	t.Run("with client certificate", func(t *testing.T) {
		mqttRoundTrip(t, env[0], &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	})
	t.Run("refused without client certificate", func(t *testing.T) {
		ctx := ctxT(t, 10*time.Second)
		c, err := mqttClient(ctx, env[0], &tls.Config{RootCAs: pool}, func(*paho.Publish) {})
		if err == nil {
			_ = c.Disconnect(&paho.Disconnect{})
			t.Fatal("connected without a client certificate; the TLS listener must require one")
		}
	})
}

func TestMongoDBInsertFind(t *testing.T) {
	uri := connecttest.Env(t, connecttest.EnvMongoDB)
	ctx := ctxT(t, 30*time.Second)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database("smoke").Collection(unique("c"))
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "dev-1"}, {Key: "temperature", Value: 21.5}}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ID          string  `bson:"_id"`
		Temperature float64 `bson:"temperature"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "dev-1"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Temperature != 21.5 {
		t.Fatalf("temperature %v, want 21.5", doc.Temperature)
	}
}

func TestPrometheusQuery(t *testing.T) {
	addr := connecttest.Env(t, connecttest.EnvPrometheus)
	ctx := ctxT(t, 30*time.Second)
	client, err := promapi.NewClient(promapi.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(client)
	// The query is evaluated by the server, so a right answer proves its API and engine work.
	for ctx.Err() == nil {
		v, _, _, err := api.Query(ctx, "vector(1) + 41", time.Now())
		if err == nil && strings.Contains(v.String(), "42") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("Prometheus did not answer a query")
}

// TestPostgresDatabases: the test database has the timescaledb extension and makes
// hypertables; the plain one has no extension.
func TestPostgresDatabases(t *testing.T) {
	for _, tc := range []struct {
		env, want string
	}{{connecttest.EnvPostgres, "2.28.3"}, {connecttest.EnvPostgresPlain, "none"}} {
		t.Run(tc.env, func(t *testing.T) {
			dsn := connecttest.Env(t, tc.env)
			ctx := ctxT(t, 30*time.Second)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var version string
			if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), 'none')").Scan(&version); err != nil || version != tc.want {
				t.Fatalf("timescaledb extension %q (%v), want %q", version, err, tc.want)
			}
			if version == "none" {
				return
			}
			table := strings.ReplaceAll(unique("smoke_ht"), "-", "_")
			if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (time timestamptz NOT NULL, v double precision)"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP TABLE "+table) })
			if _, err := conn.Exec(ctx, "SELECT create_hypertable($1, 'time')", table); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "INSERT INTO "+table+" VALUES (now(), 1.5)"); err != nil {
				t.Fatal(err)
			}
			var chunks int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM show_chunks($1::regclass)", table).Scan(&chunks); err != nil || chunks != 1 {
				t.Fatalf("%d chunks (%v), want 1", chunks, err)
			}
		})
	}
}
