package analysis

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// ModelInfo describes a model of the run in results.
type ModelInfo struct {
	Name      string `json:"name"`
	Backend   string `json:"backend"`
	Model     string `json:"model,omitempty"`
	Mode      string `json:"mode"`
	Synthetic bool   `json:"synthetic"`
	// ServedModel and SystemFingerprint are what the endpoint said it
	// served, from its replies (empty without replies).
	ServedModel       string `json:"served_model,omitempty"`
	SystemFingerprint string `json:"system_fingerprint,omitempty"`
	// Priming and Style are the model's prompt conditions (Table 3 groups
	// models of one backend by them).
	Priming string `json:"priming,omitempty"`
	Style   string `json:"style,omitempty"`
}

// Study is what the analysis needs to know about a run.
type Study struct {
	Name       string
	Seed       uint64
	Models     []ModelInfo
	Pool       *population.Pool
	Plans      []Plan
	References []string
	// Bootstrap is BootstrapPopulation ("" too) or BootstrapPaper;
	// BootstrapIterations resamples (of BootstrapSize agents each, with
	// BootstrapPaper) give the 95% interval of every similarity
	// (inference.go).
	Bootstrap           string
	BootstrapIterations int
	BootstrapSize       int
	// NullIterations permutations give each similarity's p-value; 0
	// computes none.
	NullIterations int
	// MDS places the value correlation matrices in two dimensions for the
	// Values Similarity; "" is Classical.
	MDS    MDSMethod
	random randomBaseline

	// MainStrategy is the scenario's main strategy (Table 3's).
	MainStrategy string
	// BehaviorReferences are published value × behaviour matrices given
	// by the user; theory references are built in (behavior_theory.go).
	BehaviorReferences []BehaviorReference
	// Calibration is the model-specific strategy's calibration, reported
	// as it is.
	Calibration []CalibrationRow
	// Notes are said in results and the report (an instrument skipped,
	// say).
	Notes []string
	// Games are the Paired Charity Games played, one per model (games.go).
	Games []CharityGame
	// Traffic is each model's traffic by name, for the model runs; a model
	// missing from it had its traffic counted elsewhere.
	Traffic map[string]ModelTraffic
}

// Results is results.json. Keys are stable: scripts rely on them.
type Results struct {
	// Run is the run's provenance (run.go); nil in results written
	// before it was recorded.
	Run            *Run                `json:"run,omitempty"`
	Scenario       string              `json:"scenario"`
	Seed           uint64              `json:"seed"`
	Note           string              `json:"note,omitempty"`
	MDS            MDSMethod           `json:"mds"` // of every values similarity: classical or smacof
	Models         []ModelInfo         `json:"models"`
	Population     []PopulationRow     `json:"population"`
	Answers        AnswerCounts        `json:"answers"`
	LLM            LLMCounts           `json:"llm"`
	ModelRuns      []ModelRun          `json:"model_runs"`
	ValueStructure []ValueStructureRow `json:"value_structure"`
	ValueBehavior  []ValueBehaviorRow  `json:"value_behavior"`
	Games          *Games              `json:"games"`
	// Bootstrap says how every interval and p-value was computed.
	Bootstrap BootstrapInfo `json:"bootstrap"`
	// Comparisons are the paired differences between strategies and
	// between models.
	Comparisons []ComparisonRow `json:"comparisons"`

	PersonaAgreement []AgreementRow   `json:"persona_agreement,omitempty"`
	Calibration      []CalibrationRow `json:"calibration,omitempty"`
	Notes            []string         `json:"notes,omitempty"`
}

// PopulationRow is one strategy's population.
type PopulationRow struct {
	Strategy string         `json:"strategy"`
	Size     int            `json:"size"`
	Counts   map[string]int `json:"counts"`
}

// AnswerCounts reconcile: valid + invalid = expected.
type AnswerCounts struct {
	Expected int64 `json:"expected"`
	Valid    int64 `json:"valid"`
	Invalid  int64 `json:"invalid"`
}

