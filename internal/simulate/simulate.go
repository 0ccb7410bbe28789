// Package simulate is a fleet of simulated IoT sensors publishing JSON frames over MQTT v5:
// plausible random walks per device, at a given rate and QoS, with optional out-of-order, late,
// duplicate and malformed frames at given rates. `sluice simulate` and `sluice dev` run it; the
// end-to-end tests use what it reports to check the pipeline.
package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Config says what to simulate.
type Config struct {
	Broker   string // MQTT server URL, e.g. tcp://127.0.0.1:1883
	ClientID string
	Username string
	Password string
	// Topic is the MQTT topic of each frame; {place} and {device} are replaced.
	Topic   string
	Devices int
	Places  int
	Rate    float64 // frames per second, over all devices
	QoS     byte
	// Count stops after this many frames (0: until ctx is done).
	Count int
	// Rates of frames out of the ordinary, each from 0 to 1.
	OutOfOrderRate float64 // event time a few seconds earlier than the previous frame's
	LateRate       float64 // event time LateBy in the past
	DuplicateRate  float64 // the previous frame of a device sent again, same frame id
	MalformedRate  float64 // a payload that is not a valid frame
	LateBy         time.Duration
	Seed           uint64
	// OnSent, when set, is called for every frame published (and acknowledged at QoS > 0).
	OnSent func(Sent)
}

// Frame is one sensor reading as published.
type Frame struct {
	FrameID     string    `json:"frame_id"`
	DeviceID    string    `json:"device_id"`
	PlaceID     string    `json:"place_id"`
	Time        time.Time `json:"ts"`
	SentAt      int64     `json:"sent_at_ms"` // publish time, for latency measurements
	Temperature float64   `json:"temperature"`
	Humidity    float64   `json:"humidity"`
	Pressure    float64   `json:"pressure"`
	Luminosity  float64   `json:"luminosity"`
	Battery     float64   `json:"battery"`
}

// Kinds of frames sent.
const (
	KindNormal     = "normal"
	KindOutOfOrder = "out_of_order"
	KindLate       = "late"
	KindDuplicate  = "duplicate"
	KindMalformed  = "malformed"
)

// Sent is one published message: the frame (zero for a malformed one) and its payload.
type Sent struct {
	Kind    string
	Topic   string
	Frame   Frame
	Payload []byte
	// NoSubscribers is set when the broker acknowledged the message saying no subscription
	// matched it (MQTT v5 reason code 0x10): the broker kept it for nobody.
	NoSubscribers bool
}

// Summary counts what was sent.
type Summary struct {
	Sent     int            `json:"sent"`
	ByKind   map[string]int `json:"by_kind"`
	Devices  int            `json:"devices"`
	Duration time.Duration  `json:"-"`
	Seconds  float64        `json:"seconds"`
	Errors   int            `json:"publish_errors"`
	// NoSubscribers counts the QoS 1 and 2 messages the broker acknowledged saying no
	// subscription matched them.
	NoSubscribers int `json:"no_matching_subscribers"`
}

func (s Summary) String() string {
	var kinds []string
	for _, k := range []string{KindNormal, KindOutOfOrder, KindLate, KindDuplicate, KindMalformed} {
		if s.ByKind[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", "-"), s.ByKind[k]))
		}
	}
	return fmt.Sprintf("sent %d frames from %d devices in %v (%s); %d publish errors; %d with no matching subscriber",
		s.Sent, s.Devices, s.Duration.Round(time.Millisecond), strings.Join(kinds, ", "), s.Errors, s.NoSubscribers)
}

// device is one sensor's state: a random walk of each reading.
type device struct {
	id, place string
	seq       int
	last      *Frame
	temp      float64
	hum       float64
	press     float64
	lux       float64
	battery   float64
}

func (c *Config) defaults() error {
	if c.Broker == "" {
		return errors.New("simulate: no MQTT broker URL")
	}
	if c.Topic == "" {
		c.Topic = "sensors/{place}/{device}"
	}
	if c.Devices <= 0 {
		c.Devices = 10
	}
	if c.Places <= 0 {
		c.Places = 3
	}
	if c.Rate <= 0 {
		c.Rate = 10
	}
	if c.QoS > 2 {
		return fmt.Errorf("simulate: qos %d is not 0, 1 or 2", c.QoS)
	}
	if c.LateBy <= 0 {
		c.LateBy = 10 * time.Minute
	}
	if c.ClientID == "" {
		c.ClientID = fmt.Sprintf("sluice-simulator-%d", time.Now().UnixNano()%1e9)
	}
	for name, r := range map[string]float64{"out-of-order": c.OutOfOrderRate, "late": c.LateRate, "duplicate": c.DuplicateRate, "malformed": c.MalformedRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("simulate: %s rate %v is not between 0 and 1", name, r)
		}
	}
	return nil
}

