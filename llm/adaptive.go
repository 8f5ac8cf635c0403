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
	// waiters queue for a slot, first come first served. A freed slot
	// is handed to the first waiter alone: with every waiter woken at
	// each release (a broadcast), a thousand agents and a prefetch's
	// workers waiting on a full limiter cost a thousand wake-ups per
	// request, over a tenth of a busy client's CPU.
	waiters []*slotWaiter
	// spare keeps waiters for reuse; each limiter its own, as a channel
	// belongs to the synctest bubble it was made in.
	spare sync.Pool
}

// slotWaiter is an acquire waiting for a slot: ready receives once the
// slot is its own (granted, in epoch). Waiters are kept for reuse
// (limiter.spare) once their grant has been received: with a thousand agents
// and a prefetch's workers on a full limiter most acquires wait, and a
// waiter and its channel made anew were two allocations per request.
type slotWaiter struct {
	ready   chan struct{} // buffered (1): grant sends, never closes
	epoch   uint64
	granted bool
}

func newLimiter(ceiling int) *limiter {
	ceiling = max(ceiling, 1)
	return &limiter{ceiling: ceiling, limit: float64(ceiling)}
}

// acquire waits for a slot; the returned epoch goes back to release.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inFlight < int(l.limit) {
		l.inFlight++
		e := l.epoch
		l.mu.Unlock()
		return e, nil
	}
	w, _ := l.spare.Get().(*slotWaiter)
	if w == nil {
		w = &slotWaiter{ready: make(chan struct{}, 1)}
	}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case <-w.ready:
		e := w.epoch
		*w = slotWaiter{ready: w.ready}
		l.spare.Put(w)
		return e, nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.granted {
		// The slot came as the context ended: hand it on.
		l.mu.Unlock()
		l.release(w.epoch, outcomeNeutral)
		return 0, ctx.Err()
	}
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	return 0, ctx.Err()
}

// grant hands the free slots to the first waiters; l.mu is held.
func (l *limiter) grant() {
	for len(l.waiters) > 0 && l.inFlight < int(l.limit) {
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.inFlight++
		w.epoch, w.granted = l.epoch, true
		w.ready <- struct{}{}
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
	l.grant()
}

// current is the limit now, for logs and tests.
func (l *limiter) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}
