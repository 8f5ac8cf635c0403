package analysis

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// testResampler resamples a pool of n unprimed agents held by one strategy.
func testResampler(n int, seed uint64) *resampler {
	var m population.Member
	m.Name = "all"
	m.Counts[values.N] = n // the unprimed agents
	st := &Study{Pool: population.NewPool([]population.Member{m}, seed), Seed: seed}
	return st.resampler()
}

// TestInferenceOracle checks the percentile and BC intervals and the
// permutation p-value against NumPy/SciPy on the same fixed inputs
// (testdata/inference_oracle.py wrote testdata/inference_oracle.json).
func TestInferenceOracle(t *testing.T) {
	b, err := os.ReadFile("testdata/inference_oracle.json")
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Boot       []*float64         `json:"boot"`
		Observed   float64            `json:"observed"`
		Null       []float64          `json:"null"`
		Mean       float64            `json:"mean"`
		Percentile [2]float64         `json:"percentile"`
		BC         [2]float64         `json:"bc"`
		PermP      map[string]float64 `json:"perm_p"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	boot := make([]float64, len(o.Boot))
	for i, x := range o.Boot {
		boot[i] = math.NaN()
		if x != nil {
			boot[i] = *x
		}
	}
	s := Summarise(boot)
	if math.Abs(s.Mean-o.Mean) > 1e-12 || math.Abs(s.CI95[0]-o.Percentile[0]) > 1e-12 || math.Abs(s.CI95[1]-o.Percentile[1]) > 1e-12 {
		t.Errorf("percentile: got mean %v %v, want %v %v", s.Mean, s.CI95, o.Mean, o.Percentile)
	}
	if bc := BCInterval(o.Observed, boot, 0.025); math.Abs(bc[0]-o.BC[0]) > 1e-9 || math.Abs(bc[1]-o.BC[1]) > 1e-9 {
		t.Errorf("BC: got %v, want %v", bc, o.BC)
	}
	for obs, want := range o.PermP {
		x, _ := strconv.ParseFloat(obs, 64)
		p, res := PermutationP(x, o.Null)
		if math.Abs(p-want) > 1e-12 || res != 1.0/100 {
			t.Errorf("permutation p at %v: got %v (resolution %v), want %v (0.01)", x, p, res, want)
		}
	}
}

// randomStudy is a study of agents answering the PVQ-40 uniformly at
// random.
func randomStudy(t *testing.T, agents int, seed uint64) (*Study, *Collector) {
	t.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	var m population.Member
	m.Name = "random"
	m.Counts[values.N] = agents
	pool := population.NewPool([]population.Member{m}, seed)
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	plans := []Plan{{Model: "m", Instrument: in, Items: items}}
	col := NewCollector(agents, plans)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range in.Items {
		codes := make([]uint8, agents)
		for a := range codes {
			codes[a] = uint8(1 + rng.IntN(in.Scale.Points()))
		}
		if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: i, Codes: codes}); err != nil {
			t.Fatal(err)
		}
	}
	return &Study{Name: "random", Seed: seed, Models: []ModelInfo{{Name: "m", Backend: "test"}}, Pool: pool, Plans: plans,
		References: []string{"pvq40_smacof_mrat", "gss2012_mrat", "ess_sweden_mrat"}, BootstrapIterations: 50, NullIterations: 199}, col
}

// TestRandomRespondersNotSignificant: 400 agents answering every item at
// random reach a values similarity well above 0 (the MRAT centring alone
// gives structure), which the study's t-test calls significant (p about
// 1e-16); against the permutation null they are not. A valid test still
// rejects 5% of random populations at 0.05, so the test fixes one
// population (seed 1); the p-values of others are spread over [0, 1].
func TestRandomRespondersNotSignificant(t *testing.T) {
	for _, seed := range []uint64{1} {
		st, col := randomStudy(t, 400, seed)
		out, err := st.Compute(context.Background(), col)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Results.ValueStructure {
			t.Logf("seed %d %s: similarity %.3f, null %.3f [%.3f, %.3f], random %.3f, p %v, paper t-test p %v", seed, r.Reference,
				r.ValuesSimilarity, r.NullMean, r.NullCI95[0], r.NullCI95[1], r.RandomMean, r.PValue, r.PValuePaperTTest)
			if !(r.PValue > 0.05) {
				t.Errorf("seed %d %s: got p %v, want > 0.05 for random answers", seed, r.Reference, r.PValue)
			}
		}
	}
}

// TestSyntheticSignificant: respondents with value structure get the
// smallest p-value the permutations can show, labelled with it.
func TestSyntheticSignificant(t *testing.T) {
	st, col := syntheticRun(t, 600)
	st.BootstrapIterations, st.NullIterations = 50, 199
	out, err := st.Compute(context.Background(), col)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Results.ValueStructure {
		if r.PValue != 1.0/200 || r.PValueResolution != 1.0/200 {
			t.Errorf("%s/%s: got p %v (resolution %v), want 1/200", r.Strategy, r.Reference, r.PValue, r.PValueResolution)
		}
		if !(r.CI95[0] <= r.ValuesSimilarity && r.ValuesSimilarity <= r.CI95[1]) {
			t.Errorf("%s/%s: similarity %v outside its interval %v", r.Strategy, r.Reference, r.ValuesSimilarity, r.CI95)
		}
	}
	// H-NP against Uniform, paired on the agents the strategies share.
	found := 0
	obs := map[string]float64{}
	for _, r := range out.Results.ValueStructure {
		obs[r.Strategy+r.Reference] = float64(r.ValuesSimilarity)
	}
	for _, c := range out.Results.Comparisons {
		if c.Measure != "values_similarity" || c.Factor != "strategy" {
			continue
		}
		found++
		if c.A != "h-np" || c.B != "uniform" || c.Resamples != 50 {
			t.Errorf("comparison %+v: want h-np − uniform over 50 resamples", c)
		}
		if want := obs["h-np"+c.Reference] - obs["uniform"+c.Reference]; math.Abs(float64(c.Difference)-want) > 1e-12 {
			t.Errorf("difference: got %v, want %v", c.Difference, want)
		}
		if !(c.CI95[0] <= c.CI95[1]) {
			t.Errorf("interval %v", c.CI95)
		}
	}
	if found != 1 {
		t.Errorf("got %d strategy comparisons of values similarity, want 1", found)
	}
}

// TestResamplerPaired: the whole-population resample keeps each
// persona's count, and strategies that share agents share draws.
func TestResamplerPaired(t *testing.T) {
	var a, b population.Member
	a.Name, b.Name = "a", "b"
	a.Counts[0], a.Counts[values.N] = 50, 100
	b.Counts[0], b.Counts[values.N] = 100, 100
	st := &Study{Pool: population.NewPool([]population.Member{a, b}, 4), Seed: 4}
	rs := st.resampler()
	for it := range 20 {
		da, db := rs.draw(it, 0, nil), rs.draw(it, 1, nil)
		if len(da) != 150 || len(db) != 200 {
			t.Fatalf("sizes: got %d and %d, want 150 and 200", len(da), len(db))
		}
		ca, cb := map[int]int{}, map[int]int{}
		for _, x := range da {
			if !st.Pool.In(0, x) {
				t.Fatalf("agent %d drawn for a, not one of its agents", x)
			}
			ca[x]++
		}
		for _, x := range db {
			cb[x]++
		}
		// The unprimed agents are the same 100 in both: same draws.
		for x, n := range ca {
			if st.Pool.Persona[x] == values.None && cb[x] != n {
				t.Fatalf("iteration %d: unprimed agent %d drawn %d times for a, %d for b", it, x, n, cb[x])
			}
		}
	}
}

// TestBootstrapCoverageValues measures the coverage of the 95% BC interval
// of the whole-population bootstrap of Values Similarity on a known
// population: agents on the value circle plus noise (about as strong a
// structure as the synthetic respondents'), whose similarity is taken from
// 400,000 agents. It takes minutes, so it runs only with
// SOCIETY_COVERAGE=1 (METHODS.md reports its figure, and how weaker
// structure loses coverage).
func TestBootstrapCoverageValues(t *testing.T) {
	if testing.Short() || os.Getenv("SOCIETY_COVERAGE") == "" {
		t.Skip("set SOCIETY_COVERAGE=1 to measure coverage")
	}
	human, _ := LookupReference(DefaultReference)
	rng := rand.New(rand.NewPCG(31, 32))
	draw := func(n int) [][values.N]float64 {
		rows := make([][values.N]float64, n)
		for i := range rows {
			a := 2 * math.Pi * rng.Float64()
			for j, v := range values.All() {
				rows[i][j] = math.Cos(a-v.Angle()) + 0.7*rng.NormFloat64()
			}
		}
		return rows
	}
	all := draw(400_000)
	acc := NewCorrAccumulator(values.N)
	for i := range all {
		acc.Add(all[i][:])
	}
	truth, err := ValuesSimilarity(acc.Corr(), human.R)
	if err != nil {
		t.Fatal(err)
	}
	const reps, n, iterations = 300, 500, 400
	rs := testResampler(n, 7)
	covBC, covPct := 0, 0
	for range reps {
		rows := draw(n)
		acc.Reset()
		for i := range rows {
			acc.Add(rows[i][:])
		}
		obs, _ := ValuesSimilarity(acc.Corr(), human.R)
		boot := nanSlice(iterations)
		_ = parallel(context.Background(), iterations, func(b int) {
			a := NewCorrAccumulator(values.N)
			for _, i := range rs.draw(b, 0, nil) {
				a.Add(rows[i][:])
			}
			if s, err := ValuesSimilarity(a.Corr(), human.R); err == nil {
				boot[b] = s
			}
		})
		rs.seed++ // fresh resamples for the next sample
		if bc := ReportedInterval(obs, boot); bc[0] <= truth && truth <= bc[1] {
			covBC++
		}
		if p := Summarise(boot).CI95; p[0] <= truth && truth <= p[1] {
			covPct++
		}
	}
	t.Logf("truth %.4f; %d samples of %d agents, %d resamples: BC coverage %.3f, percentile %.3f", truth, reps, n, iterations,
		float64(covBC)/reps, float64(covPct)/reps)
	if float64(covBC)/reps < 0.93 {
		t.Errorf("BC coverage %.3f, want >= 0.93", float64(covBC)/reps)
	}
}
