package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/kafkaclient"
)

// Offsets keeps source connectors' offsets in the offsets topic with Kafka Connect's
// format: the key is the JSON array ["<connector>", {<source partition>}], the value the JSON
// source offset, and a tombstone resets a partition.
type Offsets struct {
	Log    *Log
	logger *slog.Logger

	mu      sync.Mutex
	offsets map[string]map[string]sourceOffset // connector -> canonical partition JSON -> offset
}

type sourceOffset struct {
	partition map[string]any
	offset    map[string]any
}

func NewOffsets(clients *kafkaclient.Factory, topic string, logger *slog.Logger) (*Offsets, error) {
	s := &Offsets{logger: logger, offsets: map[string]map[string]sourceOffset{}}
	l, err := NewLog(topic, clients, logger, s.apply, nil)
	if err != nil {
		return nil, err
	}
	s.Log = l
	return s, nil
}

func offsetKey(connector string, partition map[string]any) ([]byte, string, error) {
	p, err := json.Marshal(partition) // map keys sorted: one canonical form
	if err != nil {
		return nil, "", fmt.Errorf("source partition %v is not JSON: %w", partition, err)
	}
	k, err := json.Marshal([]any{connector, json.RawMessage(p)})
	return k, string(p), err
}

func (s *Offsets) apply(m *kafka.Message) {
	var key []json.RawMessage
	if err := json.Unmarshal(m.Key, &key); err != nil || len(key) != 2 {
		s.logger.Warn("ignoring offset record with a key that is not [connector, partition]", "key", string(m.Key))
		return
	}
	var connector string
	var partition map[string]any
	if json.Unmarshal(key[0], &connector) != nil || json.Unmarshal(key[1], &partition) != nil {
		s.logger.Warn("ignoring malformed offset record key", "key", string(m.Key))
		return
	}
	_, canon, _ := offsetKey(connector, partition)
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Value == nil {
		delete(s.offsets[connector], canon)
		return
	}
	var offset map[string]any
	if err := json.Unmarshal(m.Value, &offset); err != nil {
		s.logger.Warn("ignoring malformed offset record value", "key", string(m.Key), "err", err)
		return
	}
	if s.offsets[connector] == nil {
		s.offsets[connector] = map[string]sourceOffset{}
	}
	s.offsets[connector][canon] = sourceOffset{partition, offset}
}

// Get returns the stored offset of a source partition, or nil.
func (s *Offsets) Get(connector string, partition map[string]any) (map[string]any, error) {
	_, canon, err := offsetKey(connector, partition)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[connector][canon].offset, nil
}

// All returns every stored offset of a connector.
func (s *Offsets) All(connector string) []api.ConnectorOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.ConnectorOffset, 0, len(s.offsets[connector]))
	for _, o := range s.offsets[connector] {
		out = append(out, api.ConnectorOffset{Partition: o.partition, Offset: o.offset})
	}
	return out
}

// Put writes offsets (a nil offset resets its partition) and waits until Kafka has them all.
// They become visible to get once the store has read them back.
func (s *Offsets) Put(ctx context.Context, connector string, offsets []api.ConnectorOffset) error {
	errs := make(chan error, len(offsets))
	for _, o := range offsets {
		key, _, err := offsetKey(connector, o.Partition)
		if err != nil {
			return err
		}
		var value []byte
		if o.Offset != nil {
			if value, err = json.Marshal(o.Offset); err != nil {
				return fmt.Errorf("source offset %v is not JSON: %w", o.Offset, err)
			}
		}
		s.Log.sendAsync(key, value, func(err error) { errs <- err })
	}
	for range offsets {
		select {
		case err := <-errs:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("storing offsets of %s: %w", connector, ctx.Err())
		}
	}
	return nil
}

// ReadToEnd makes the offsets written before the call visible to get; a source task's start
// calls it, so a task restarted on the same worker resumes from its latest offsets.
func (s *Offsets) ReadToEnd(ctx context.Context) error { return s.Log.ReadToEnd(ctx) }
