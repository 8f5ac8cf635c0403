package main

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/scenarios"
)

// TestPaperIntervalsHoldEstimates runs a smaller built-in `paper` (300
// agents, two priming modes, every strategy and instrument) and checks
// that every interval holds the whole-population figure it describes, that
// every p-value is a number at or above its resolution, and that the
// strategies are compared with Uniform on shared agents.
func TestPaperIntervalsHoldEstimates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the paper scenario")
	}
	sc, err := scenarios.Builtin("paper")
	if err != nil {
		t.Fatal(err)
	}
	sc.Population.Size = 200
	sc.Population.Calibration = 30
	sc.Models = sc.Models[:2]
	sc.Analysis.BootstrapIterations, sc.Analysis.NullIterations = 100, 19
	dir := t.TempDir()
	res, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	r := &res.Outcome.Results
	if r.Bootstrap.Method != "population" {
		t.Errorf("got bootstrap %q, want population", r.Bootstrap.Method)
	}
	check := func(what string, est float64, ci [2]float64, p, res float64) {
		if math.IsNaN(est) {
			return
		}
		if !(ci[0] <= est && est <= ci[1]) {
			t.Errorf("%s: figure %.4f outside its interval [%.4f, %.4f]", what, est, ci[0], ci[1])
		}
		if math.IsNaN(p) || p < res || res != 1.0/20 {
			t.Errorf("%s: got p %v (resolution %v), want a number >= 1/20", what, p, res)
		}
	}
	for _, row := range r.ValueStructure {
		check(row.String(), float64(row.ValuesSimilarity), [2]float64{float64(row.CI95[0]), float64(row.CI95[1])},
			float64(row.PValue), float64(row.PValueResolution))
	}
	for _, row := range r.ValueBehavior {
		check(row.Model+"/"+row.Strategy+"/"+row.Instrument, float64(row.BehaviorSimilarity), [2]float64{float64(row.CI95[0]), float64(row.CI95[1])},
			float64(row.PValue), float64(row.PValueResolution))
	}
	t.Logf("%d value rows, %d behaviour rows, %d comparisons", len(r.ValueStructure), len(r.ValueBehavior), len(r.Comparisons))
	pairs := map[string]bool{}
	for _, c := range r.Comparisons {
		if c.Factor == "strategy" {
			if c.B != "uniform" {
				t.Errorf("comparison %+v: want every strategy against uniform", c)
			}
			pairs[c.A] = true
		}
	}
	for _, s := range []string{"h-norm", "h-even", "h-np", "model-specific"} {
		if !pairs[s] {
			t.Errorf("no comparison of %s with uniform; got %v", s, pairs)
		}
	}
}
