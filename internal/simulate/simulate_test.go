package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sluicehq/sluice/connect/connecttest"
)

// subscribe collects every message published under prefix on the broker.
func subscribe(t *testing.T, broker, filter string) func() map[string][]byte {
	t.Helper()
	u, _ := url.Parse(broker)
	var mu sync.Mutex
	got := map[string][]byte{}
	n := 0
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err == nil {
				close(ready)
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("simtest-%d", time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
				mu.Lock()
				n++
				got[fmt.Sprintf("%d %s", n, p.Packet.Payload)] = p.Packet.Payload
				mu.Unlock()
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("no subscription")
	}
	t.Cleanup(func() { _ = cm.Disconnect(context.Background()) })
	return func() map[string][]byte {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]byte{}
		for k, v := range got {
			out[k] = v
		}
		return out
	}
}

func TestSimulatorPublishesWhatItReports(t *testing.T) {
	broker := connecttest.Env(t, connecttest.EnvMQTT)
	prefix := fmt.Sprintf("simtest-%d", time.Now().UnixNano())
	received := subscribe(t, broker, prefix+"/#")
	var mu sync.Mutex
	var sent []Sent
	sum, err := Run(context.Background(), Config{Broker: broker, Topic: prefix + "/{place}/{device}", Devices: 7, Places: 3,
		Rate: 5000, QoS: 1, Count: 400, OutOfOrderRate: 0.1, LateRate: 0.05, DuplicateRate: 0.05, MalformedRate: 0.05, Seed: 42,
		OnSent: func(s Sent) { mu.Lock(); sent = append(sent, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	if sum.Sent != 400 || len(sent) != 400 || sum.Errors != 0 {
		t.Fatalf("summary %v with %d reported, want 400 sent without errors", sum, len(sent))
	}
	for _, k := range []string{KindNormal, KindOutOfOrder, KindLate, KindDuplicate, KindMalformed} {
		if sum.ByKind[k] == 0 {
			t.Errorf("no %s frames among 400 at the rates given: %v", k, sum.ByKind)
		}
	}
	// Every payload arrives; frames decode to what was reported.
	deadline := time.Now().Add(20 * time.Second)
	for len(received()) < 400 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, p := range received() {
		counts[string(p)]++
	}
	for _, s := range sent {
		if counts[string(s.Payload)] == 0 {
			t.Fatalf("%s frame %s never arrived", s.Kind, s.Payload)
		}
		counts[string(s.Payload)]--
		if s.Kind == KindMalformed {
			continue
		}
		var f Frame
		if err := json.Unmarshal(s.Payload, &f); err != nil || f.FrameID != s.Frame.FrameID || f.DeviceID == "" || f.Time.IsZero() {
			t.Fatalf("frame %s does not decode to what was reported: %v", s.Payload, err)
		}
	}
	// A device's plain frames move forward in time; late ones are LateBy behind.
	for _, s := range sent {
		if s.Kind == KindLate && time.Since(s.Frame.Time) < 9*time.Minute {
			t.Errorf("late frame %s only %v old", s.Frame.FrameID, time.Since(s.Frame.Time))
		}
	}
}

func TestSimulatorRefusesBadSettings(t *testing.T) {
	for _, cfg := range []Config{{}, {Broker: "tcp://x:1", QoS: 3}, {Broker: "tcp://x:1", LateRate: 2}} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
