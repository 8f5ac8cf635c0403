package analysis

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
)

// pvqOutput is a results directory's input for size agents answering the
// PVQ-40 at random, every 97th answer invalid, in shards of 1,000 agents.
func pvqOutput(tb testing.TB, size int) *Output {
	tb.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		tb.Fatal(err)
	}
	hnp, err := population.HumanShares(population.DefaultShares)
	if err != nil {
		tb.Fatal(err)
	}
	w, _ := population.StrategyWeights(population.HNP, hnp, 0.53)
	pool := population.NewPool([]population.Member{{Name: "h-np", Counts: population.Counts(w, size)}}, 3)
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	plans := []Plan{{Model: "m", Instrument: in, Items: items}}
	col := NewCollector(size, plans)
	rng := rand.New(rand.NewPCG(1, 2))
	for first := 0; first < size; first += 1000 {
		n := min(1000, size-first)
		for it := range items {
			codes := make([]uint8, n)
			for i := range codes {
				if (first+i+it)%97 != 0 {
					codes[i] = uint8(1 + rng.IntN(6))
				}
			}
			if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: it, Shard: first / 1000, First: first, Codes: codes}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return &Output{Outcome: &Outcome{}, Collector: col, Study: &Study{Name: "t", Pool: pool, Plans: plans}}
}

// BenchmarkCollectorAdd stores one batch of 4,096 answers (one shard, one
// item) into the agent-major sheet. Reported per answer.
func BenchmarkCollectorAdd(b *testing.B) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		b.Fatal(err)
	}
	const shard, shards = 4096, 64
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	plans := []Plan{{Model: "m", Instrument: in, Items: items}}
	codes := make([]uint8, shard)
	for i := range codes {
		codes[i] = uint8(1 + i%6)
	}
	col := NewCollector(shard*shards, plans)
	i := 0
	for b.Loop() {
		// Batches are told apart by shard and item; a new collector is
		// made when every one has been stored.
		s, it := i%shards, (i/shards)%len(items)
		if i > 0 && s == 0 && it == 0 {
			b.StopTimer()
			col = NewCollector(shard*shards, plans)
			b.StartTimer()
		}
		if err := col.Add(&agent.Batch{Model: "m", Instrument: "pvq40", Item: it, Shard: s, First: s * shard, Codes: codes}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*shard), "ns/answer")
}

// BenchmarkComputePVQ is the whole analysis of 20,000 agents' PVQ-40:
// scores, correlations, MDS and Procrustes against three references, and
// the study's bootstrap (100 resamples of 500).
func BenchmarkComputePVQ(b *testing.B) {
	o := pvqOutput(b, 20000)
	st := o.Study
	st.References = []string{"pvq40_smacof_mrat", "gss2012_mrat", "ess_sweden_mrat"}
	st.BootstrapIterations, st.BootstrapSize = 100, 500
	for b.Loop() {
		if _, err := st.Compute(context.Background(), o.Collector); err != nil {
			b.Fatal(err)
		}
	}
}
