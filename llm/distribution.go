package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// This file is distribution mode: one request per distinct prompt for
// the answer token's log-probabilities, read as a distribution over the
// scale's options that agents draw their answers from.

// distEntry is a cached distribution-mode reply.
type distEntry struct {
	Dist     []float64 `json:"dist,omitempty"`
	Coverage float64   `json:"coverage"`
	Fallback bool      `json:"fallback,omitempty"`
	Reason   string    `json:"reason,omitempty"` // why sampled instead
}

func (c *Client) askDist(ctx context.Context, q *agent.Question, p agent.Prompt, mk memoKey) (agent.Reply, error) {
	e, hit, err := c.distOf(ctx, q, p)
	if err != nil {
		if ctx.Err() != nil || !errors.Is(err, ErrUnavailable) {
			return agent.Reply{}, err
		}
		// The log-probability request kept failing although the
		// endpoint may still sample (a server overloaded by logprobs
		// only). The question is sampled instead; nothing was stored
		// for the prompt, so a later run asks for its distribution
		// again.
		c.stats.fallbacks.Add(1)
		c.stats.fallbackErrors.Add(1)
		c.warnOnce("dist-error", "distribution request failed; sampling this question instead (not cached)", "err", err)
		a, err := c.askSample(ctx, q, p)
		return agent.Reply{Answer: a}, err
	}
	c.distFetched(mk)
	// A fallback is kept too: without a cache, the next agent would
	// otherwise ask for the distribution again.
	m := c.remember(mk, &memoEntry{dist: e.Dist, stored: hit, fallback: e.Fallback, elsewhere: !hit && c.distElsewhere(p),
		coverage: e.Coverage, noAlternatives: e.Reason == fallbackNoAlternatives})
	c.useDist(m)
	if e.Fallback {
		a, err := c.askSample(ctx, q, p)
		return agent.Reply{Answer: a}, err
	}
	return agent.Reply{Dist: e.Dist}, nil
}

// distElsewhere reports whether the distribution of prompt p was fetched
// in this run by another process sharing the cache's flights.
func (c *Client) distElsewhere(p agent.Prompt) bool {
	return c.cfg.Cache != nil && c.cfg.Cache.Elsewhere(c.cacheKey(p, "dist"))
}

// distOf returns the distribution-mode entry of prompt p: from the store
// (hit), or fetched and stored. However many callers ask for a prompt at
// once, one request is made.
func (c *Client) distOf(ctx context.Context, q *agent.Question, p agent.Prompt) (e distEntry, hit bool, err error) {
	points := q.Instrument.Scale.Points()
	key := c.cacheKey(p, "dist")
	fetch := func(ctx context.Context) ([]byte, error) {
		// Runs once per prompt however many agents wait for it: the one
		// miss that costs a call.
		if c.cfg.Cache != nil {
			c.doer.obs.CacheLookup(c.doer.model, false)
		}
		e, err := c.fetchDist(ctx, q, p)
		if err != nil {
			return nil, err
		}
		c.fetched.Store(key, struct{}{})
		return json.Marshal(e)
	}
	var raw []byte
	if c.cfg.Cache != nil {
		raw, hit, err = c.cfg.Cache.Do(ctx, key, func(b []byte) bool {
			var e distEntry
			return json.Unmarshal(b, &e) == nil && (e.Fallback || len(e.Dist) == points)
		}, fetch)
		// A hit is counted as a call saved by the first answer the
		// reply serves (useDist), not at every lookup; a reply this
		// client fetched itself is no hit, whichever agent reads it
		// first from the store.
		if _, ours := c.fetched.Load(key); hit && ours {
			hit = false
		}
	} else {
		// Without a cache, concurrent agents asking the same prompt
		// still share one request. The distribution is remembered before
		// the request's flight ends, and a flight starts by looking, so
		// that a caller that missed the memory just before another's
		// flight ended makes no second request.
		mk := memoKey{q.Persona, q.Instrument, q.Item, q.Context}
		raw, err = c.dists.do(ctx, key, func() ([]byte, error) {
			if m, ok := c.remembered(mk); ok {
				// A fallback stays one: its dist is nil.
				return json.Marshal(distEntry{Dist: m.dist, Fallback: m.fallback})
			}
			b, err := fetch(ctx)
			var e distEntry
			if err == nil && json.Unmarshal(b, &e) == nil && !e.Fallback {
				c.remember(mk, &memoEntry{dist: e.Dist})
			}
			return b, err
		})
	}
	if err != nil {
		return distEntry{}, hit, err
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return distEntry{}, hit, fmt.Errorf("cached distribution: %w", err)
	}
	return e, hit, nil
}

// Reasons a distribution-mode question is sampled instead, kept in the
// cached entry.
const (
	fallbackLowCoverage    = "low coverage"
	fallbackNoAlternatives = "no alternatives"
)

