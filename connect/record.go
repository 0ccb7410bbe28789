package connect

import (
	"encoding/json"
	"fmt"
	"time"
)

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one message moving between Kafka and the outside world.
//
// Key and Value hold the data. For a sink they arrive already converted by the connector's
// key and value converters: nil (a tombstone), []byte, string, bool, int64, float64,
// map[string]any and []any (what JSON decodes to; integers as int64), with a Schema when the
// converter carries one. A source task may set any of those types; the converter serializes
// them for Kafka.
type Record struct {
	// Topic is the Kafka topic the record was read from (sinks) or is written to (sources).
	Topic string
	Key   any
	Value any
	// KeySchema and ValueSchema describe Key and Value when the data carries a schema; nil
	// means schemaless.
	KeySchema   *Schema
	ValueSchema *Schema
	Headers     []Header
	// Time is the Kafka record timestamp. A zero Time on a source record means "now".
	Time time.Time

	// SourcePartition and SourceOffset say where a source record came from, so a task can
	// resume after a restart: the runtime stores the latest acknowledged offset per partition
	// and hands it back through SourceTaskContext.Offset. An offset is stored only once Kafka
	// acknowledged its record and every earlier record of the same partition. A record with a
	// partition but no offset is ordered like the others and moves the stored offset nowhere,
	// so a task may give the offset only to the last record of each partition in a batch.
	// Records without a partition are not tracked. A task may hand the same partition map with
	// every record of that partition (the runtime recognises it and skips encoding it again),
	// but must not change a map once it was handed over: make a new one instead.
	SourcePartition map[string]any
	SourceOffset    map[string]any

	// AckHandle is the source task's own: what it needs to acknowledge the record upstream
	// (an MQTT delivery, say). The runtime never reads it, keeps no offset for it, and hands
	// the record back with it to SourceAcker.Acknowledged.
	AckHandle any

	// KafkaPartition and KafkaOffset say where a sink record was read from. Source records
	// leave them unset and are partitioned as Kafka's Java producer does: by the murmur2 hash
	// of the key, and without a key, one partition for 16 KB of records, then another.
	KafkaPartition int32
	KafkaOffset    int64
}

// Header returns the value of the last header with the given key, and whether there was one.
func (r *Record) Header(key string) ([]byte, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// Position names a sink record's place in Kafka for messages: "topic/partition@offset".
func (r *Record) Position() string {
	return fmt.Sprintf("%s/%d@%d", r.Topic, r.KafkaPartition, r.KafkaOffset)
}

// TopicPartition is one partition of a Kafka topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// Offsets maps partitions to the offset of the next record to read from each, which is what
// Kafka stores as a committed offset.
type Offsets map[TopicPartition]int64

// SchemaType is the type of a Schema, with Kafka Connect's names.
type SchemaType string

// The schema types of Kafka Connect's data API.
const (
	Int8    SchemaType = "int8"
	Int16   SchemaType = "int16"
	Int32   SchemaType = "int32"
	Int64   SchemaType = "int64"
	Float32 SchemaType = "float"
	Float64 SchemaType = "double"
	Boolean SchemaType = "boolean"
	String  SchemaType = "string"
	Bytes   SchemaType = "bytes"
	Array   SchemaType = "array"
	Map     SchemaType = "map"
	Struct  SchemaType = "struct"
)

// Schema describes structured data the way Kafka Connect's JSON converter envelope does.
// Struct values are map[string]any keyed by field name.
type Schema struct {
	Type       SchemaType        `json:"type"`
	Optional   bool              `json:"optional"`
	Name       string            `json:"name,omitempty"`
	Version    int               `json:"version,omitempty"`
	Doc        string            `json:"doc,omitempty"`
	Default    any               `json:"default,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
	// Fields of a struct, in order.
	Fields []Field `json:"fields,omitempty"`
	// Items of an array.
	Items *Schema `json:"items,omitempty"`
	// Keys and Values of a map.
	Keys   *Schema `json:"keys,omitempty"`
	Values *Schema `json:"values,omitempty"`
}

// Field is one field of a struct Schema.
type Field struct {
	Name   string
	Schema *Schema
}

// Field returns the struct field with the given name, or nil.
func (s *Schema) Field(name string) *Field {
	if s == nil {
		return nil
	}
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// MarshalJSON writes a field as Kafka Connect's JSON converter does: the field's schema with
// a "field" member naming it.
func (f Field) MarshalJSON() ([]byte, error) {
	type plain Schema
	var s plain
	if f.Schema != nil {
		s = plain(*f.Schema)
	}
	return json.Marshal(struct {
		plain
		Field string `json:"field"`
	}{s, f.Name})
}

// UnmarshalJSON reads a field in Kafka Connect's JSON converter form.
func (f *Field) UnmarshalJSON(b []byte) error {
	type plain Schema
	var v struct {
		plain
		Field string `json:"field"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s := Schema(v.plain)
	f.Name, f.Schema = v.Field, &s
	return nil
}