// Run publishes frames until Count is reached or ctx is done, and says what it sent.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.defaults(); err != nil {
		return Summary{}, err
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return Summary{}, fmt.Errorf("simulate: broker URL %q: %w", cfg.Broker, err)
	}
	connected := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ConnectUsername: cfg.Username, ConnectPassword: []byte(cfg.Password),
		ReconnectBackoff: autopaho.NewConstantBackoff(time.Second),
		OnConnectionUp:   func(*autopaho.ConnectionManager, *paho.Connack) { once.Do(func() { close(connected) }) },
		ClientConfig:     paho.ClientConfig{ClientID: cfg.ClientID},
	})
	if err != nil {
		return Summary{}, fmt.Errorf("simulate: connect to %s: %w", cfg.Broker, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cm.Disconnect(dctx)
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		return Summary{}, fmt.Errorf("simulate: no connection to %s: %w", cfg.Broker, ctx.Err())
	case <-time.After(30 * time.Second):
		return Summary{}, fmt.Errorf("simulate: no connection to %s within 30 s", cfg.Broker)
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	devices := make([]*device, cfg.Devices)
	for i := range devices {
		devices[i] = &device{id: fmt.Sprintf("dev-%04d", i), place: fmt.Sprintf("place-%02d", i%cfg.Places),
			temp: 18 + rng.Float64()*6, hum: 40 + rng.Float64()*20, press: 1005 + rng.Float64()*15,
			lux: 200 + rng.Float64()*400, battery: 80 + rng.Float64()*20}
	}
	sum := Summary{ByKind: map[string]int{}, Devices: cfg.Devices}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	next := start
	for i := 0; cfg.Count == 0 || i < cfg.Count; i++ {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				sum.Duration = time.Since(start)
				sum.Seconds = sum.Duration.Seconds()
				return sum, nil
			case <-time.After(d):
			}
		} else if ctx.Err() != nil {
			break
		}
		next = next.Add(interval)
		s := devices[i%len(devices)].next(rng, &cfg)
		s.Topic = strings.NewReplacer("{place}", devices[i%len(devices)].place, "{device}", devices[i%len(devices)].id).Replace(cfg.Topic)
		resp, err := cm.Publish(ctx, &paho.Publish{QoS: cfg.QoS, Topic: s.Topic, Payload: s.Payload,
			Properties: &paho.PublishProperties{ContentType: "application/json"}})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			sum.Errors++
			continue
		}
		if resp != nil && resp.ReasonCode == noMatchingSubscribers {
			s.NoSubscribers = true
			sum.NoSubscribers++
		}
		sum.Sent++
		sum.ByKind[s.Kind]++
		if cfg.OnSent != nil {
			cfg.OnSent(s)
		}
	}
	sum.Duration = time.Since(start)
	sum.Seconds = sum.Duration.Seconds()
	return sum, nil
}

// noMatchingSubscribers is the MQTT v5 PUBACK/PUBREC reason code for a message no
// subscription matched.
const noMatchingSubscribers = 0x10

// next is the device's next message: usually a new reading, sometimes an odd one.
func (d *device) next(rng *rand.Rand, cfg *Config) Sent {
	now := time.Now().UTC()
	roll := rng.Float64()
	switch {
	case roll < cfg.MalformedRate:
		bad := [][]byte{
			[]byte(`{"device_id": "` + d.id + `", "temperature": `), // cut short
			[]byte(`not json at all`),
			[]byte(`{"device_id": "` + d.id + `", "place_id": "` + d.place + `", "temperature": "warm"}`), // no time, text value
		}
		return Sent{Kind: KindMalformed, Payload: bad[rng.IntN(len(bad))]}
	case roll < cfg.MalformedRate+cfg.DuplicateRate && d.last != nil:
		f := *d.last
		f.SentAt = now.UnixMilli()
		return d.sent(KindDuplicate, f)
	}
	d.seq++
	d.temp = walk(rng, d.temp, 0.2, -20, 50)
	d.hum = walk(rng, d.hum, 0.5, 0, 100)
	d.press = walk(rng, d.press, 0.3, 950, 1050)
	d.lux = walk(rng, d.lux, 15, 0, 2000)
	d.battery = max(0, d.battery-rng.Float64()*0.01)
	f := Frame{FrameID: fmt.Sprintf("%s-%08d", d.id, d.seq), DeviceID: d.id, PlaceID: d.place, Time: now, SentAt: now.UnixMilli(),
		Temperature: round2(d.temp), Humidity: round2(d.hum), Pressure: round2(d.press), Luminosity: round2(d.lux), Battery: round2(d.battery)}
	kind := KindNormal
	roll = rng.Float64()
	switch {
	case roll < cfg.LateRate:
		f.Time, kind = now.Add(-cfg.LateBy), KindLate
	case roll < cfg.LateRate+cfg.OutOfOrderRate:
		f.Time, kind = now.Add(-time.Duration(1+rng.IntN(5))*time.Second), KindOutOfOrder
	}
	d.last = &f
	return d.sent(kind, f)
}

func (d *device) sent(kind string, f Frame) Sent {
	b, _ := json.Marshal(f)
	return Sent{Kind: kind, Frame: f, Payload: b}
}

func walk(rng *rand.Rand, v, step, lo, hi float64) float64 {
	return math.Min(hi, math.Max(lo, v+(rng.Float64()*2-1)*step))
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
