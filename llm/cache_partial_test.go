package llm

import (
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm/modelserver"
)

// TestCacheHitsPartialSegments runs a population of 500 agents, then one
// of 800 over the same cache, and one of 300 after that: 5, 8 and 3 agents
// per persona in blocks of 10 samples. The larger run finds the first 5
// samples of every block stored and fetches the block again for the other
// 3 (a block is asked for whole, so that its replies are those of a run
// that fetched it at once): the request stored for the first 5 is made
// again and saves nothing. The calls saved are what a run with an empty
// cache makes less, and the calls made are what the server counts; the
// metric says what the client says.
func TestCacheHitsPartialSegments(t *testing.T) {
	in := pvq(t)
	personas := allPersonas(agent.StyleDescription)
	questionsOf := func(demand int) []*agent.Question {
		var qs []*agent.Question
		for _, p := range personas {
			for item := range 3 {
				for s := range demand {
					qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: item, Sample: s})
				}
			}
		}
		return qs
	}
	for _, garbage := range []float64{0, 0.3} {
		srv, ts := srvTestServer(t, modelserver.Options{Seed: 3, GarbageRate: garbage})
		run := func(store Store, demand int) (ClientStats, int64, int64) {
			t.Helper()
			var obs lookups
			cfg := testConfig(ts.URL)
			cfg.Samples, cfg.Seed, cfg.Cache, cfg.Observer = 10, ptr(uint64(5)), NewCache(store), &obs
			cfg.Demand = func(agent.Persona) int { return demand }
			c := newClient(t, cfg)
			before := srv.Stats().Requests
			askAll(t, c, questionsOf(demand))
			return c.Stats(), srv.Stats().Requests - before, obs.hits.Load()
		}
		shared := NewMemStore()
		for _, demand := range []int{5, 8, 3} {
			cold, _, _ := run(NewMemStore(), demand)
			warm, served, metric := run(shared, demand)
			if warm.Calls != served {
				t.Errorf("garbage %v, %d per persona: the client counted %d calls, the server %d", garbage, demand, warm.Calls, served)
			}
			if warm.Calls+warm.CacheHits != cold.Calls {
				t.Errorf("garbage %v, %d per persona: got %d calls and %d saved by the cache, want %d in all (a run with an empty cache)",
					garbage, demand, warm.Calls, warm.CacheHits, cold.Calls)
			}
			if metric != warm.CacheHits {
				t.Errorf("garbage %v, %d per persona: the metric counted %d calls saved, the client %d", garbage, demand, metric, warm.CacheHits)
			}
			t.Logf("garbage %v, %d per persona: cold %d calls; over the cache %d calls, %d saved, %d answers reused",
				garbage, demand, cold.Calls, warm.Calls, warm.CacheHits, warm.AnswersReused)
		}
	}
}
