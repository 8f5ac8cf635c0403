package backend

import (
	"net/http/httptest"
	"testing"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

// TestEstimateUnseededSame: a model that sends no request seed gets
// replies drawn by the server, yet two plans of one scenario give the
// same completion tokens: the rehearsal's server draws an unseeded
// request's replies from the request itself and how many equal requests
// came before it, never from the order concurrent requests arrive in.
func TestEstimateUnseededSame(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	t.Cleanup(hs.Close)
	sc := estimateScenario(t, hs.URL, hs.URL)
	sc.Models = sc.Models[1:2] // sample mode
	sc.Models[0].Seed, sc.Models[0].Concurrency = nil, 16
	sc.Models[0].Model = "synthetic-respondents"
	sc.Population.Size = 40
	var tokens []int64
	for range 3 {
		p, err := Estimate(t.Context(), sc, 1)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, p.Models[0].CompletionTokens)
	}
	if tokens[0] == 0 || tokens[1] != tokens[0] || tokens[2] != tokens[0] {
		t.Errorf("three plans of one scenario: got %v completion tokens, want the same, not 0", tokens)
	}
}
