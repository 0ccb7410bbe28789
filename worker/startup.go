package worker

import (
	"context"
	"sync"
	"time"
)

// startProgress says which step of Start a worker is in, for GET /health and for the log: a
// worker that takes long to start (a topic not visible yet, an internal topic slow to read,
// a group that does not answer) says what it is waiting for instead of staying silent.
type startProgress struct {
	mu     sync.Mutex
	step   string
	detail func() string // more about the step while it lasts (how far a read has come); may be nil
}

// set starts a step.
func (p *startProgress) set(step string, detail func() string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step, p.detail = step, detail
}

// describe is the step and its detail, as one phrase.
func (p *startProgress) describe() string {
	p.mu.Lock()
	step, detail := p.step, p.detail
	p.mu.Unlock()
	if step == "" {
		return "starting"
	}
	if detail != nil {
		if d := detail(); d != "" {
			return step + " (" + d + ")"
		}
	}
	return step
}

// startLogEvery is how often a worker that is still starting logs which step it is in.
const startLogEvery = 15 * time.Second

// watchStart logs which step Start is in every startLogEvery until ctx ends.
func (w *Worker) watchStart(ctx context.Context, began time.Time) {
	tick := time.NewTicker(startLogEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.log.Warn("worker still starting", "step", w.progress.describe(), "elapsed", time.Since(began).Round(time.Second))
		}
	}
}
