// Package retry holds the waiting every retry loop of the worker shares: a capped exponential
// backoff with jitter, and a sleep that ends with its context.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits d, or until ctx is done, whichever comes first; it returns ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Jitter spreads a backoff by up to a fifth, so tasks that failed together do not retry in step.
func Jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// Backoff is a capped exponential backoff: Wait returns Initial, then twice as long each time up
// to Max, each with jitter; Reset starts again from Initial.
type Backoff struct {
	Initial, Max, next time.Duration
}

func (b *Backoff) Wait() time.Duration {
	if b.next == 0 {
		b.next = b.Initial
	}
	d := b.next
	b.next = min(b.next*2, b.Max)
	return Jitter(d)
}

func (b *Backoff) Reset() { b.next = 0 }
