package datagen

import (
	"testing"
	"time"
)

func TestLimiterGrantsAtTheRate(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(4, 100, now) // one record every 250ms
	if d := l.delay(now, 1); d != 250*time.Millisecond {
		t.Errorf("delay for the first record %v, want 250ms", d)
	}
	if n := l.take(now, 100); n != 0 {
		t.Errorf("granted %d records at once, want 0", n)
	}
	now = now.Add(time.Second)
	if n := l.take(now, 3); n != 3 {
		t.Errorf("after 1s granted %d of 3 wanted, want 3", n)
	}
	if n := l.take(now, 3); n != 1 {
		t.Errorf("then granted %d, want the 1 left", n)
	}
	if d := l.delay(now.Add(100*time.Millisecond), 2); d != 400*time.Millisecond {
		t.Errorf("delay for 2 records 100ms later %v, want 400ms", d)
	}
}

func TestLimiterChunkAndBurst(t *testing.T) {
	tests := []struct {
		rate      float64
		batch     int
		wantChunk int
		wantBurst float64
	}{
		{0.5, 500, 1, 1},
		{10, 500, 1, 10},
		{1000, 500, 100, 500},
		{1000, 50, 50, 50},
		{1e6, 500, 500, 500},
	}
	for _, tt := range tests {
		l := newLimiter(tt.rate, tt.batch, time.Time{})
		if c := l.chunk(tt.batch); c != tt.wantChunk || l.burst != tt.wantBurst {
			t.Errorf("rate %v batch %d: chunk %d burst %v, want %d and %v", tt.rate, tt.batch, c, l.burst, tt.wantChunk, tt.wantBurst)
		}
	}
}

func TestLimiterDelaySuffices(t *testing.T) {
	// Waiting the computed delay must always grant the records, whatever the rounding.
	for _, rate := range []float64{0.3, 3, 7, 33.3, 1e3 / 3, 12345.678} {
		now := time.Unix(0, 0)
		l := newLimiter(rate, 500, now)
		for i := range 1000 {
			n := l.chunk(500)
			now = now.Add(l.delay(now, n))
			if got := l.take(now, n); got != n {
				t.Fatalf("rate %v, round %d: after the delay got %d of %d records", rate, i, got, n)
			}
		}
	}
}
