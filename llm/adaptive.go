package llm

import (
	"context"
	"sync"
)

// limiter bounds the requests in flight to one endpoint and adapts the
// bound to what the endpoint can take, additive increase and
// multiplicative decrease (AIMD, as TCP's congestion control, Jacobson
// 1988): a limit's worth of successes raises the limit by one (1/limit
// each) up to the configured concurrency; a timeout or a reply that sheds
// load (429, 503, 504) halves it, down to one. A success that took over
// half the timeout leaves the limit as it is: the server is queueing, and
// one more request in front of it would time out. A server slower than the timeout then sees fewer
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
	limit    float64 // requests may be sent while inFlight < ⌊limit⌋
	inFlight int
	epoch    uint64
	change   chan struct{} // closed and replaced when a slot may have opened
}

func newLimiter(ceiling int) *limiter {
	ceiling = max(ceiling, 1)
	return &limiter{ceiling: ceiling, limit: float64(ceiling), change: make(chan struct{})}
}

// acquire waits for a slot; the returned epoch goes back to release.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	for {
		l.mu.Lock()
		if l.inFlight < int(l.limit) {
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
	outcomeSuccess         // the endpoint answered with time to spare
	outcomeSlow            // the endpoint answered, using over half the timeout
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
		l.limit = min(l.limit+1/l.limit, float64(l.ceiling))
	case outcomeOverload:
		if epoch == l.epoch {
			l.limit = max(float64(int(l.limit))/2, 1)
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
	return int(l.limit)
}
