package bus

import (
	"reflect"
	"testing"

	"github.com/society-sim/society/sim"
)

// prefetchSeen records what a PrefetchObserver is told.
type prefetchSeen struct {
	sim.NoObserver
	got []sim.Prefetching
}

func (p *prefetchSeen) Prefetch(pf sim.Prefetching) { p.got = append(p.got, pf) }

// TestHostPrefetchCount: a host adds up its tasks' fetches ahead; a fetch
// ended before its last request no longer plans the rest.
func TestHostPrefetchCount(t *testing.T) {
	var h hostPrefetch
	a, b := h.task().(sim.PrefetchObserver), h.task().(sim.PrefetchObserver)
	a.Prefetch(sim.Prefetching{Expected: 10})
	b.Prefetch(sim.Prefetching{Expected: 4})
	a.Prefetch(sim.Prefetching{Done: 6, Expected: 10})
	b.Prefetch(sim.Prefetching{Done: 4, Expected: 4, Ended: true})
	if got, want := h.count(), (PrefetchCount{Done: 10, Planned: 14}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	a.Prefetch(sim.Prefetching{Done: 7, Expected: 10, Ended: true}) // the phase's answers came first
	if got, want := h.count(), (PrefetchCount{Done: 11, Planned: 11}); got != want {
		t.Errorf("after an early end: got %+v, want %+v", got, want)
	}
}

// TestPrefetchFollower: the orchestrator's observer is told the requests
// the hosts fetched ahead and planned since the phase began, from their
// reports in the registry, and the fetch's end at the next phase and
// when the run's tasks are settled, with the counts the hosts reported
// last (a run's progress ended on "1600/2000 requests" for 3,200 made,
// the counts of the last poll).
func TestPrefetchFollower(t *testing.T) {
	ctx := boundedContext(t)
	_, js := embedded(t)
	reg, err := OpenRegistry(ctx, js, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(host string, done, planned int64) {
		t.Helper()
		if err := reg.PutHostStats(ctx, "study-1", HostStats{Host: host, Prefetch: &PrefetchCount{Done: done, Planned: planned}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := &prefetchSeen{}
	f := &prefetchFollower{ctx: ctx, reg: reg, run: "study-1", obs: sim.Observers{sim.NoObserver{}, seen}}
	put("a", 5, 5) // before the run's first phase: not the phase's
	f.Phase(sim.PhaseStart{})
	f.poll() // nothing planned yet: nothing told
	put("a", 7, 25)
	put("b", 0, 10)
	f.poll()
	f.poll() // no change: not told again
	put("b", 10, 10)
	f.poll()
	put("a", 25, 25) // reported after the last poll
	f.Phase(sim.PhaseStart{})
	put("a", 28, 30)
	f.poll()
	put("a", 30, 30) // the last task's report, after the last poll
	f.finish()
	want := []sim.Prefetching{{Done: 2, Expected: 30}, {Done: 12, Expected: 30}, {Done: 30, Expected: 30}, {Done: 30, Expected: 30, Ended: true},
		{Done: 3, Expected: 5}, {Done: 5, Expected: 5}, {Done: 5, Expected: 5, Ended: true}}
	if !reflect.DeepEqual(seen.got, want) {
		t.Errorf("got %+v\nwant %+v", seen.got, want)
	}
}
