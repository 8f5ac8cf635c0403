package analysis

import (
	"github.com/society-sim/society/population"
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
