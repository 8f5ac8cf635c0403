package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// recorder is a fake model: it answers every item with a distribution
// peaked on (value index mod points) and records the questions it got.
type recorder struct {
	mu  sync.Mutex
	got []agent.Question
}

func (r *recorder) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	r.mu.Lock()
	r.got = append(r.got, *q)
	r.mu.Unlock()
	points := q.Instrument.Scale.Points()
	d := make([]float64, points)
	peak := 0
	if q.Persona.Value.Valid() {
		peak = (int(q.Persona.Value) + q.Item) % points
	}
	for k := range d {
		d[k] = 0.5 / float64(points-1)
	}
	d[peak] = 0.5
	return agent.Reply{Dist: d}, nil
}

func TestTestPrimed(t *testing.T) {
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	bfi, _ := questionnaires.Builtin("bfi2")
	for _, mode := range []scenarios.Priming{scenarios.TestOnly, scenarios.PrimingAndTest} {
		t.Run(string(mode), func(t *testing.T) {
			rec := &recorder{}
			m := &testPrimed{inner: rec, mode: mode, style: agent.StyleName, pvq: pvq, samples: 1}
			ctx := context.Background()
			for range 3 {
				q := &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleName}, Instrument: bfi, Item: 4}
				if _, err := m.Ask(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			var fill, asked []agent.Question
			for _, q := range rec.got {
				if q.Instrument == pvq {
					fill = append(fill, q)
				} else {
					asked = append(asked, q)
				}
			}
			if len(fill) != len(pvq.Items) {
				t.Errorf("got %d fill-in questions for three asks, want %d (the test is filled in once per value)", len(fill), len(pvq.Items))
			}
			for _, q := range fill {
				if q.Persona.Style != agent.StyleName || q.Persona.Value != values.Power || q.Context != "" {
					t.Fatalf("fill-in question: got persona %+v, context %q; want the value-prompted model, no context", q.Persona, q.Context)
				}
			}
			if len(asked) != 3 {
				t.Fatalf("got %d questions passed on, want 3", len(asked))
			}
			q := asked[0]
			// Item 1 of the PVQ is answered with the recorder's peak:
			// (Power=4 + item index 0) mod 6 = 4 → answer 5 on the 1..6 scale.
			wantLine := "1. " + pvq.Items[0].Text + "\n   Your answer: 5 (" + pvq.Scale.Label(5) + ")"
			if !strings.Contains(q.Context, wantLine) {
				t.Errorf("context lacks %q:\n%s", wantLine, q.Context)
			}
			wantStyle := agent.StyleName
			if mode == scenarios.TestOnly {
				wantStyle = agent.StyleTest
			}
			if q.Persona.Style != wantStyle {
				t.Errorf("got style %q, want %q", q.Persona.Style, wantStyle)
			}
			prompt := agent.Render(&q)
			if (prompt.System == "") != (mode == scenarios.TestOnly) {
				t.Errorf("mode %s: got system prompt %q", mode, prompt.System)
			}
			if !strings.Contains(prompt.User, "Earlier, you filled in the questionnaire below") {
				t.Errorf("the rendered prompt does not show the test:\n%s", prompt.User)
			}

			// An unprimed agent is asked as it is.
			before := len(rec.got)
			if _, err := m.Ask(ctx, &agent.Question{Persona: agent.Persona{Value: values.None, Style: agent.StyleName}, Instrument: bfi}); err != nil {
				t.Fatal(err)
			}
			if got := rec.got[before]; got.Context != "" || len(rec.got) != before+1 {
				t.Errorf("unprimed agent: got context %q and %d calls, want none and 1", got.Context, len(rec.got)-before)
			}
			// A game's memory stays after the test.
			mem := &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleName}, Instrument: bfi, Context: "Last round you kept."}
			if _, err := m.Ask(ctx, mem); err != nil {
				t.Fatal(err)
			}
			if last := rec.got[len(rec.got)-1]; !strings.HasSuffix(last.Context, "\n\nLast round you kept.") {
				t.Errorf("got context ending %q, want the memory after the test", last.Context[max(0, len(last.Context)-40):])
			}
		})
	}
}

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
	if needsCalibration(sc) {
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
	p, err := buildPlan(sc, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range p.study.Pool.Strategies {
		names = append(names, m.Name)
	}
	if !slices.Contains(names, "model-specific@synthetic-test") || !slices.Contains(names, "h-np") {
		t.Errorf("got members %v, want the four strategies and one model-specific member per model", names)
	}
	if len(p.study.Notes) == 0 {
		t.Error("no note that the model-specific populations are empty without a calibration")
	}
}
