package analysis

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// MostlyInvalid is the invalid share above which a model's answers are
// called mostly invalid, loudly, in every output.
const MostlyInvalid = 0.5

// topReasons is how many invalid-answer reasons a model's run lists.
const topReasons = 3

// ModelTraffic is what a model's backend counted during the run; the
// caller fills it from the model clients (the analysis does not know them).
// Its keys are those an agent host reports a model's traffic under.
type ModelTraffic struct {
	// CacheHits counts the calls not made because the cache held their
	// replies, AnswersReused the answers a reply served beyond its first
	// (llm.ClientStats).
	Calls            int64 `json:"calls"`
	CacheHits        int64 `json:"cache_hits"`
	AnswersReused    int64 `json:"answers_reused,omitempty"`
	Retries          int64 `json:"retries"`
	StrictRetries    int64 `json:"strict_retries"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Distributions counts the answer distributions of distribution mode,
	// fetched from the endpoint or read from the cache, CoverageSum their
	// covered probability masses, Fallbacks those whose questions were
	// sampled instead (results written before replies read from the cache
	// were counted hold only those fetched).
	Distributions int64 `json:"distributions"`
	Fallbacks     int64 `json:"fallbacks"`
	// Questions counts the questions asked in distribution mode: those
	// with a distribution and those sampled because their reply had no
	// alternatives or their request failed (0 in results written before
	// it was counted: Distributions is used instead).
	Questions   int64   `json:"questions"`
	CoverageSum float64 `json:"coverage_sum"`
}

// AddCalls adds to t what o's requests cost: the calls, the calls and
// answers the cache saved, the retries and the tokens. What describes a
// run's answers (distributions, questions, fallbacks, coverage) is left
// as it is: a run that feeds another (the model-specific calibration)
// adds its cost, not its answers.
func (t *ModelTraffic) AddCalls(o ModelTraffic) {
	t.Calls += o.Calls
	t.CacheHits += o.CacheHits
	t.AnswersReused += o.AnswersReused
	t.Retries += o.Retries
	t.StrictRetries += o.StrictRetries
	t.PromptTokens += o.PromptTokens
	t.CompletionTokens += o.CompletionTokens
}

// Add adds every count of o to t: the traffic of one model on several
// hosts.
func (t *ModelTraffic) Add(o ModelTraffic) {
	t.AddCalls(o)
	t.Distributions += o.Distributions
	t.Fallbacks += o.Fallbacks
	t.Questions += o.Questions
	t.CoverageSum += o.CoverageSum
}

// ModelRun is what really happened with one model in a run: the query
// mode it was used in, its traffic and the validity of its answers. Keys
// are stable.
type ModelRun struct {
	Model     string `json:"model"`
	Backend   string `json:"backend"`
	Synthetic bool   `json:"synthetic"`
	// QueryMode is "distribution", "sample", or a distribution mode whose
	// questions fell back to sampling, said as such ("distribution (all 40
	// questions fell back to sampling)", "distribution (3 of 40 questions
	// fell back to sampling)").
	QueryMode string `json:"query_mode"`
	// LLM is null when the run could not count the model's traffic (its
	// agents ran on other hosts).
	LLM     *ModelLLM    `json:"llm"`
	Answers AnswerCounts `json:"answers"`
	// InvalidShare is invalid / expected (null without expected answers);
	// MostlyInvalid marks a share above MostlyInvalid.
	InvalidShare   Num           `json:"invalid_share"`
	MostlyInvalid  bool          `json:"mostly_invalid"`
	InvalidReasons []ReasonCount `json:"invalid_reasons"`
}

// ModelLLM is a model's traffic. CacheHits counts the model calls not made
// because the cache held their replies (a rerun served wholly from the
// cache saves as many as the run that filled it made); AnswersReused the
// answers a reply, fetched or stored, served beyond its first (the other
// agents drawing from one distribution, the other samples of a request
// with n > 1): absent in results written before it was counted, whose
// cache_hits counted answers. CoveredMass is the mean, over the
// distributions the answers came from (fetched or read from the cache),
// of the probability mass the answer options covered among the first
// token's top log-probabilities (null when there was none); Fallbacks
// counts the questions sampled instead because the mass was too low or
// the alternatives were missing.
type ModelLLM struct {
	Calls            int64 `json:"calls"`
	CacheHits        int64 `json:"cache_hits"`
	AnswersReused    int64 `json:"answers_reused"`
	Retries          int64 `json:"retries"`
	StrictRetries    int64 `json:"strict_retries"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	Distributions    int64 `json:"distributions"`
	Questions        int64 `json:"questions"`
	CoveredMass      Num   `json:"covered_mass"`
	Fallbacks        int64 `json:"fallbacks"`
}

