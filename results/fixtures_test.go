package results

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// cancelAfter is a context whose Err reports context.Canceled from its
// (n+1)th call on. The analysis polls Err between resamples and tables, so
// this cancels it at an exact point of its work, with no clock involved.
type cancelAfter struct {
	context.Context
	n, calls atomic.Int64
}

func newCancelAfter(n int64) *cancelAfter {
	c := &cancelAfter{Context: context.Background()}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	if c.calls.Add(1) > c.n.Load() {
		return context.Canceled
	}
	return nil
}

// ebqBasic is the refined → basic mapping written out by hand, so that the
// test does not check RefinedToBasic against itself.
var ebqBasic = map[string]string{
	"SDT": "SD", "SDA": "SD", "ST": "ST", "HE": "HE", "AC": "AC", "POD": "PO", "POR": "PO", "FAC": "PO",
	"SEP": "SE", "SES": "SE", "TR": "TR", "COR": "CO", "COI": "CO", "HUM": "TR",
	"UNN": "UN", "UNC": "UN", "UNT": "UN", "BEC": "BE", "BED": "BE",
}

// syntheticRun fills a collector with answers drawn in the test: agent a
// of persona v has latent value z_w = cos(angle v − angle w) + noise; a PVQ
// item of value w is answered 3.5 + 1.2·z_w + noise, an EBQ item of refined
// value r is answered 2 + z_basic(r) + noise, and a BFI-2 Agreeableness item
// 3 ± (z_BE + z_TR)/2 + noise (mirrored when reverse-keyed: people high on
// agreeableness disagree with the reverse-keyed items).
func syntheticRun(t *testing.T, size int) (*analysis.Study, *analysis.Collector) {
	t.Helper()
	var insts []*questionnaires.Instrument
	for _, n := range []string{"pvq40", "ebq", "bfi2"} {
		in, err := questionnaires.Builtin(n)
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, in)
	}
	w, _ := population.StrategyWeights(population.Uniform, population.Shares{}, 0)
	hnp, err := population.HumanShares(population.DefaultShares)
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := population.StrategyWeights(population.HNP, hnp, 0.53)
	pool := population.NewPool([]population.Member{
		{Name: "uniform", Counts: population.Counts(w, size)},
		{Name: "h-np", Counts: population.Counts(wh, size)},
	}, 3)
	var plans []analysis.Plan
	for _, in := range insts {
		items := make([]int, len(in.Items))
		for i := range items {
			items[i] = i
		}
		plans = append(plans, analysis.Plan{Model: "m", Instrument: in, Items: items})
	}
	n := pool.Size()
	col := analysis.NewCollector(n, plans)
	rng := rand.New(rand.NewPCG(5, 6))
	z := make([][values.N]float64, n)
	for a, p := range pool.Persona {
		for _, v := range values.All() {
			z[a][v] = 0.6 * rng.NormFloat64()
			if p.Valid() {
				z[a][v] += math.Cos(p.Angle() - v.Angle())
			}
		}
	}
	clamp := func(x float64, lo, hi int) uint8 {
		r := int(math.Round(x))
		return uint8(max(lo, min(hi, r)) - lo + 1)
	}
	for _, in := range insts {
		for i, it := range in.Items {
			codes := make([]uint8, n)
			for a := range n {
				var x float64
				switch in.Name {
				case "pvq40":
					v, _ := values.Parse(it.Key)
					x = 3.5 + 1.2*z[a][v]
				case "ebq":
					v, _ := values.Parse(ebqBasic[it.Key])
					x = 2 + z[a][v]
				case "bfi2":
					x = 3
					if it.Key == "A" {
						x += (z[a][values.Benevolence] + z[a][values.Tradition]) / 2
					}
					if it.Reverse {
						x = 6 - x
					}
				}
				codes[a] = clamp(x+0.7*rng.NormFloat64(), in.Scale.Min, in.Scale.Max)
			}
			if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: i, Codes: codes}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := &analysis.Study{Name: "t", Seed: 9, Models: []analysis.ModelInfo{{Name: "m", Backend: "test"}}, Pool: pool, Plans: plans,
		References: []string{analysis.DefaultReference}, BootstrapIterations: 30, NullIterations: 99, MainStrategy: "h-np"}
	return st, col
}

func gameStudy(t *testing.T, pairing games.Pairing) *analysis.Study {
	t.Helper()
	probable, decision, err := games.Instruments(15)
	if err != nil {
		t.Fatal(err)
	}
	var a, b [values.N + 1]int
	for i := range a {
		a[i], b[i] = 20, 30
	}
	b[values.N] = 5 // fewer unprimed players than the pool holds
	pool := population.NewPool([]population.Member{{Name: "uniform", Counts: a}, {Name: "custom", Counts: b}}, 3)
	member, ok := analysis.StrategyMember(pool, "custom", "m")
	if !ok {
		t.Fatal("no custom member")
	}
	g := analysis.CharityGame{Model: "m", Strategy: "custom", Member: member, Probable: probable, Decision: decision,
		Config: games.Config{Rounds: 6, Endowment: 15, Pairing: pairing, Memory: 2, Neighbours: 4, Rewire: 0.1, Seed: 9}}
	st := &analysis.Study{Name: "g", Seed: 9, Models: []analysis.ModelInfo{{Name: "m", Backend: "synthetic", Synthetic: true}}, Pool: pool,
		Games: []analysis.CharityGame{g}, BootstrapIterations: 10, BootstrapSize: 10}
	st.Plans = g.AllPlans()
	return st
}

// gameBatches answers every round of the study's game in shards of 37
// agents: contributions that depend on the persona, drawn from a seed.
func gameBatches(st *analysis.Study) []*agent.Batch {
	g := st.Games[0]
	n := st.Pool.Size()
	r := rand.New(rand.NewPCG(5, 5))
	var out []*agent.Batch
	for round := 1; round <= g.Config.Rounds; round++ {
		for shard, first := 0, 0; first < n; shard, first = shard+1, first+37 {
			size := min(37, n-first)
			p := &agent.Batch{Model: "m", Instrument: g.Probable.Name, Round: round, Shard: shard, First: first, Codes: make([]uint8, size)}
			d := &agent.Batch{Model: "m", Instrument: g.Decision.Name, Round: round, Shard: shard, First: first, Codes: make([]uint8, size)}
			for i := range size {
				v := st.Pool.Persona[first+i]
				bias := 0.3
				if v == values.Universalism || v == values.Benevolence {
					bias = 0.8
				}
				p.Codes[i] = uint8(1 + r.IntN(7))
				d.Codes[i] = 1
				if r.Float64() < bias {
					d.Codes[i] = 2
				}
				if r.IntN(50) == 0 {
					d.Codes[i] = 0
					d.Invalid = append(d.Invalid, agent.Invalid{Agent: first + i, Raw: "?", Reason: "unreadable"})
				}
			}
			out = append(out, p, d)
		}
	}
	return out
}
