package datagen

import (
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/connect"
)

// generator builds a task's records: the sequence of each of its source partitions, taken in
// turn.
type generator struct {
	topic      string
	task       int64
	format     string
	padTo      int
	partitions []map[string]any // shared by the records of a partition; never modified
	keys       []any            // the key strings, boxed once
	next       []int64          // per partition, the sequence number of its next record
	last       []int            // per partition, its last record in the batch being filled
	cursor     int              // the partition of the next record
	padding    string           // padTo 'x's, sliced for each record
	zeros      string           // padTo '0's, for the string format
}

func newGenerator(cfg Config, task int64) *generator {
	g := &generator{
		topic:      cfg.Topic,
		task:       task,
		format:     cfg.Format,
		padTo:      cfg.PayloadBytes,
		partitions: make([]map[string]any, cfg.Partitions),
		keys:       make([]any, cfg.Partitions),
		next:       make([]int64, cfg.Partitions),
		last:       make([]int, cfg.Partitions),
		padding:    strings.Repeat("x", cfg.PayloadBytes),
		zeros:      strings.Repeat("0", cfg.PayloadBytes),
	}
	for p := range g.partitions {
		g.partitions[p] = sourcePartition(task, int64(p))
		g.keys[p] = strconv.FormatInt(task, 10) + "-" + strconv.Itoa(p)
	}
	return g
}

// sourcePartition is the source partition of one sequence of a task.
func sourcePartition(task, partition int64) map[string]any {
	return map[string]any{"task": task, "partition": partition}
}

// resume sets where each partition's sequence continues, and starts the round-robin at the
// partition that is furthest behind.
func (g *generator) resume(next []int64) {
	copy(g.next, next)
	g.cursor = 0
	for p, n := range g.next {
		if n < g.next[g.cursor] {
			g.cursor = p
		}
	}
}

// generated is how many records the task has generated in all, as far as the offsets it
// resumed from tell.
func (g *generator) generated() int64 {
	var sum int64
	for _, n := range g.next {
		sum += n
	}
	return sum
}

// fill sets records to the next len(records) records of the round-robin and advances it. Only
// the last record of each partition in the batch carries the partition's offset: the runtime
// stores an offset once every earlier record of its partition is in Kafka, so the earlier ones
// need none, and a batch allocates one offset per partition instead of one per record. In the
// string format the values are slices of one string for the whole batch.
func (g *generator) fill(records []connect.Record, now time.Time) {
	for p := range g.last {
		g.last[p] = -1
	}
	var text []byte
	var ends []int
	if g.format == FormatString {
		text, ends = make([]byte, 0, len(records)*max(g.padTo, 8)), make([]int, len(records))
	}
	for i := range records {
		p := g.cursor
		seq := g.next[p]
		g.next[p]++
		g.cursor = (p + 1) % len(g.next)
		g.last[p] = i
		records[i] = connect.Record{Topic: g.topic, Key: g.keys[p], Time: now, SourcePartition: g.partitions[p]}
		if text != nil {
			text = g.appendText(text, seq)
			ends[i] = len(text)
		} else {
			records[i].Value = g.jsonValue(int64(p), seq)
		}
	}
	for p, i := range g.last {
		if i >= 0 {
			records[i].SourceOffset = map[string]any{"seq": g.next[p] - 1}
		}
	}
	if text != nil {
		all, start := string(text), 0
		for i := range records {
			records[i].Value = all[start:ends[i]]
			start = ends[i]
		}
	}
}

// appendText appends seq as decimal text, padded with leading zeros to padTo bytes.
func (g *generator) appendText(b []byte, seq int64) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], seq, 10)
	if pad := g.padTo - len(d); pad > 0 {
		b = append(b, g.zeros[:pad]...)
	}
	return append(b, d...)
}

// jsonOverhead is the length of {"partition":,"payload":"","seq":,"task":} without the numbers:
// the JSON converter writes a map with its keys sorted.
const jsonOverhead = len(`{"partition":,"payload":"","seq":,"task":}`)

// jsonValue is the json-format value of seq in partition p, padded to about padTo bytes.
func (g *generator) jsonValue(p, seq int64) any {
	pad := g.padTo - jsonOverhead - digits(p) - digits(seq) - digits(g.task)
	return map[string]any{
		"task":      g.task,
		"partition": p,
		"seq":       seq,
		"payload":   g.padding[:max(pad, 0)],
	}
}

// digits is the length of n's decimal text.
func digits(n int64) int {
	d := 1
	if n < 0 {
		d++
	}
	for n >= 10 || n <= -10 {
		n /= 10
		d++
	}
	return d
}
