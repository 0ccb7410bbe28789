package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/internal/simulate"
)

// simulateFlags declares the simulator's flags on fs; after fs.Parse, the returned function
// gives the config they describe.
func simulateFlags(fs *flag.FlagSet) func() (simulate.Config, error) {
	cfg := &simulate.Config{}
	fs.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "MQTT server URL (tcp://, ssl://, ws://)")
	fs.StringVar(&cfg.Topic, "topic", "sensors/{place}/{device}", "MQTT topic of each frame; {place} and {device} are replaced")
	fs.IntVar(&cfg.Devices, "devices", 10, "simulated sensors")
	fs.IntVar(&cfg.Places, "places", 3, "places the sensors are spread over")
	fs.Float64Var(&cfg.Rate, "rate", 10, "frames per second over all sensors")
	qos := fs.Uint("qos", 1, "MQTT QoS: 0, 1 or 2")
	fs.IntVar(&cfg.Count, "count", 0, "frames to send, then stop (0: until interrupted)")
	fs.Float64Var(&cfg.OutOfOrderRate, "out-of-order", 0, "share of frames with an event time a few seconds back (0..1)")
	fs.Float64Var(&cfg.LateRate, "late", 0, "share of frames with an event time --late-by back (0..1)")
	fs.DurationVar(&cfg.LateBy, "late-by", 10*time.Minute, "how far back late frames are")
	fs.Float64Var(&cfg.DuplicateRate, "duplicates", 0, "share of frames that repeat the previous one (0..1)")
	fs.Float64Var(&cfg.MalformedRate, "malformed", 0, "share of payloads that are not valid frames (0..1)")
	fs.StringVar(&cfg.Username, "username", "", "MQTT user name")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "random seed, for a repeatable fleet")
	return func() (simulate.Config, error) {
		if *qos > 2 {
			return *cfg, fmt.Errorf("--qos %d is not 0, 1 or 2", *qos)
		}
		cfg.QoS = byte(*qos)
		return *cfg, nil
	}
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := simulateFlags(fs)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	sum, err := simulate.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(sum)
	}
	fmt.Fprintln(stdout, sum)
	return nil
}