// ReasonCount is how many invalid answers had a kind of reason: the
// reason's text up to its first detail (":" or ";"), so that "no answer on
// the scale" groups every reply that had none.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// reasonKind is the kind of an invalid answer's reason.
func reasonKind(r string) string {
	if i := strings.IndexAny(r, ":;("); i >= 0 {
		r = r[:i]
	}
	r = strings.TrimSpace(r)
	if len(r) > 80 {
		r = r[:80]
	}
	if r == "" {
		return "unknown"
	}
	return r
}

// queryMode says how a model's answers were really obtained.
func queryMode(m ModelInfo, t *ModelTraffic) string {
	if m.Mode != "distribution" || t == nil || t.Fallbacks == 0 {
		return m.Mode
	}
	questions := t.Questions
	if questions == 0 {
		questions = t.Distributions
	}
	if t.Fallbacks >= questions {
		return fmt.Sprintf("distribution (all %d questions fell back to sampling)", t.Fallbacks)
	}
	return fmt.Sprintf("distribution (%d of %d questions fell back to sampling)", t.Fallbacks, questions)
}

// modelRuns builds each model's run from its traffic (nil entries: not
// counted) and the collected answers.
func modelRuns(models []ModelInfo, traffic map[string]ModelTraffic, c *Collector) []ModelRun {
	counts := c.ModelCounts()
	reasons := map[string]map[string]int64{}
	for _, iv := range c.Invalid() {
		if reasons[iv.Model] == nil {
			reasons[iv.Model] = map[string]int64{}
		}
		reasons[iv.Model][reasonKind(iv.Reason)]++
	}
	out := make([]ModelRun, 0, len(models))
	for _, m := range models {
		mr := ModelRun{Model: m.Name, Backend: m.Backend, Synthetic: m.Synthetic, Answers: counts[m.Name],
			InvalidReasons: []ReasonCount{}}
		var t *ModelTraffic
		if x, ok := traffic[m.Name]; ok {
			t = &x
			mr.LLM = &ModelLLM{Calls: t.Calls, CacheHits: t.CacheHits, AnswersReused: t.AnswersReused, Retries: t.Retries, StrictRetries: t.StrictRetries,
				PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens, Distributions: t.Distributions,
				Questions: t.Questions, CoveredMass: Num(math.NaN()), Fallbacks: t.Fallbacks}
			if t.Distributions > 0 {
				mr.LLM.CoveredMass = Num(t.CoverageSum / float64(t.Distributions))
			}
		}
		mr.QueryMode = queryMode(m, t)
		mr.InvalidShare = Num(math.NaN())
		if mr.Answers.Expected > 0 {
			share := float64(mr.Answers.Invalid) / float64(mr.Answers.Expected)
			mr.InvalidShare, mr.MostlyInvalid = Num(share), share > MostlyInvalid
		}
		for r, n := range reasons[m.Name] {
			mr.InvalidReasons = append(mr.InvalidReasons, ReasonCount{r, n})
		}
		slices.SortFunc(mr.InvalidReasons, func(a, b ReasonCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
		})
		mr.InvalidReasons = mr.InvalidReasons[:min(len(mr.InvalidReasons), topReasons)]
		out = append(out, mr)
	}
	return out
}

// ModelRunLine says in one line what happened with a model, for the report
// and the terminal summary.
func ModelRunLine(m ModelRun) string {
	b := &strings.Builder{}
	// "distribution mode (3 of 40 questions fell back to sampling)", not
	// "distribution (3 of 40 …) mode".
	mode, fell, _ := strings.Cut(m.QueryMode, " (")
	if fell != "" {
		fell = " (" + fell
	}
	fmt.Fprintf(b, "%s: %s, %s mode%s", m.Model, BackendLabel(m.Backend, m.Synthetic), mode, fell)
	if l := m.LLM; l != nil {
		fmt.Fprintf(b, "; %d calls, %d calls saved by the cache, %d answers reused from a reply, %d retries, %d strict retries, %d prompt + %d completion tokens",
			l.Calls, l.CacheHits, l.AnswersReused, l.Retries, l.StrictRetries, l.PromptTokens, l.CompletionTokens)
		if l.Distributions > 0 {
			fmt.Fprintf(b, "; covered mass %.3f over %d distributions, %d fell back to sampling", float64(l.CoveredMass), l.Distributions, l.Fallbacks)
		}
	}
	fmt.Fprintf(b, "; %d of %d answers invalid", m.Answers.Invalid, m.Answers.Expected)
	if m.Answers.Expected > 0 {
		fmt.Fprintf(b, " (%.1f%%)", 100*float64(m.InvalidShare))
	}
	if len(m.InvalidReasons) > 0 {
		parts := make([]string, len(m.InvalidReasons))
		for i, r := range m.InvalidReasons {
			parts[i] = fmt.Sprintf("%s ×%d", r.Reason, r.Count)
		}
		fmt.Fprintf(b, ": %s", strings.Join(parts, ", "))
	}
	return b.String()
}

