package backend

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestCacheHitsGrowingPopulation runs a sample-mode study of 250 agents,
// then the same study with 400 over its reply cache: the larger run makes
// the calls the server counts, and the calls the cache saved it are what
// a run with an empty cache makes more.
func TestCacheHitsGrowingPopulation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,050 agents")
	}
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	ms := modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1})
	hs := httptest.NewServer(ms)
	t.Cleanup(hs.Close)
	scenario := func(agents int) *scenarios.Scenario {
		src := fmt.Sprintf(`name = "grow"
seed = 7
[population]
size = %d
strategy = "h-np"
[[models]]
name = "m"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "sample"
samples = 10
concurrency = 16
timeout = "1m"
[[questionnaires]]
name = "pvq40"
`, agents, hs.URL+"/v1")
		sc, err := scenarios.Parse([]byte(src), "grow.toml")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	run := func(dir string, agents int) (analysis.LLMCounts, int64) {
		t.Helper()
		before := ms.Stats().Requests
		sets := New(dir, nil, nil)
		defer sets.Close()
		if _, err := (&sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal}).Rehearse(t.Context(), scenario(agents)); err != nil {
			t.Fatal(err)
		}
		var c analysis.LLMCounts
		for _, s := range sets.All() {
			n := s.Counts()
			c.Calls, c.CacheHits, c.AnswersReused = c.Calls+n.Calls, c.CacheHits+n.CacheHits, c.AnswersReused+n.AnswersReused
		}
		return c, ms.Stats().Requests - before
	}
	cold, _ := run(t.TempDir(), 400)
	dir := t.TempDir()
	run(dir, 250)
	warm, served := run(dir, 400)
	if warm.Calls != served {
		t.Errorf("400 agents over the cache of 250: the client counted %d calls, the server %d", warm.Calls, served)
	}
	if warm.Calls+warm.CacheHits != cold.Calls || warm.CacheHits == 0 {
		t.Errorf("400 agents over the cache of 250: got %d calls and %d saved by the cache, want %d in all (400 agents with an empty cache)",
			warm.Calls, warm.CacheHits, cold.Calls)
	}
	t.Logf("400 agents: %d calls with an empty cache; over the cache of 250, %d calls, %d saved, %d answers reused",
		cold.Calls, warm.Calls, warm.CacheHits, warm.AnswersReused)
}