// LLMCounts counts model traffic over every model: calls made, calls saved
// by the cache (cache_hits), answers reused from a reply beyond its first,
// and retries (ModelLLM).
type LLMCounts struct {
	Calls         int64 `json:"calls"`
	CacheHits     int64 `json:"cache_hits"`
	AnswersReused int64 `json:"answers_reused"`
	Retries       int64 `json:"retries"`
}

// Add adds o's counts to c.
func (c *LLMCounts) Add(o LLMCounts) {
	c.Calls += o.Calls
	c.CacheHits += o.CacheHits
	c.AnswersReused += o.AnswersReused
	c.Retries += o.Retries
}

// ValueStructureRow is one cell of Table 1: how human-like a model's value
// structure is under a strategy, against one human reference.
type ValueStructureRow struct {
	Model            string `json:"model"`
	Strategy         string `json:"strategy"`
	Reference        string `json:"reference"`
	Instrument       string `json:"instrument"`
	Agents           int    `json:"agents"`
	ValuesSimilarity Num    `json:"values_similarity"`
	BootstrapMean    Num    `json:"bootstrap_mean"`
	CI95             [2]Num `json:"ci95"`
	Inference
}

// Inference is a similarity row's test against the permutation null and
// its random-responder baseline (inference.go).
type Inference struct {
	// PValue is the permutation p-value (1 + #{null ≥ observed})/(B + 1);
	// PValueResolution = 1/(B + 1) is the smallest it can be.
	PValue           Prob `json:"p_value"`
	PValueResolution Prob `json:"p_value_resolution"`
	// NullMean and NullCI95 describe the permutation null.
	NullMean Num    `json:"null_mean"`
	NullCI95 [2]Num `json:"null_ci95"`
	// RandomMean and RandomCI95 describe the similarity of as many random
	// responders (every item answered uniformly on its scale).
	RandomMean Num    `json:"random_mean"`
	RandomCI95 [2]Num `json:"random_ci95"`
	// PValuePaperTTest is the study's App. G test: a one-sample t-test of
	// the bootstrap similarities against 0. It tests nothing about human
	// likeness (random answers pass it) and is kept for comparison.
	// Values below 1e-300, where the t distribution's tail underflows,
	// are written as 1e-300.
	PValuePaperTTest Prob `json:"p_value_paper_ttest"`
}

// ValueBehaviorRow is one cell of Table 2.
type ValueBehaviorRow struct {
	Model              string `json:"model"`
	Strategy           string `json:"strategy"`
	Instrument         string `json:"instrument"`
	Reference          string `json:"reference"`
	ReferenceKind      string `json:"reference_kind"`
	BehaviorSimilarity Num    `json:"behavior_similarity"`
	Agents             int    `json:"agents"`
	BootstrapMean      Num    `json:"bootstrap_mean"`
	CI95               [2]Num `json:"ci95"`
	Inference
}

// ValueMap is what the MDS figure of one model and strategy needs.
type ValueMap struct {
	Model, Strategy, Reference string
	Human, Fitted              *mat.Dense
	Similarity                 float64
}

// Scores holds each agent's value scores on a value instrument.
type Scores struct {
	Raw, MRAT [][values.N]float64
	OK        []bool
}

// Outcome is everything the analysis computed.
type Outcome struct {
	Results Results
	Maps    []ValueMap

	// Behavior holds the value × behaviour matrices, ValueCorr the value
	// correlation matrices, Persona the persona agreement: the figures'
	// data (behavior.go, persona.go).
	Behavior  []BehaviorMatrix
	ValueCorr []ValueCorr
	Persona   []PersonaAgreement

	// draws are each row's bootstrap values by resample, for the paired
	// comparisons.
	draws map[drawKey][]float64
}

