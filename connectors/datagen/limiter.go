package datagen

import (
	"math"
	"time"
)

// limiter paces a task to a rate of records per second. It is a token bucket on a clock the
// caller passes in, so tests can drive it in virtual time.
//
// A poll waits for a chunk of about a tenth of a second's worth of records (at least one, at
// most a batch), so that slow rates deliver every record promptly and fast rates come in
// batches rather than one wake-up per record. A task polled late catches up with at most a
// second's worth of records (at least a chunk, at most a batch): the rate is a ceiling.
type limiter struct {
	rate   float64 // records per second
	burst  float64 // most records saved up
	tokens float64 // records granted but not taken
	last   time.Time
}

// chunkTime is how much time's worth of records a poll waits for.
const chunkTime = 100 * time.Millisecond

// tokenSlack absorbs floating-point error, so that waiting the computed delay always suffices.
const tokenSlack = 1e-9

func newLimiter(rate float64, batchSize int, now time.Time) *limiter {
	l := &limiter{rate: rate, last: now}
	l.burst = min(float64(batchSize), max(rate, float64(l.chunk(batchSize))))
	return l
}

// chunk is how many records a poll that wants n waits for.
func (l *limiter) chunk(n int) int {
	c := int(l.rate * chunkTime.Seconds())
	return max(1, min(c, n))
}

func (l *limiter) refill(now time.Time) {
	if now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
	}
}

// delay is how long after now n records will be granted; 0 when they are already.
func (l *limiter) delay(now time.Time, n int) time.Duration {
	l.refill(now)
	missing := float64(n) - l.tokens
	if missing <= tokenSlack {
		return 0
	}
	return time.Duration(math.Ceil(missing / l.rate * float64(time.Second)))
}

// take grants up to n records now and returns how many.
func (l *limiter) take(now time.Time, n int) int {
	l.refill(now)
	granted := min(n, int(l.tokens+tokenSlack))
	l.tokens = max(0, l.tokens-float64(granted))
	return granted
}