// fetchDist asks for one token with its top log-probabilities and turns
// them into a distribution over the scale's options. A reply without
// alternatives for the first token (no logprobs, or an empty top_logprobs)
// cannot give a distribution, nor can one whose options cover less than
// MinCoverage: both are sampled instead.
func (c *Client) fetchDist(ctx context.Context, q *agent.Question, p agent.Prompt) (distEntry, error) {
	sc := q.Instrument.Scale
	var (
		alts []alt
		ok   bool
	)
	seed := seedFor(c.cfg.Seed, p, 0, false)
	if c.cfg.Endpoint == EndpointCompletions {
		req := c.completionRequest(completionPrompt(p), 1, 1)
		req.logprobs = c.topLogprobs()
		resp, err := c.complete(ctx, req, q, seed)
		if err != nil {
			return distEntry{}, err
		}
		alts, ok = completionAlternatives(resp)
	} else {
		req := c.chatRequest(chatMessages(p), 1, 1)
		req.logprobs = true
		req.topLogprobs = c.topLogprobs()
		resp, err := c.chat(ctx, req, q, seed)
		if err != nil {
			return distEntry{}, err
		}
		alts, ok = chatAlternatives(resp)
	}
	if !ok {
		c.stats.countDist(0, true, true)
		c.warnOnce("no-alternatives", "the server returned no alternatives (top_logprobs) for the answer token of a prompt; "+
			"each such question is sampled instead, and the results count them as fallbacks (said once; if it is every prompt, "+
			"mode = \"sample\" avoids the extra request)")
		return distEntry{Fallback: true, Reason: fallbackNoAlternatives}, nil
	}
	temp := 1.0
	if c.cfg.Temperature != nil {
		temp = *c.cfg.Temperature
	}
	dist, coverage := optionDist(alts, sc.Min, sc.Max, temp)
	fallback := coverage < c.cfg.MinCoverage || dist == nil
	c.stats.countDist(coverage, false, fallback)
	c.doer.obs.Coverage(c.doer.model, coverage)
	if fallback {
		c.warnOnce("low-coverage", "the answer options cover too little of the answer token's probability for a prompt; each question below the threshold is sampled instead, and the results count them as fallbacks (said once)",
			"coverage", coverage, "min_coverage", c.cfg.MinCoverage)
		return distEntry{Coverage: coverage, Fallback: true, Reason: fallbackLowCoverage}, nil
	}
	return distEntry{Dist: dist, Coverage: coverage}, nil
}

// topLogprobs is the number of alternatives asked for per token.
func (c *Client) topLogprobs() int { return distLogprobs }

// optionDist collects the log-probabilities of the alternatives that spell
// an option ("4", " 4", "Ġ4", "▁4", "4\n": see optionOf) and returns the
// options' distribution at temperature temp, with the probability mass
// the options covered. Alternatives that spell the same option are
// different tokens, so their probabilities add. Servers report
// log-probabilities before temperature, so temperature is applied here:
// the result is the distribution of the first token sampled at temp, given
// that it is an option. Zero temperature puts all mass on the most likely
// options.
func optionDist(alts []alt, lo, hi int, temp float64) ([]float64, float64) {
	n := hi - lo + 1
	if n <= 0 {
		return nil, 0
	}
	lps := make([]float64, n)
	for i := range lps {
		lps[i] = math.Inf(-1)
	}
	coverage := 0.0
	for _, a := range alts {
		x, ok := optionOf(a)
		if !ok || x < lo || x > hi || math.IsNaN(a.lp) || a.lp > 0.001 {
			continue
		}
		i := x - lo
		lps[i] = logAddExp(lps[i], a.lp)
		coverage += math.Exp(a.lp)
	}
	if coverage <= 0 {
		return nil, 0
	}
	best := math.Inf(-1)
	for _, lp := range lps {
		best = max(best, lp)
	}
	dist := make([]float64, n)
	sum := 0.0
	for i, lp := range lps {
		switch {
		case math.IsInf(lp, -1):
		case temp == 0:
			if lp == best {
				dist[i] = 1
			}
		default:
			dist[i] = math.Exp((lp - best) / temp)
		}
		sum += dist[i]
	}
	for i := range dist {
		dist[i] /= sum
	}
	return dist, min(coverage, 1)
}

func logAddExp(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	m := max(a, b)
	return m + math.Log(math.Exp(a-m)+math.Exp(b-m))
}

// oneTokenOptions reports whether every option of sc is written with one
// character, 0 to 9: the only scales whose answer is the reply's first
// token whatever the tokenizer.
func oneTokenOptions(sc questionnaires.Scale) bool {
	return sc.Min >= 0 && sc.Max <= 9
}
