package scenarios

import (
	"fmt"
	"math/rand/v2"

	"github.com/society-sim/society/population"
)

// StrategyWeights returns the persona weights of strategy s under this population's
// human shares, no-dominant share and custom weights. Model-specific weights
// depend on a model's own results and are not known from the scenario.
func (p Population) StrategyWeights(s population.Strategy) (population.Weights, error) {
	switch s {
	case population.Custom:
		return population.CustomWeights(p.Weights)
	case population.ModelSpecific:
		return population.Weights{}, fmt.Errorf("strategy %s: weights come from a model's results; use population.ModelSpecificWeights", s)
	}
	sh, err := population.HumanShares(p.Shares)
	if err != nil {
		return population.Weights{}, err
	}
	return population.StrategyWeights(s, sh, p.NoDominant)
}

// drawStream separates random persona draws from the other streams derived
// from the scenario seed.
const drawStream = 0x64726177 // "draw"

// Members turns every strategy of the population into persona counts, ready
// for population.NewPool. modelSpecific supplies the weights of the
// model-specific strategy and may be nil when that strategy is not listed.
// With random sampling each strategy gets its own draw, seeded from seed and
// the strategy's position, so the same scenario always draws the same
// counts.
func (p Population) Members(seed uint64, modelSpecific *population.Weights) ([]population.Member, error) {
	out := make([]population.Member, 0, len(p.Strategies))
	for i, s := range p.Strategies {
		var w population.Weights
		var err error
		if s == population.ModelSpecific {
			if modelSpecific == nil {
				return nil, fmt.Errorf("strategy %s: no model-specific weights given", s)
			}
			w = *modelSpecific
		} else if w, err = p.StrategyWeights(s); err != nil {
			return nil, err
		}
		m := population.Member{Name: string(s)}
		if p.Sampling == Random {
			m.Counts = population.Draw(w, p.Size, rand.New(rand.NewPCG(seed, drawStream+uint64(i))))
		} else {
			m.Counts = population.Counts(w, p.Size)
		}
		out = append(out, m)
	}
	return out, nil
}
