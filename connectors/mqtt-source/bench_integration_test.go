package mqttsource_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect/connecttest"
	"github.com/sluicehq/sluice/internal/sluicetest"
)

// The benchmark compares MQTT -> Kafka through the connector with a raw paho.golang subscriber
// that only receives, on the same broker in the same run, at QoS 0 and 1: both receive the
// same stream from the same publishers, and messages per second are measured from the first
// message counted to the last. Medians of five rounds. It is slow, so it runs only with
// SLUICE_BENCH=1.

const (
	benchPayload    = 100
	benchPublishers = 4
	benchRounds     = 5
)

// benchMessages is how many messages a round publishes: seconds' worth at either QoS, so the
// start and the end of a round weigh little.
func benchMessages(qos byte) int {
	if qos == 0 {
		return 300_000
	}
	return 100_000
}

func TestBenchmarkAgainstRawSubscriber(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") == "" {
		t.Skip("benchmark skipped: set SLUICE_BENCH=1 to run it")
	}
	server := connecttest.Env(t, connecttest.EnvMQTT)
	c := sluicetest.NewCluster(t)
	w := c.StartWorker(map[string]string{"offset.flush.interval.ms": "1000"})
	for _, qos := range benchQoS() {
		var sluice, raw []float64
		for round := range benchRounds {
			raw = append(raw, rawRound(t, server, qos))
			sluice = append(sluice, sluiceRound(t, c, w, server, qos, round))
		}
		s, r := median(sluice), median(raw)
		t.Logf("QoS %d: sluice %v, raw %v", qos, sluice, raw)
		t.Logf("QoS %d: sluice %.0f msg/s, raw paho subscriber %.0f msg/s, ratio %.2f", qos, s, r, s/r)
		fmt.Printf("BENCH mqtt_to_kafka_qos%d sluice=%.0f raw=%.0f ratio=%.2f\n", qos, s, r, s/r)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// rate counts until want messages arrived, or (QoS 0 may drop some) until a second passed
// without one after publishing ended, and returns messages per second from the first counted
// to the last, and how many arrived.
func rate(t *testing.T, want int, published <-chan error, count func() int) (float64, int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	var t0, tLast time.Time
	c0, last := 0, 0
	publishing := true
	for time.Now().Before(deadline) {
		n := count()
		now := time.Now()
		if n > 0 && t0.IsZero() {
			t0, c0 = now, n
		}
		if n != last {
			last, tLast = n, now
		}
		if publishing {
			select {
			case err := <-published:
				if err != nil {
					t.Fatal(err)
				}
				publishing = false
			default:
			}
		}
		if n >= want || !publishing && !tLast.IsZero() && now.Sub(tLast) > time.Second {
			return float64(last-c0) / tLast.Sub(t0).Seconds(), last
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out: %d of %d messages", count(), want)
	return 0, 0
}

// dialMQTT makes a paho.golang client on a plain TCP connection to server.
func dialMQTT(t testing.TB, server string, cfg paho.ClientConfig) *paho.Client {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = conn
	return paho.NewClient(cfg)
}

// publishAll publishes benchMessages(qos) payloads of benchPayload bytes from benchPublishers
// clients at once.
func publishAll(_ *testing.T, server, topic string, qos byte) error {
	payload := make([]byte, benchPayload)
	for i := range payload {
		payload[i] = 'x'
	}
	var wg sync.WaitGroup
	errs := make(chan error, benchPublishers)
	for p := range benchPublishers {
		u, err := url.Parse(server)
		if err != nil {
			return err
		}
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			return err
		}
		cl := paho.NewClient(paho.ClientConfig{Conn: conn})
		if _, err := cl.Connect(context.Background(), &paho.Connect{ClientID: sluicetest.UniqueName("benchpub"), KeepAlive: 30, CleanStart: true}); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = cl.Disconnect(&paho.Disconnect{}) }()
			// QoS 1 publishes wait for their PUBACK: several in flight per client.
			inflight := 1
			if qos > 0 {
				inflight = 32
			}
			var pw sync.WaitGroup
			per := benchMessages(qos) / benchPublishers / inflight
			for range inflight {
				pw.Add(1)
				go func() {
					defer pw.Done()
					for range per {
						if _, err := cl.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: qos, Payload: payload}); err != nil {
							errs <- fmt.Errorf("publisher %d: %w", p, err)
							return
						}
					}
				}()
			}
			pw.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sent is how many messages publishAll sends (benchMessages rounded down to whole shares).
func sent(qos byte) int {
	inflight := 1
	if qos > 0 {
		inflight = 32
	}
	return benchMessages(qos) / benchPublishers / inflight * inflight * benchPublishers
}

// rawRound receives the stream with a plain paho.golang subscriber that acknowledges as it
// receives (QoS 1), and does nothing else.
func rawRound(t *testing.T, server string, qos byte) float64 {
	topic := sluicetest.UniqueName("bench-raw")
	var got atomic.Int64
	cl := dialMQTT(t, server, paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(paho.PublishReceived) (bool, error) { got.Add(1); return true, nil }}})
	rm := uint16(1000)
	if _, err := cl.Connect(context.Background(), &paho.Connect{ClientID: sluicetest.UniqueName("benchraw"), KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Disconnect(&paho.Disconnect{}) }()
	if _, err := cl.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic + "/#", QoS: qos}}}); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- publishAll(t, server, topic+"/d", qos) }()
	r, n := rate(t, sent(qos), published, func() int { return int(got.Load()) })
	t.Logf("raw QoS %d: %d of %d messages at %.0f/s", qos, n, sent(qos), r)
	return r
}

// sluiceRound runs the connector (one task, payloads as bytes, ByteArrayConverter) and counts
// the records Kafka acknowledged.
func sluiceRound(t *testing.T, c *sluicetest.Cluster, w *sluicetest.Worker, server string, qos byte, round int) float64 {
	base := sluicetest.UniqueName("bench")
	name := fmt.Sprintf("bench-q%d-%d", qos, round)
	cfg := mqttConfig(base+"/#", base, map[string]string{"mqtt.server.uris": server, "mqtt.qos": fmt.Sprint(qos),
		"topic.creation.default.partitions": "1", "mqtt.session.expiry": "0"})
	sluicetest.CreateConnector(t, w.URL, name, cfg)
	waitSubscribed(t, c.Logs, clientID(base+"/#", name, 0))
	published := make(chan error, 1)
	go func() { published <- publishAll(t, server, base+"/d", qos) }()
	r, n := rate(t, sent(qos), published, func() int { return int(written(t, w, name)) })
	t.Logf("sluice QoS %d: %d of %d messages at %.0f/s", qos, n, sent(qos), r)
	if qos > 0 && n < sent(qos) {
		t.Errorf("QoS %d lost messages: %d of %d", qos, n, sent(qos))
	}
	sluicetest.Call(t, "DELETE", w.URL+"/connectors/"+name, nil, nil)
	return r
}

// written reads the worker's count of records Kafka acknowledged for a connector.
func written(t *testing.T, w *sluicetest.Worker, connector string) float64 {
	mfs, err := w.W.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "sluice_source_records_written_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" && l.GetValue() == connector {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// benchQoS is the QoS levels to measure: SLUICE_BENCH_QOS=0 or 1 picks one.
func benchQoS() []byte {
	switch os.Getenv("SLUICE_BENCH_QOS") {
	case "0":
		return []byte{0}
	case "1":
		return []byte{1}
	}
	return []byte{0, 1}
}
