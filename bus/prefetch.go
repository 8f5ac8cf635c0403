package bus

import (
	"context"
	"sync"
	"time"

	"github.com/society-sim/society/sim"
)

// PrefetchCount is the fetch ahead an agent host made for a run's tasks,
// added up over every task it served: the requests done and planned (a
// fetch ended before its last request no longer plans the rest). The
// host reports it with its statistics, so that the orchestrator's
// progress shows the hosts' fetch ahead of each phase's answers, as a
// single process shows its own.
type PrefetchCount struct {
	Done    int64 `json:"done"`
	Planned int64 `json:"planned"`
}

// hostPrefetch adds up an agent host's fetches ahead for one run.
type hostPrefetch struct {
	mu sync.Mutex
	n  PrefetchCount
}

func (h *hostPrefetch) count() PrefetchCount {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// task is the observer of one task's fetch (sim.PrefetchTasks).
func (h *hostPrefetch) task() sim.Observer { return &taskPrefetch{h: h} }

// taskPrefetch adds what changed in one task's fetch since it last
// reported; its reports come one at a time.
type taskPrefetch struct {
	sim.NoObserver
	h    *hostPrefetch
	last sim.Prefetching
}

func (t *taskPrefetch) Prefetch(p sim.Prefetching) {
	if p.Ended {
		p.Expected = p.Done // what was not fetched is no longer planned
	}
	t.h.mu.Lock()
	t.h.n.Done += p.Done - t.last.Done
	t.h.n.Planned += p.Expected - t.last.Expected
	t.h.mu.Unlock()
	t.last = p
}

// prefetchFollower shows the orchestrator's observer the agent hosts'
// fetch ahead of each phase's answers: about once a second it adds up
// the hosts' reports (PrefetchCount) and tells the observer the requests
// done and planned since the phase began (sim.Prefetched), ended when the
// next phase begins or the run's answers are all in. The hosts report
// about once a second, so the counts lag by as much.
type prefetchFollower struct {
	sim.NoObserver
	ctx context.Context
	reg *Registry
	run string
	obs sim.Observer

	mu         sync.Mutex
	base, last PrefetchCount
	phase      bool            // a phase is under way
	told       sim.Prefetching // the last told in this phase
}

// hosts adds up the hosts' reports; false when the registry cannot be read.
func (f *prefetchFollower) hosts() (PrefetchCount, bool) {
	stats, err := f.reg.HostStats(f.ctx, f.run, nil)
	if err != nil {
		return PrefetchCount{}, false
	}
	var n PrefetchCount
	for _, s := range stats {
		if s.Prefetch != nil {
			n.Done += s.Prefetch.Done
			n.Planned += s.Prefetch.Planned
		}
	}
	return n, true
}

// Phase ends the fetch of the phase before, with the hosts' counts read
// now, and counts the new phase's from them.
func (f *prefetchFollower) Phase(sim.PhaseStart) { f.endPhase(true) }

// endPhase reads the hosts' reports and ends the phase's fetch with them;
// next starts counting the next phase's from them.
func (f *prefetchFollower) endPhase(next bool) {
	n, ok := f.hosts()
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok {
		f.update(n)
	}
	f.end()
	if next {
		f.base, f.phase = f.last, true
	}
}

// poll reads the hosts' reports and tells the observer how far the
// phase's fetch is, once the hosts have planned a request of it.
func (f *prefetchFollower) poll() {
	n, ok := f.hosts()
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(n)
}

// update takes the hosts' counts n and tells the observer how far the
// phase's fetch is, when it changed; f.mu is held.
func (f *prefetchFollower) update(n PrefetchCount) {
	f.last = n
	p := sim.Prefetching{Done: n.Done - f.base.Done, Expected: n.Planned - f.base.Planned}
	if !f.phase || p.Expected <= 0 || p == f.told {
		return
	}
	f.told = p
	sim.Prefetched(f.obs, p)
}

// end ends the phase's fetch, when one was told; f.mu is held.
func (f *prefetchFollower) end() {
	if f.phase && f.told.Expected > 0 {
		sim.Prefetched(f.obs, sim.Prefetching{Done: f.told.Done, Expected: f.told.Expected, Ended: true})
	}
	f.phase, f.told = false, sim.Prefetching{}
}

// follow polls every second until stop is called; stop reads the hosts'
// reports once more and ends the last phase's fetch with them. Hosts
// report about once a second and once more before each task is
// acknowledged, so stop, called once every task is settled, ends it with
// the run's final counts.
func (f *prefetchFollower) follow() (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-f.ctx.Done():
				return
			case <-t.C:
				f.poll()
			}
		}
	}()
	return func() {
		close(quit)
		<-exited
		f.finish()
	}
}

// finish reads the hosts' reports once more and ends the last phase's
// fetch with them.
func (f *prefetchFollower) finish() { f.endPhase(false) }