// MostlyInvalidWarning is the loud line said of a model whose answers are
// mostly invalid, "" for the others.
func MostlyInvalidWarning(m ModelRun) string {
	if !m.MostlyInvalid {
		return ""
	}
	top := "no reason recorded"
	if len(m.InvalidReasons) > 0 {
		top = m.InvalidReasons[0].Reason
	}
	return fmt.Sprintf("WARNING: model %s: %.0f%% of its answers are invalid (%d of %d; most often: %s); see invalid.jsonl before reading any table",
		m.Model, 100*float64(m.InvalidShare), m.Answers.Invalid, m.Answers.Expected, top)
}

// BackendLabel names a model's backend for a reader, saying when an
// OpenAI-compatible endpoint served the synthetic respondents.
func BackendLabel(backend string, synthetic bool) string {
	if synthetic && backend != "synthetic" {
		return backend + " serving synthetic respondents (society model-server)"
	}
	return backend
}

// ErrUnscored is wrapped by Unscored's error.
var ErrUnscored = errors.New("no agent could be scored")

// Unscored explains why a run has nothing to show: no valid answer at
// all, or a model whose value-structure or behaviour rows for an
// instrument have no scored agent in any row (every agent left a value
// unscored, or the items asked score none) while the model played no game
// either. It returns nil for a run with something to show.
func (r *Results) Unscored() error {
	var errs []error
	if r.Answers.Expected > 0 && r.Answers.Valid == 0 {
		why := ""
		for _, m := range r.ModelRuns {
			if len(m.InvalidReasons) > 0 {
				why += fmt.Sprintf("; %s: %s ×%d", m.Model, m.InvalidReasons[0].Reason, m.InvalidReasons[0].Count)
			}
		}
		errs = append(errs, fmt.Errorf("0 valid answers of %d expected%s", r.Answers.Expected, why))
	}
	played := map[string]bool{}
	if r.Games != nil {
		for _, g := range r.Games.PairedCharity {
			played[g.Model] = true
		}
	}
	type group struct{ model, instrument string }
	var order []group
	scored := map[group]bool{}
	what := map[group]string{}
	note := func(g group, agents int, w string) {
		if _, ok := scored[g]; !ok {
			order = append(order, g)
			what[g] = w
		}
		scored[g] = scored[g] || agents > 0
	}
	for _, v := range r.ValueStructure {
		note(group{v.Model, v.Instrument}, v.Agents, "no agent has a score for every value on "+v.Instrument)
	}
	for _, v := range r.ValueBehavior {
		note(group{v.Model, v.Instrument}, v.Agents, "no agent has both value and "+v.Instrument+" scores")
	}
	for _, g := range order {
		if !scored[g] && !played[g.model] {
			errs = append(errs, fmt.Errorf("%s: %s", g.model, what[g]))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnscored, errors.Join(errs...))
}

// UndefinedSimilarities explains each model and instrument whose agents
// were scored but whose values similarity is undefined in every row: the
// agents' value scores do not vary (a model that gives every item the
// same answer), so their correlations, and the map built on them, do not
// exist. Tables show NA there; this says why.
func (r *Results) UndefinedSimilarities() []string {
	type group struct{ model, instrument string }
	var order []group
	defined := map[group]bool{}
	for _, v := range r.ValueStructure {
		g := group{v.Model, v.Instrument}
		if v.Agents == 0 {
			continue
		}
		if _, ok := defined[g]; !ok {
			order = append(order, g)
		}
		defined[g] = defined[g] || !math.IsNaN(float64(v.ValuesSimilarity))
	}
	var out []string
	for _, g := range order {
		if !defined[g] {
			out = append(out, fmt.Sprintf("model %s: values similarity on %s is undefined (NA): the agents' value scores do not vary "+
				"(the model gave the items alike answers), so their correlations do not exist", g.model, g.instrument))
		}
	}
	return out
}
