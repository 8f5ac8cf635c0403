package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// smallPaper is a scenario with the parts of the paper at test size: two
// conditions of the synthetic backend and the PVQ-40, and either the
// model-specific strategy (its calibration run) or, with behaviour, the
// behaviour instruments, the persona fixture and a published reference.
func smallPaper(t *testing.T, dir string, behaviour bool) string {
	t.Helper()
	fixture, err := filepath.Abs("../../questionnaires/testdata/persona-fixture")
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "bfi2_published.csv")
	if err := os.WriteFile(ref, []byte("value,A,O\nSD,0.05,0.35\nST,-0.05,0.25\nHE,-0.15,0.05\nAC,-0.2,0\nPO,-0.35,-0.15\n"+
		"SE,0.05,-0.25\nCO,0.2,-0.3\nTR,0.25,-0.25\nBE,0.4,0.05\nUN,0.25,0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	strategies := `["uniform", "h-np", "model-specific"]
calibration = 20`
	if behaviour {
		strategies = `["uniform", "h-np"]`
	}
	sc := `name = "small-paper"
seed = 3

[population]
size = 250
strategies = ` + strategies + `

[[models]]
name = "primed"
priming = "priming"

[[models]]
name = "tested"
priming = "test"

[[questionnaires]]
name = "pvq40"
`
	if behaviour {
		sc += `
[[questionnaires]]
name = "bfi2"

[[questionnaires]]
name = "persona"
dir = "` + fixture + `"
statements = 2

[[analysis.behavior_references]]
instrument = "bfi2"
file = "bfi2_published.csv"
name = "made-up"
`
	}
	sc += `
[analysis]
bootstrap = "paper"
bootstrap_iterations = 10
bootstrap_size = 100
null_iterations = 19
`
	path := filepath.Join(dir, "small-paper.toml")
	if err := os.WriteFile(path, []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestModelSpecificCalibration(t *testing.T) {
	dir := t.TempDir()
	path := smallPaper(t, dir, false)
	out := filepath.Join(dir, "out")
	if _, stderr, code := runCLI(t, "run", path, "--out", out, "--cache", filepath.Join(dir, "cache")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := readResults(t, out)
	if got := len(r.Calibration); got != 2*values.N {
		t.Fatalf("got %d calibration rows, want one per model and value prompt (%d)", got, 2*values.N)
	}
	// App. E by default: weights ∝ max(Pearson correlation of the lower
	// triangles, 0).
	sums, fits := map[string]float64{}, map[string]float64{}
	for _, c := range r.Calibration {
		if c.Agents != 20 {
			t.Errorf("%s/%s: got %d calibration agents, want 20", c.Model, c.Persona, c.Agents)
		}
		if c.Rule != string(population.FitPearson) || math.IsNaN(float64(c.Pearson)) || math.IsNaN(float64(c.ValuesSimilarity)) {
			t.Errorf("%s/%s: got rule %q, pearson %v, values similarity %v; want rule pearson and both fits", c.Model, c.Persona, c.Rule, c.Pearson, c.ValuesSimilarity)
		}
		sums[c.Model] += float64(c.Weight)
		fits[c.Model] += max(float64(c.Pearson), 0)
	}
	for _, c := range r.Calibration {
		if want := max(float64(c.Pearson), 0) / fits[c.Model]; math.Abs(float64(c.Weight)-want) > 1e-5 {
			t.Errorf("%s/%s: pearson %v got weight %v, want %v", c.Model, c.Persona, c.Pearson, c.Weight, want)
		}
	}
	for m, s := range sums {
		if math.Abs(s-1) > 1e-5 {
			t.Errorf("%s: weights sum to %v, want 1", m, s)
		}
	}
	// Each model has its own member, sized by its own weights.
	for _, m := range []string{"primed", "tested"} {
		var row *analysis.PopulationRow
		for i := range r.Population {
			if r.Population[i].Strategy == "model-specific@"+m {
				row = &r.Population[i]
			}
		}
		if row == nil || row.Size != 250 || row.Counts["none"] != 0 {
			t.Fatalf("%s: got population row %+v, want 250 agents without unprimed ones", m, row)
		}
		for _, c := range r.Calibration {
			if c.Model == m {
				if want := float64(c.Weight) * 250; math.Abs(float64(row.Counts[c.Persona])-want) > 1 {
					t.Errorf("%s/%s: got %d agents, want about %.1f", m, c.Persona, row.Counts[c.Persona], want)
				}
			}
		}
	}
	found := 0
	for _, vs := range r.ValueStructure {
		if vs.Strategy == "model-specific" {
			found++
			if vs.Agents == 0 || math.IsNaN(float64(vs.ValuesSimilarity)) {
				t.Errorf("model-specific row %+v has no result", vs)
			}
		}
	}
	if found != 2*3 {
		t.Errorf("got %d model-specific value-structure rows, want 6 (2 models × 3 references)", found)
	}

	// The resolved scenario carries the weights, so running it again
	// calibrates nothing and gives the same results.
	resolved, err := os.ReadFile(filepath.Join(out, "scenario.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resolved), "[population.model_specific.primed]") {
		t.Errorf("resolved scenario lacks the calibrated weights:\n%s", resolved)
	}
	sc, err := scenarios.Parse(resolved, "resolved")
	if err != nil {
		t.Fatal(err)
	}
	if sim.NeedsCalibration(sc) {
		t.Error("the resolved scenario still needs a calibration")
	}
}

func TestValidateModelSpecificWithoutCalibration(t *testing.T) {
	out, stderr, code := runCLI(t, "validate", "paper")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate paper: exit %d, %s %s", code, out, stderr)
	}
	sc, err := scenarios.Builtin("paper")
	if err != nil {
		t.Fatal(err)
	}
	p, err := buildPlan(t, sc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range p.Study.Pool.Strategies {
		names = append(names, m.Name)
	}
	if !slices.Contains(names, "model-specific@synthetic-test") || !slices.Contains(names, "h-np") {
		t.Errorf("got members %v, want the four strategies and one model-specific member per model", names)
	}
	if len(p.Study.Notes) == 0 {
		t.Error("no note that the model-specific populations are empty without a calibration")
	}
}
