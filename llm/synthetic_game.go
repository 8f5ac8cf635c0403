package llm

import (
	"math"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// Keys of the Paired Charity Game's instruments.
const (
	probableKey = "charity"
	decisionKey = "charity_decision"
)

// The synthetic respondents' Paired Charity Game. Like the rest of the
// synthetic backend this is a generative model with documented parts, not a
// language model, and its results say so.
//
// Probable choice (1 keep … 4 can't decide … 7 donate): a discretised
// normal distribution with standard deviation GameSpread around
//
//	μ = GameCentre
//	  + GameValue · cos(angle(v) − angle of the Self-Transcendence pole)
//	  + GameReciprocity · Σ_j ½^(j−1) · s_j
//	  + GameRate · 2 · (rate − ½)            (when the rate is shown)
//
// The value term carries the study's human finding (contributing rises
// with Universalism and Benevolence and falls with Power, Achievement and
// Hedonism; Yehudai, Rozen, Gera et al., arXiv 2605.30036) in the
// sinusoidal form value–behaviour relations take around the motivational
// circle (Schwartz 1992): it is largest at UN and BE, smallest at AC and
// PO, and zero for a persona without a dominant value. The reciprocity
// term is conditional cooperation (Fischbacher, Gächter & Fehr 2001,
// "Are people conditionally cooperative?", Economics Letters 71): s_j is
// +1 when the partner of the round j rounds ago contributed, −1 when it
// kept, 0 when the agent sat out or the partner made no valid decision,
// and older rounds weigh half as much as each newer one. The rate term
// lets the population's last cooperation rate, when shown, pull the same
// way. Only what the agent's prompt shows (its memory window and the rate)
// enters, so equal prompts get equal answers.
//
// Final decision: consistent with the probable choice p the agent gave a
// moment before, P(contribute) = (p − 1)/6: 1 always keeps, 7 always
// contributes, 4 is a coin flip. Asked without a stated probable choice,
// the decision takes the same rule averaged over the probable-choice
// distribution. Agents draw from these distributions with their own seeds,
// so the answers are deterministic for the same seed and inputs.
const (
	GameCentre      = 4.0
	GameValue       = 1.6
	GameReciprocity = 1.0
	GameRate        = 1.0
	GameSpread      = 1.3
)

type gameKey struct {
	persona  int
	decision bool
	round    agent.Round
}

// askGame answers the questions of a Paired Charity Game round (a
// question with Game set); ok is false for any other question, including
// the game's instruments asked as a plain questionnaire, which the
// behaviour templates answer (synthetic_behavior.go). Distributions are
// memoised by persona and what the agent sees (a round has few distinct
// prompts); agents only read them.
func (s *Synthetic) askGame(q *agent.Question) (agent.Reply, bool) {
	if q.Game == nil || q.Item < 0 || q.Item >= len(q.Instrument.Items) {
		return agent.Reply{}, false
	}
	key := q.Instrument.Items[q.Item].Key
	if key != probableKey && key != decisionKey {
		return agent.Reply{}, false
	}
	k := gameKey{persona: personaIndex(q.Persona), decision: key == decisionKey, round: *q.Game}
	if !k.decision {
		k.round.Probable = 0
	}
	if d, ok := s.games.Load(k); ok {
		return agent.Reply{Dist: d.([]float64)}, true
	}
	d := gameDist(k)
	if q.Instrument.Scale.Points() != len(d) {
		return agent.Reply{}, false
	}
	s.games.Store(k, d)
	return agent.Reply{Dist: d}, true
}

// GameMean is the mean of the probable-choice distribution before
// discretisation, for a persona and what it sees.
func GameMean(p agent.Persona, r agent.Round) float64 {
	mu := GameCentre
	if i := personaIndex(p); i < values.N {
		pole := (values.Benevolence.Angle() + values.Universalism.Angle()) / 2
		mu += GameValue * math.Cos(values.Value(i).Angle()-pole)
	}
	w := 1.0
	for ago := 1; ago <= r.Memory.Len(); ago++ {
		own, partner := r.Memory.At(ago)
		if own != agent.NoChoice {
			switch partner {
			case agent.Contributed:
				mu += GameReciprocity * w
			case agent.Kept:
				mu -= GameReciprocity * w
			}
		}
		w /= 2
	}
	if r.RateShown {
		mu += GameRate * 2 * (float64(r.Rate)/100 - 0.5)
	}
	return mu
}

func gameDist(k gameKey) []float64 {
	persona := agent.Persona{Value: values.None}
	if k.persona < values.N {
		persona.Value = values.Value(k.persona)
	}
	probable := discretisedNormal(GameMean(persona, k.round), GameSpread, 1, 7)
	if !k.decision {
		return probable
	}
	pc := 0.0
	if p := k.round.Probable; p >= 1 && p <= 7 {
		pc = float64(p-1) / 6
	} else {
		for i, w := range probable {
			pc += w * float64(i) / 6
		}
	}
	return []float64{1 - pc, pc}
}
