package llm

import (
	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Behaviour items of the synthetic respondents.
//
// An item of an instrument that does not measure values (BFI-2, Prosocialness,
// Donation Causes, the Paired Charity Game, the EBQ, the persona statements)
// loads on the ten values through its theory template
// (questionnaires.TheoryTemplate): a persona with dominant value v answers from a
// discretised normal distribution whose mean, on the PVQ's 1–6 latent scale,
// is the scale's midpoint 3.5 plus
//
//	Amplitude · behaviorGain · Template.Loadings()[v]
//
// mapped onto the item's own scale, mirrored for reverse-keyed items, with
// the same fixed per-item offsets and spread as the value items. A persona
// without a dominant value answers around the midpoint, and so does every
// persona on an item whose key has no template.
//
// Because these respondents are built from the very templates that serve as
// the "theory" reference of the Behavior Similarity, their similarity to that
// reference is a ceiling of the pipeline (how much survives sampling,
// scoring and bootstrapping), never a finding about models.
const behaviorGain = 0.75

// testGain scales a persona's pull when its value reaches it only through a
// filled-in test shown as context (agent.StyleTest, the study's "Test Only"
// priming) rather than a value prompt. The synthetic respondents cannot read;
// the factor is an arbitrary stand-in so that the priming modes give
// different numbers on them, not an estimate of how models respond.
const testGain = 0.6

// buildBehavior is build for instruments that do not measure values.
func (s *Synthetic) buildBehavior(in *questionnaires.Instrument) [][]float64 {
	sc := in.Scale
	ratio := float64(sc.Max-sc.Min) / 5
	t := make([][]float64, len(in.Items)*(values.N+1))
	for i, item := range in.Items {
		tpl, ok := questionnaires.TheoryTemplate(in, item.Key)
		load := tpl.Loadings()
		offset := s.ItemSD * normal(s.Seed, uint64(i), hash(in.Name))
		for p := 0; p <= values.N; p++ {
			mu := 3.5
			if ok && p < values.N {
				mu += s.Amplitude * behaviorGain * load[p]
			}
			mu = float64(sc.Min) + (mu+offset-1)*ratio
			if item.Reverse {
				mu = float64(sc.Min+sc.Max) - mu
			}
			t[i*(values.N+1)+p] = discretisedNormal(mu, s.Spread*ratio, sc.Min, sc.Max)
		}
	}
	return t
}

// testRespondent returns the respondents that answer personas primed by a
// test: the same respondents with their pull scaled by testGain, built once.
func (s *Synthetic) testRespondent() *Synthetic {
	s.testOnce.Do(func() {
		s.test = &Synthetic{Seed: s.Seed, Amplitude: s.Amplitude * testGain, Spread: s.Spread, ItemSD: s.ItemSD, Means: s.Means}
	})
	return s.test
}

// askTest answers a persona primed by a test (agent.StyleTest).
func (s *Synthetic) askTest(q *agent.Question) agent.Reply {
	p := q.Persona
	p.Style = agent.StyleDescription
	return agent.Reply{Dist: s.testRespondent().Distribution(q.Instrument, q.Item, p)}
}
