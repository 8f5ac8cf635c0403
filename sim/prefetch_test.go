package sim

import "testing"

type prefetchSeen struct {
	NoObserver
	got []Prefetching
}

func (s *prefetchSeen) Prefetch(p Prefetching) { s.got = append(s.got, p) }

// TestPrefetchTally: the models' counts add up, a count that arrives after
// a larger one does not move the progress back, the end is told once and
// nothing after it, and a phase without a fetch tells nothing.
func TestPrefetchTally(t *testing.T) {
	seen := &prefetchSeen{}
	tally := newPrefetchTally(Observers{NoObserver{}, seen})
	a, b := tally.progress("a"), tally.progress("b")
	a(0, 10)
	b(0, 4)
	a(3, 10)
	a(2, 10) // a worker that finished earlier, told later
	b(4, 4)
	tally.end()
	tally.end()
	a(10, 10) // after the end
	want := []Prefetching{{0, 10, false}, {0, 14, false}, {3, 14, false}, {3, 14, false}, {7, 14, false}, {7, 14, true}}
	if len(seen.got) != len(want) {
		t.Fatalf("got %+v, want %+v", seen.got, want)
	}
	for i := range want {
		if seen.got[i] != want[i] {
			t.Errorf("event %d: got %+v, want %+v", i, seen.got[i], want[i])
		}
	}

	none := &prefetchSeen{}
	newPrefetchTally(none).end()
	if len(none.got) != 0 {
		t.Errorf("no fetch: got %+v, want nothing told", none.got)
	}
}
