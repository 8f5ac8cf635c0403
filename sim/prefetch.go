package sim

import (
	"context"
	"sync"

	"github.com/society-sim/society/agent"
)

// CountingPrefetcher is a Prefetcher that tells how far its fetch is
// (llm.Client): StartPrefetchCounted makes its plan before it returns, so
// that agents started next find their requests in it rather than make
// them beside it, and leaves the requests to goroutines; wait returns
// Prefetch's error once they are done. progress is called once the plan
// is made and after each planned request answered, whoever made it, with
// the requests answered and planned, from several goroutines at once.
type CountingPrefetcher interface {
	StartPrefetchCounted(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) (wait func() error)
}

// SharePrefetcher is a CountingPrefetcher that can fetch a share of a
// phase (llm.Client): the questions of an agent host's tasks, of each
// only the samples first[i] to qs[i].Sample (its agents' ranks), where
// StartPrefetchCounted fetches every sample of the persona that the run
// will ask. The answers are the same either way.
type SharePrefetcher interface {
	CountingPrefetcher
	StartPrefetchShare(ctx context.Context, qs []*agent.Question, first []int, progress func(done, planned int)) (wait func() error)
}

// Prefetching is how far the fetch ahead of a phase's questions is, over
// every model that fetches ahead: requests done and planned. Ended says
// the fetch is over (every request done, or the phase's answers all in
// first); the counts are then final.
type Prefetching struct {
	Done, Expected int64
	Ended          bool
}

// PrefetchObserver is an Observer that is also told how the fetch ahead
// of each questionnaire phase goes: in distribution mode the phase's
// requests are made before most answers can arrive, so a progress shown
// in answers alone stands still meanwhile. Prefetch is called, one call
// at a time, from the fetch's goroutines, while Batch may be called from
// the dispatcher's; it must return quickly.
type PrefetchObserver interface {
	Prefetch(Prefetching)
}

// prefetchObservers lists o, or those of its members, that observe the
// fetch ahead.
func prefetchObservers(o Observer) []PrefetchObserver {
	switch o := o.(type) {
	case Observers:
		var out []PrefetchObserver
		for _, m := range o {
			out = append(out, prefetchObservers(m)...)
		}
		return out
	case PrefetchObserver:
		return []PrefetchObserver{o}
	}
	return nil
}

// prefetchTally sums the progress of a phase's fetches per model and
// tells the observers, one call at a time.
type prefetchTally struct {
	obs []PrefetchObserver

	mu            sync.Mutex
	done, planned map[string]int
	ended         bool
}

func newPrefetchTally(o Observer) *prefetchTally {
	return &prefetchTally{obs: prefetchObservers(o), done: map[string]int{}, planned: map[string]int{}}
}

// progress is the progress callback of model's fetch. The workers of a
// fetch call it concurrently, so a count may arrive after a larger one:
// the largest is kept.
func (t *prefetchTally) progress(model string) func(done, planned int) {
	return func(done, planned int) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.ended {
			return
		}
		t.done[model] = max(t.done[model], done)
		t.planned[model] = planned
		t.tell()
	}
}

// end says the phase's fetch is over.
func (t *prefetchTally) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	t.tell()
}

func (t *prefetchTally) tell() {
	if len(t.planned) == 0 {
		return // no model fetched ahead
	}
	var p Prefetching
	for m, n := range t.planned {
		p.Done += int64(t.done[m])
		p.Expected += int64(n)
	}
	p.Ended = t.ended
	for _, o := range t.obs {
		o.Prefetch(p)
	}
}

// StartPrefetchCounted makes prefetchLog a CountingPrefetcher whatever it
// wraps: a Prefetcher that does not count is asked without progress, in a
// goroutine.
func (l prefetchLog) StartPrefetchCounted(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) (wait func() error) {
	if c, ok := l.inner.(CountingPrefetcher); ok {
		return c.StartPrefetchCounted(ctx, qs, progress)
	}
	done := make(chan error, 1)
	go func() { done <- l.Prefetch(ctx, qs) }()
	return func() error { return <-done }
}

// StartPrefetchShare makes prefetchLog a SharePrefetcher whatever it
// wraps: a model that cannot fetch a share fetches nothing.
func (l prefetchLog) StartPrefetchShare(ctx context.Context, qs []*agent.Question, first []int, progress func(done, planned int)) (wait func() error) {
	if c, ok := l.inner.(SharePrefetcher); ok {
		return c.StartPrefetchShare(ctx, qs, first, progress)
	}
	return func() error { return nil }
}

// Prefetched tells the PrefetchObservers among o how far a fetch ahead
// is: what a phase's fetch tells them in one process, for a run whose
// agents fetch elsewhere (the agent hosts of a run over NATS, whose
// reports the orchestrator reads). Calls must come one at a time.
func Prefetched(o Observer, p Prefetching) {
	for _, po := range prefetchObservers(o) {
		po.Prefetch(p)
	}
}