// Compute analyses the collected answers.
//
// ctx stops the bootstrap and null loops early; Compute then returns its
// error.
func (st *Study) Compute(ctx context.Context, c *Collector) (*Outcome, error) {
	out := &Outcome{}
	r := &out.Results
	r.Scenario, r.Seed, r.Models = st.Name, st.Seed, st.Models
	r.MDS = st.mdsMethod()
	r.ValueStructure = []ValueStructureRow{}
	r.ValueBehavior = []ValueBehaviorRow{}
	for _, m := range st.Models {
		if m.Synthetic {
			r.Note = "Answers come from the built-in synthetic respondents (a generative psychometric model, not a language model): they show what the pipeline measures, never a result about models."
		}
	}
	for _, m := range st.Pool.Strategies {
		row := PopulationRow{Strategy: m.Name, Counts: map[string]int{}}
		for p, n := range m.Counts {
			row.Counts[population.Persona(p).Code()] = n
			row.Size += n
		}
		r.Population = append(r.Population, row)
	}
	r.Answers.Expected, r.Answers.Valid, r.Answers.Invalid = c.Counts()
	r.ModelRuns = modelRuns(st.Models, st.Traffic, c)

	refs := make([]Reference, 0, len(st.References))
	for _, name := range st.References {
		ref, err := LookupReference(name)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	rs := st.resampler()
	for _, sh := range c.Sheets(st.Plans) {
		keyOf := make([]int, len(sh.Instrument.Items))
		valueItems := 0
		for i, it := range sh.Instrument.Items {
			keyOf[i] = -1
			if v, err := values.Parse(it.Key); err == nil && v.Valid() {
				keyOf[i] = int(v)
				valueItems++
			}
		}
		if valueItems < len(keyOf) {
			continue // not a value instrument
		}
		sc := scoreSheet(sh, keyOf, c.Agents())
		for si, member := range st.Pool.Strategies {
			name, ok := ScopedStrategy(member.Name, sh.Model)
			if !ok {
				continue
			}
			if err := st.valueRows(ctx, rs, sh, keyOf, sc, si, name, refs, out); err != nil {
				return nil, err
			}
		}
	}
	if err := st.computeBehavior(ctx, c, out); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st.computePersona(c, out)
	r.Calibration, r.Notes = st.Calibration, st.Notes
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	games, err := st.computeGames(c)
	if err != nil {
		return nil, err
	}
	r.Games = games
	r.Bootstrap = st.Info()
	r.Comparisons = out.comparisons(st)
	return out, nil
}

// scoreBlock is the fewest agents worth a goroutine of their own when
// scoring a sheet.
const scoreBlock = 16384

func scoreSheet(sh *Sheet, keyOf []int, agents int) *Scores {
	n := len(keyOf)
	sc := &Scores{Raw: make([][values.N]float64, agents), MRAT: make([][values.N]float64, agents), OK: make([]bool, agents)}
	// Agents are scored independently, so every core takes a block of them.
	workers := min(runtime.GOMAXPROCS(0), max(1, agents/scoreBlock))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := w * agents / workers; a < (w+1)*agents/workers; a++ {
				sc.OK[a] = ValueScores(keyOf, sh.Codes[a*n:(a+1)*n], sc.Raw[a][:], sc.MRAT[a][:])
			}
		}()
	}
	wg.Wait()
	return sc
}

func corrOf(rows [][values.N]float64, members []int) *mat.SymDense {
	acc := NewCorrAccumulator(values.N)
	for _, a := range members {
		acc.Add(rows[a][:])
	}
	return acc.Corr()
}

func hash64(parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return h
}

// String gives a short description for errors.
func (r ValueStructureRow) String() string {
	return fmt.Sprintf("%s/%s vs %s: %.3f", r.Model, r.Strategy, r.Reference, float64(r.ValuesSimilarity))
}

// Num is a figure in results.json: NaN and infinities (a degenerate
// resample, a constant column) are written as null, which JSON can hold.
type Num float64

// MarshalJSON writes null for NaN and infinities and rounds to 6 decimals,
// enough for every figure and stable across platforms.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(f*1e6)/1e6, 'g', -1, 64), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Num(f)
	return err
}

// MDSMethod is the MDS method's name; results written before it was
// recorded used classical MDS.
func (r *Results) MDSMethod() MDSMethod {
	if r.MDS == "" {
		return Classical
	}
	return r.MDS
}

// mdsMethod is the study's MDS method, Classical when unset.
func (st *Study) mdsMethod() MDSMethod {
	if st.MDS == "" {
		return Classical
	}
	return st.MDS
}
