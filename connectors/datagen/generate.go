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
	keys       []string
	next       []int64 // per partition, the sequence number of its next record
	cursor     int     // the partition of the next record
	padding    string  // padTo 'x's, sliced for each record
	zeros      string  // padTo '0's, for the string format
}

func newGenerator(cfg Config, task int64) *generator {
	g := &generator{
		topic:      cfg.Topic,
		task:       task,
		format:     cfg.Format,
		padTo:      cfg.PayloadBytes,
		partitions: make([]map[string]any, cfg.Partitions),
		keys:       make([]string, cfg.Partitions),
		next:       make([]int64, cfg.Partitions),
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

// nextRecord returns the next record of the round-robin and advances it.
func (g *generator) nextRecord(now time.Time) connect.Record {
	p := g.cursor
	seq := g.next[p]
	g.next[p]++
	g.cursor = (p + 1) % len(g.next)
	return connect.Record{
		Topic:           g.topic,
		Key:             g.keys[p],
		Value:           g.value(int64(p), seq),
		Time:            now,
		SourcePartition: g.partitions[p],
		SourceOffset:    map[string]any{"seq": seq},
	}
}

// jsonOverhead is the length of {"partition":,"payload":"","seq":,"task":} without the numbers:
// the JSON converter writes a map with its keys sorted.
const jsonOverhead = len(`{"partition":,"payload":"","seq":,"task":}`)

// value is the record value of seq in partition p, padded to about padTo bytes.
func (g *generator) value(p, seq int64) any {
	if g.format == FormatString {
		s := strconv.FormatInt(seq, 10)
		if len(s) < g.padTo {
			s = g.zeros[:g.padTo-len(s)] + s
		}
		return s
	}
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
