package analysis

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Worked example: model "bad" answers 10 agents × 2 items, 14 of them
// invalid (8 with no answer on the scale, 4 refusals, 2 empty); model
// "good" answers all 20, in distribution mode with 3 of 4 questions
// fallen back to sampling.
func TestModelRuns(t *testing.T) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	plans := []Plan{{Model: "bad", Instrument: in, Items: []int{0, 1}}, {Model: "good", Instrument: in, Items: []int{0, 1}}}
	c := NewCollector(10, plans)
	reasons := []string{
		"no answer on the scale; after the strict instruction: no answer on the scale (reply \"x\")",
		"refusal", "empty answer",
	}
	kinds := []int{0, 0, 0, 0, 1, 1, 0, 0, 2, 0, 0, 2, 1, 1} // 8 × 0, 4 × 1, 2 × 2
	k := 0
	for item := range 2 {
		b := &agent.Batch{Model: "bad", Instrument: in.Name, Item: item, Codes: make([]uint8, 10)}
		for a := range 10 {
			if k < len(kinds) {
				b.Invalid = append(b.Invalid, agent.Invalid{Agent: a, Raw: "x", Reason: reasons[kinds[k]]})
				k++
				continue
			}
			b.Codes[a] = 3
		}
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
		g := &agent.Batch{Model: "good", Instrument: in.Name, Item: item, Codes: make([]uint8, 10)}
		for a := range g.Codes {
			g.Codes[a] = 4
		}
		if err := c.Add(g); err != nil {
			t.Fatal(err)
		}
	}
	models := []ModelInfo{{Name: "bad", Backend: "openai", Mode: "sample"}, {Name: "good", Backend: "openai", Mode: "distribution"}}
	traffic := map[string]ModelTraffic{
		"bad":  {Calls: 20, StrictRetries: 14, PromptTokens: 2000, CompletionTokens: 300},
		"good": {Calls: 4, Distributions: 4, Fallbacks: 3, CoverageSum: 0.9 + 0.2 + 0.1 + 0.0},
	}
	runs := modelRuns(models, traffic, c)
	bad, good := runs[0], runs[1]
	if bad.Answers != (AnswerCounts{Expected: 20, Valid: 6, Invalid: 14}) {
		t.Errorf("bad answers: got %+v, want 20 expected, 6 valid, 14 invalid", bad.Answers)
	}
	if float64(bad.InvalidShare) != 0.7 || !bad.MostlyInvalid {
		t.Errorf("bad: got share %v mostly %v, want 0.7 true", bad.InvalidShare, bad.MostlyInvalid)
	}
	want := []ReasonCount{{"no answer on the scale", 8}, {"refusal", 4}, {"empty answer", 2}}
	if len(bad.InvalidReasons) != 3 {
		t.Fatalf("reasons: got %v, want %v", bad.InvalidReasons, want)
	}
	for i := range want {
		if bad.InvalidReasons[i] != want[i] {
			t.Errorf("reason %d: got %v, want %v", i, bad.InvalidReasons[i], want[i])
		}
	}
	if bad.QueryMode != "sample" || bad.LLM.StrictRetries != 14 || !math.IsNaN(float64(bad.LLM.CoveredMass)) {
		t.Errorf("bad: got mode %q, strict retries %d, covered mass %v; want sample, 14, NaN", bad.QueryMode, bad.LLM.StrictRetries, bad.LLM.CoveredMass)
	}
	if got := MostlyInvalidWarning(bad); !strings.Contains(got, "70% of its answers are invalid") || !strings.Contains(got, "no answer on the scale") {
		t.Errorf("warning: got %q", got)
	}
	if good.QueryMode != "distribution (3 of 4 questions fell back to sampling)" {
		t.Errorf("good mode: got %q", good.QueryMode)
	}
	if math.Abs(float64(good.LLM.CoveredMass)-0.3) > 1e-12 || good.MostlyInvalid || MostlyInvalidWarning(good) != "" {
		t.Errorf("good: got covered mass %v, mostly invalid %v; want 0.3, false", good.LLM.CoveredMass, good.MostlyInvalid)
	}
	if got := queryMode(ModelInfo{Mode: "distribution"}, &ModelTraffic{Distributions: 40, Fallbacks: 40}); got != "distribution (all 40 questions fell back to sampling)" {
		t.Errorf("all fallen back: got %q", got)
	}
	// 84 replies gave a distribution (some of them too little mass), 24
	// had none: the fallbacks are counted against all 108 questions.
	if got := queryMode(ModelInfo{Mode: "distribution"}, &ModelTraffic{Distributions: 84, Questions: 108, Fallbacks: 24}); got != "distribution (24 of 108 questions fell back to sampling)" {
		t.Errorf("mixed: got %q", got)
	}
	if got := queryMode(ModelInfo{Mode: "distribution"}, &ModelTraffic{Distributions: 60, Questions: 120, Fallbacks: 60}); got != "distribution (60 of 120 questions fell back to sampling)" {
		t.Errorf("half without alternatives: got %q", got)
	}
	line := ModelRunLine(good)
	for _, s := range []string{"good: openai, distribution mode (3 of 4 questions fell back to sampling)", "covered mass 0.300 over 4 distributions, 3 fell back"} {
		if !strings.Contains(line, s) {
			t.Errorf("line %q: want %q in it", line, s)
		}
	}
	// Stable keys in results.json.
	raw, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"query_mode":"sample"`, `"strict_retries":14`, `"covered_mass":null`, `"invalid_share":0.7`,
		`"mostly_invalid":true`, `"prompt_tokens":2000`, `"invalid_reasons":[{"reason":"no answer on the scale","count":8}`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("json %s: want %s in it", raw, key)
		}
	}
	// A model whose traffic was counted elsewhere says so with null.
	if r := modelRuns(models[:1], nil, c); r[0].LLM != nil {
		t.Errorf("no traffic: got %+v, want nil", r[0].LLM)
	}
}

func TestUnscored(t *testing.T) {
	ok := &Results{Answers: AnswerCounts{Expected: 10, Valid: 4, Invalid: 6},
		ValueStructure: []ValueStructureRow{{Model: "m", Strategy: "uniform", Instrument: "pvq40", Agents: 3}}}
	if err := ok.Unscored(); err != nil {
		t.Errorf("scored run: got %v, want nil", err)
	}
	none := &Results{Answers: AnswerCounts{Expected: 10, Invalid: 10},
		ModelRuns: []ModelRun{{Model: "m", InvalidReasons: []ReasonCount{{"refusal", 10}}}}}
	err := none.Unscored()
	if !errors.Is(err, ErrUnscored) || !strings.Contains(err.Error(), "0 valid answers of 10 expected; m: refusal ×10") {
		t.Errorf("no valid answers: got %v", err)
	}
	empty := &Results{Answers: AnswerCounts{Expected: 10, Valid: 10},
		ValueStructure: []ValueStructureRow{{Model: "m", Strategy: "uniform", Instrument: "pvq40", Reference: "a"},
			{Model: "m", Strategy: "uniform", Instrument: "pvq40", Reference: "b"}}}
	err = empty.Unscored()
	if !errors.Is(err, ErrUnscored) || strings.Count(err.Error(), "m: no agent has a score for every value on pvq40") != 1 {
		t.Errorf("no scored agent: got %v", err)
	}
	// The same rows beside a game the model played: the game is a result.
	empty.Games = &Games{PairedCharity: []CharityResult{{Model: "m"}}}
	if err := empty.Unscored(); err != nil {
		t.Errorf("unscored values beside a game: got %v, want nil", err)
	}
	// One strategy with no scored agent beside one with some: a result.
	partial := &Results{Answers: AnswerCounts{Expected: 10, Valid: 10},
		ValueStructure: []ValueStructureRow{{Model: "m", Strategy: "uniform", Instrument: "pvq40"},
			{Model: "m", Strategy: "h-np", Instrument: "pvq40", Agents: 4}}}
	if err := partial.Unscored(); err != nil {
		t.Errorf("partly scored: got %v, want nil", err)
	}
}

// A model whose scored agents all answered alike has no values similarity
// anywhere: the run says why instead of leaving bare NAs.
func TestUndefinedSimilarities(t *testing.T) {
	nan := Num(math.NaN())
	r := &Results{ValueStructure: []ValueStructureRow{
		{Model: "flat", Instrument: "pvq40", Agents: 20, ValuesSimilarity: nan},
		{Model: "flat", Instrument: "pvq40", Agents: 20, ValuesSimilarity: nan},
		{Model: "good", Instrument: "pvq40", Agents: 20, ValuesSimilarity: nan},
		{Model: "good", Instrument: "pvq40", Agents: 20, ValuesSimilarity: 0.8},
		{Model: "none", Instrument: "pvq40", Agents: 0, ValuesSimilarity: nan},
	}}
	got := r.UndefinedSimilarities()
	if len(got) != 1 || !strings.Contains(got[0], "model flat") || !strings.Contains(got[0], "do not vary") {
		t.Errorf("got %q, want one warning, for model flat", got)
	}
}

// Add sums every count of a model's traffic (a count added to the type
// and forgotten here would be lost from a distributed run's results);
// AddCalls sums only what the requests cost.
func TestModelTrafficAdd(t *testing.T) {
	var one ModelTraffic
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.Int64:
			f.SetInt(1)
		case reflect.Float64:
			f.SetFloat(1)
		default:
			t.Fatalf("field %s: kind %s not summed by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	sum := one
	sum.Add(one)
	s := reflect.ValueOf(sum)
	for i := range s.NumField() {
		if got := s.Field(i).Convert(reflect.TypeFor[float64]()).Float(); got != 2 {
			t.Errorf("Add: %s: got %v, want 2", s.Type().Field(i).Name, got)
		}
	}
	calls := one
	calls.AddCalls(one)
	want := ModelTraffic{Calls: 2, CacheHits: 2, AnswersReused: 2, Retries: 2, StrictRetries: 2, PromptTokens: 2, CompletionTokens: 2,
		Distributions: 1, Fallbacks: 1, Questions: 1, CoverageSum: 1}
	if calls != want {
		t.Errorf("AddCalls: got %+v, want %+v", calls, want)
	}
	c := LLMCounts{Calls: 1, CacheHits: 2, AnswersReused: 3, Retries: 4}
	c.Add(c)
	if c != (LLMCounts{Calls: 2, CacheHits: 4, AnswersReused: 6, Retries: 8}) {
		t.Errorf("LLMCounts.Add: got %+v", c)
	}
}
