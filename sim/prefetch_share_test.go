package sim_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// sharer is a fake model that fetches ahead: it records what each kind of
// fetch was asked for.
type sharer struct {
	*flat
	mu     sync.Mutex
	whole  []*agent.Question
	shared []*agent.Question
	first  []int
}

func (s *sharer) Prefetch(context.Context, []*agent.Question) error { return nil }

func (s *sharer) StartPrefetchCounted(_ context.Context, qs []*agent.Question, _ func(done, planned int)) func() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.whole = append(s.whole, qs...)
	return func() error { return nil }
}

func (s *sharer) StartPrefetchShare(_ context.Context, qs []*agent.Question, first []int, _ func(done, planned int)) func() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shared, s.first = append(s.shared, qs...), append(s.first, first...)
	return func() error { return nil }
}

// TestPrefetchTasksShare: an agent host's fetch ahead of a task (share)
// asks each question for the ranks of the task's agents holding its
// persona, lowest to highest; a single process's fetch asks for the whole
// of each persona (the highest rank, the model adding the rest).
func TestPrefetchTasksShare(t *testing.T) {
	const shards = 4
	m := &sharer{flat: &flat{contexts: map[string][]string{}}}
	sc := parse(t, strings.Replace(gameScenario, "[games.paired_charity]\nrounds = 3\n", "", 1))
	p, err := sim.NewPlan(sc, fakeBackends{m})
	if err != nil {
		t.Fatal(err)
	}
	var model string
	for name := range p.Models {
		model = name
	}
	pool := p.Study.Pool
	for s := range shards {
		m.whole, m.shared, m.first = nil, nil, nil
		task := sim.Task{Shard: s, Model: model, Instrument: "pvq40", Items: []int{0, 3}, Style: agent.StyleDescription}
		sim.PrefetchTasks(t.Context(), p, []sim.Task{task}, shards, true, nil, nil)()
		if len(m.whole) != 0 {
			t.Fatalf("shard %d: a share fetched the whole of %d questions", s, len(m.whole))
		}
		// The ranks of the shard's agents, per persona.
		lo, hi := sim.ShardBounds(s, pool.Size(), shards)
		ranks := map[values.Value][]int{}
		for id := lo; id < hi; id++ {
			ranks[pool.Persona[id]] = append(ranks[pool.Persona[id]], int(pool.Rank[id]))
		}
		if got, want := len(m.shared), 2*len(ranks); got != want {
			t.Fatalf("shard %d: %d questions, want %d (2 items × %d personas)", s, got, want, len(ranks))
		}
		for i, q := range m.shared {
			r := ranks[q.Persona.Value]
			if m.first[i] != slices.Min(r) || q.Sample != slices.Max(r) || q.Persona.Style != agent.StyleDescription || (q.Item != 0 && q.Item != 3) {
				t.Errorf("shard %d: %v item %d asked for ranks %d..%d, want %d..%d", s, q.Persona, q.Item, m.first[i], q.Sample, slices.Min(r), slices.Max(r))
			}
		}
	}
	// A single process fetches the whole: the highest rank of all.
	m.whole, m.shared, m.first = nil, nil, nil
	var tasks []sim.Task
	for s := range shards {
		tasks = append(tasks, sim.Task{Shard: s, Model: model, Instrument: "pvq40", Items: []int{0}, Style: agent.StyleDescription})
	}
	sim.PrefetchTasks(t.Context(), p, tasks, shards, false, nil, nil)()
	top := map[values.Value]int{}
	for id, v := range pool.Persona {
		top[v] = max(top[v], int(pool.Rank[id]))
	}
	if len(m.shared) != 0 || len(m.whole) != len(top) {
		t.Fatalf("whole fetch: %d questions whole, %d shared; want %d whole (one per persona)", len(m.whole), len(m.shared), len(top))
	}
	for _, q := range m.whole {
		if q.Sample != top[q.Persona.Value] {
			t.Errorf("whole fetch: %v asked up to rank %d, want %d", q.Persona, q.Sample, top[q.Persona.Value])
		}
	}
}
