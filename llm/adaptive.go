package llm

import (
	"context"
	"sync"
)

// limiter bounds the requests in flight to one endpoint and adapts the
// bound to what the endpoint can take, additive increase and
// multiplicative decrease (AIMD, as TCP's congestion control, Jacobson
// 1988): a success raises the limit by one up to the configured
// concurrency; a timeout or a reply that sheds load (429, 503, 504)
// halves it, down to one. A server slower than the timeout then sees fewer
// requests at once instead of a pile of abandoned ones that it keeps
// working on.
//
// Requests sent under one limit that fail together count as one signal:
// the limit is halved once per epoch, and an epoch ends at each halving,
// so that a burst of timeouts of requests sent together does not drive
// the limit to one.
type limiter struct {
	ceiling int

	mu       sync.Mutex
	limit    int
	inFlight int
	epoch    uint64
	change   chan struct{} // closed and replaced when a slot may have opened
}

func newLimiter(ceiling int) *limiter {
	ceiling = max(ceiling, 1)
	return &limiter{ceiling: ceiling, limit: ceiling, change: make(chan struct{})}
}

// acquire waits for a slot; the returned epoch goes back to release.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	for {
		l.mu.Lock()
		if l.inFlight < l.limit {
			l.inFlight++
			e := l.epoch
			l.mu.Unlock()
			return e, nil
		}
		ch := l.change
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Outcomes of a request, for release.
const (
	outcomeNeutral  = iota // says nothing about the endpoint's load
	outcomeSuccess         // the endpoint answered
	outcomeOverload        // a timeout or a reply shedding load
)

// release gives back a slot taken in epoch and adapts the limit to the
// outcome.
func (l *limiter) release(epoch uint64, outcome int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch outcome {
	case outcomeSuccess:
		l.limit = min(l.limit+1, l.ceiling)
	case outcomeOverload:
		if epoch == l.epoch {
			l.limit = max(l.limit/2, 1)
			l.epoch++
		}
	}
	close(l.change)
	l.change = make(chan struct{})
}

// current is the limit now, for logs and tests.
func (l *limiter) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}
