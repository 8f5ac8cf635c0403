// Package llm owns the model backends behind agent.Model: the built-in
// synthetic respondents, the OpenAI-compatible client and the response
// cache, with the cache's command-line options (CacheFlags). The fake
// server that serves the synthetic respondents over HTTP is
// llm/modelserver. It imports the domain packages (never analysis or
// results: the synthetic respondents take their theory templates from
// questionnaires) and never another adapter (bus, metrics).
package llm

import (
	"context"
	"maps"
	"math"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Synthetic is the built-in respondent: a generative psychometric model, not
// a language model. Every output it produces is labelled synthetic.
//
// For a persona with dominant value v and an item keyed to value w it answers
// from a discretised normal distribution on the item's scale whose mean is the
// human mean of w plus Amplitude·cos(angle(v) − angle(w)) scale points: the
// closer w lies to v on the motivational circle, the higher the expected
// answer (Schwartz 1992). A persona without a dominant value answers around the
// human means. Each item also gets a small fixed offset drawn from the seed,
// so that items of one value are not identical. Answers are exact
// distributions: agents draw their own answers from them, which makes the
// backend deterministic and cheap (a table look-up per answer). Items of
// instruments that measure no values (traits, behaviours, games) load on the
// values through theory templates instead: see synthetic_behavior.go.
type Synthetic struct {
	Seed      uint64
	Amplitude float64           // scale points added at the persona's own value
	Spread    float64           // standard deviation of answers, in scale points
	ItemSD    float64           // standard deviation of the fixed per-item offsets
	Means     [values.N]float64 // human value means on the 1–6 PVQ scale

	// tables maps an instrument to its distributions, [item*(N+1)+persona].
	// Every answer reads it, from every agent goroutine at once, so reads
	// take no lock: a new instrument's table is added to a copy of the map
	// under mu and the copy is published.
	mu     sync.Mutex
	tables atomic.Pointer[map[*questionnaires.Instrument][][]float64]

	// test answers personas primed by a filled-in test (synthetic_behavior.go).
	testOnce sync.Once
	test     *Synthetic

	// games memoises Paired Charity Game rounds (synthetic_game.go).
	games sync.Map
}

// SyntheticName labels every result produced by the synthetic backend.
const SyntheticName = "synthetic"

// NewSynthetic returns synthetic respondents with the default parameters and
// the given human value means (population.HumanMeans).
func NewSynthetic(seed uint64, means [values.N]float64) *Synthetic {
	return &Synthetic{Seed: seed, Amplitude: 1.6, Spread: 0.9, ItemSD: 0.25, Means: means}
}

var _ agent.Model = (*Synthetic)(nil)

// Ask returns the answer distribution of the question's persona.
func (s *Synthetic) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	// Only game rounds enter askGame: its large frame would otherwise grow
	// the stack of every agent goroutine on its first questionnaire item.
	if q.Game != nil {
		if r, ok := s.askGame(q); ok {
			return r, nil
		}
	}
	if q.Persona.Style == agent.StyleTest && q.Persona.Value.Valid() {
		return s.askTest(q), nil
	}
	t := s.table(q.Instrument)
	return agent.Reply{Dist: t[q.Item*(values.N+1)+personaIndex(q.Persona)]}, nil
}

// Distribution is the distribution Ask would return, for callers that hold
// no Question (the model server).
func (s *Synthetic) Distribution(in *questionnaires.Instrument, item int, p agent.Persona) []float64 {
	return s.table(in)[item*(values.N+1)+personaIndex(p)]
}

func personaIndex(p agent.Persona) int {
	if !p.Value.Valid() || p.Style == agent.StyleNone {
		return values.N
	}
	return int(p.Value)
}

func (s *Synthetic) table(in *questionnaires.Instrument) [][]float64 {
	if m := s.tables.Load(); m != nil {
		if t, ok := (*m)[in]; ok {
			return t
		}
	}
	return s.addTable(in)
}

func (s *Synthetic) addTable(in *questionnaires.Instrument) [][]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tables.Load()
	if old != nil {
		if t, ok := (*old)[in]; ok {
			return t
		}
	}
	m := make(map[*questionnaires.Instrument][][]float64, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	t := s.build(in)
	m[in] = t
	s.tables.Store(&m)
	return t
}

func (s *Synthetic) build(in *questionnaires.Instrument) [][]float64 {
	if in.Kind != questionnaires.KindValues {
		return s.buildBehavior(in)
	}
	sc := in.Scale
	// Scale the PVQ's 1–6 latent onto the instrument's own scale.
	ratio := float64(sc.Max-sc.Min) / 5
	t := make([][]float64, len(in.Items)*(values.N+1))
	for i, item := range in.Items {
		w, err := values.Parse(item.Key)
		offset := s.ItemSD * normal(s.Seed, uint64(i), hash(in.Name))
		for p := 0; p <= values.N; p++ {
			var mu float64
			if err == nil && w.Valid() {
				mu = s.Means[w]
				if p < values.N {
					mu += s.Amplitude * math.Cos(values.Value(p).Angle()-w.Angle())
				}
			} else {
				// Items that measure no basic value get a neutral mean.
				mu = 3.5
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

// discretisedNormal gives P(answer = x) for x in [lo, hi], the mass of a
// normal(mu, sd) between x−½ and x+½ with the tails folded into the ends.
func discretisedNormal(mu, sd float64, lo, hi int) []float64 {
	out := make([]float64, hi-lo+1)
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-(x-mu)/(sd*math.Sqrt2)) }
	prev := 0.0
	for x := lo; x <= hi; x++ {
		c := 1.0
		if x < hi {
			c = cdf(float64(x) + 0.5)
		}
		out[x-lo] = c - prev
		prev = c
	}
	return out
}

// normal is a deterministic standard normal deviate from the keys
// (Box–Muller on two hashed uniforms).
func normal(seed uint64, keys ...uint64) float64 {
	u1 := agent.Uniform(seed, append(keys, 1)...)
	u2 := agent.Uniform(seed, append(keys, 2)...)
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
