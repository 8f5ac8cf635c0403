package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// The parts of a run that reproduce the paper beyond questionnaires:
//
//   - the persona statements, found in a directory (or downloaded) before
//     the plan is built, and loaded into it by addPaper;
//   - the Model-Specific strategy (App. E): a calibration run first (the
//     PVQ only, C agents per value prompt, through the same pipeline), whose
//     per-prompt value-structure similarities become each model's weights;
//   - the priming modes of Table 3: "test" shows a PVQ filled in by the
//     value-prompted model instead of the value prompt, "priming+test" shows
//     both;
//   - the behaviour references and the fields of the study the paper's
//     tables need.

// Preparation is what Engine.Prepare settled that the plan cannot derive
// from the scenario: the calibration as it came out, and notes for the
// report.
type Preparation struct {
	calibration []analysis.CalibrationRow
	notes       []string
	// calls is the model traffic of the calibration run (whose results
	// are not written), added to the main run's: a run's results count
	// every request it made.
	calls calibrationTraffic
}

// Apply puts the preparation into the plan's study.
func (pr Preparation) Apply(p *Plan) {
	p.calibrationCalls = pr.calls
	p.Study.Calibration = pr.calibration
	p.Study.Notes = append(pr.notes, p.Study.Notes...)
}

// Prepare returns the scenario to run: sc with the persona
// data's directory filled in (downloaded first when the scenario asks),
// the persona statements left out when they are optional and absent, and
// the model-specific weights of every model that lacks them, from a
// calibration run. The returned scenario is a copy; the caller's is left
// as it was.
func (e *Engine) Prepare(ctx context.Context, in *scenarios.Scenario) (*scenarios.Scenario, Preparation, error) {
	var prep Preparation
	sc, notes, err := preparePersona(ctx, in)
	if err != nil {
		return nil, prep, err
	}
	prep.notes = notes
	if NeedsCalibration(sc) {
		sc, prep.calibration, prep.calls, err = e.calibrate(ctx, sc)
		if err != nil {
			return nil, prep, err
		}
	}
	return sc, prep, nil
}

func copyScenario(sc *scenarios.Scenario) *scenarios.Scenario {
	c := *sc
	c.Questionnaires = slices.Clone(sc.Questionnaires)
	c.Models = slices.Clone(sc.Models)
	c.Population.Strategies = slices.Clone(sc.Population.Strategies)
	c.Population.ModelSpecific = maps.Clone(sc.Population.ModelSpecific)
	return &c
}

// preparePersona settles where each persona questionnaire's data is.
func preparePersona(ctx context.Context, in *scenarios.Scenario) (*scenarios.Scenario, []string, error) {
	sc := copyScenario(in)
	var notes []string
	var keep []scenarios.Questionnaire
	for i, q := range sc.Questionnaires {
		if q.Name != questionnaires.PersonaName || q.File != "" {
			keep = append(keep, q)
			continue
		}
		dir, found := questionnaires.FindPersonaDir(q.Dir)
		switch {
		case found:
		case q.Download:
			cache, err := questionnaires.PersonaCacheDir()
			if err != nil {
				return nil, nil, err
			}
			if err := questionnaires.FetchPersona(ctx, nil, questionnaires.PersonaURL, cache, q.Behaviors); err != nil {
				return nil, nil, fmt.Errorf("persona statements: %w", err)
			}
			dir = cache
		case q.Optional:
			notes = append(notes, personaSkipped)
			continue
		default:
			return nil, nil, sc.Problem(fmt.Sprintf("questionnaires[%d].name", i), personaMissing)
		}
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		q.Dir = dir
		keep = append(keep, q)
	}
	sc.Questionnaires = keep
	return sc, notes, nil
}

const (
	personaSkipped = "The persona statements (Perez et al. 2023) were skipped: no data set was found. " +
		"Point `dir` in their [[questionnaires]] block, or $" + questionnaires.PersonaDirEnv + ", at a directory of its persona/*.jsonl files, " +
		"or set `download = true` to fetch them into the user's cache."
	personaMissing = "no persona data set found: set dir to a directory of the data set's persona/*.jsonl files, " +
		"set $" + questionnaires.PersonaDirEnv + ", set download = true to fetch it, or optional = true to run without it"
)

// addPaper completes a plan built by NewPlan: a note when the persona
// statements were skipped, the model-specific strategy's members, the
// priming modes' models, the models' conditions, and the study fields the
// paper's tables use. It reads no network: Prepare has put the persona
// data in place (validate and the distributed roles, which do not prepare,
// load it when it is there and say so when it is not).
func addPaper(sc *scenarios.Scenario, p *Plan) error {
	var errs []error
	for _, q := range sc.Questionnaires {
		if q.Name == questionnaires.PersonaName && q.File == "" && p.Instruments[questionnaires.PersonaName] == nil {
			p.Study.Notes = append(p.Study.Notes, personaSkipped)
		}
	}

	refs, err := behaviorReferences(sc, p)
	errs = append(errs, err)
	p.Study.BehaviorReferences = refs
	p.Study.MainStrategy = string(sc.Population.Strategy)

	if slices.Contains(sc.Population.Strategies, population.ModelSpecific) {
		members, notes, err := modelSpecificMembers(sc, p.Study.Pool.Strategies)
		if err != nil {
			errs = append(errs, err)
		} else {
			p.Study.Pool = population.NewPool(members, sc.Seed)
			p.Study.Notes = append(p.Study.Notes, notes...)
		}
	}

	pvq := valueInstrument(sc, p)
	for i, m := range sc.Models {
		for j := range p.Study.Models {
			if p.Study.Models[j].Name == m.Name {
				p.Study.Models[j].Priming, p.Study.Models[j].Style = string(m.Priming), string(m.Style)
			}
		}
		if m.Priming == scenarios.PrimingOnly || m.Priming == "" {
			continue
		}
		if m.Style == agent.StyleNone {
			errs = append(errs, sc.Problem(fmt.Sprintf("models[%d].priming", i),
				fmt.Sprintf("%s needs a value-prompted model to fill in the test, but style is \"none\"", m.Priming)))
			continue
		}
		p.Models[m.Name] = &testPrimed{inner: p.Models[m.Name], mode: m.Priming, style: m.Style, pvq: pvq, samples: min(m.Samples, testSamples)}
	}
	return errors.Join(errs...)
}

// personaInstrument loads the persona statements of a questionnaire from
// the data set's directory. It returns nil and no error when the data is
// absent and the questionnaire is optional, or is to be downloaded by a run
// (validate and the distributed roles do not download; addPaper notes the
// skip).
func personaInstrument(sc *scenarios.Scenario, q scenarios.Questionnaire) (*questionnaires.Instrument, error) {
	dir, found := questionnaires.FindPersonaDir(q.Dir)
	if !found {
		if q.Optional || q.Download {
			return nil, nil
		}
		field := "questionnaires"
		for i := range sc.Questionnaires {
			if sc.Questionnaires[i].Name == q.Name {
				field = fmt.Sprintf("questionnaires[%d].name", i)
			}
		}
		return nil, sc.Problem(field, personaMissing)
	}
	return questionnaires.LoadPersona(questionnaires.PersonaOptions{Dir: dir, Behaviors: q.Behaviors, Statements: q.Statements, Seed: sc.Seed})
}

// valueInstrument is the PVQ a "test" priming shows: the scenario's first
// value instrument, else the built-in PVQ-40.
func valueInstrument(sc *scenarios.Scenario, p *Plan) *questionnaires.Instrument {
	for _, q := range sc.Questionnaires {
		if in, ok := p.Instruments[q.Name]; ok && in.Kind == questionnaires.KindValues {
			return in
		}
	}
	in, _ := questionnaires.Builtin(scenarios.DefaultInstrument)
	return in
}

// behaviorReferences reads the scenario's published value × behaviour
// matrices against their instruments' keys.
func behaviorReferences(sc *scenarios.Scenario, p *Plan) ([]analysis.BehaviorReference, error) {
	var out []analysis.BehaviorReference
	var errs []error
	for _, r := range sc.Analysis.BehaviorReferences {
		in, ok := p.Instruments[r.Instrument]
		if !ok {
			continue // a persona questionnaire skipped for want of data
		}
		ref, err := analysis.LoadBehaviorReference(r.File, r.Name, r.Instrument, in.Keys())
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: behavior reference %q for %s: %v", ErrBadInput, r.Name, r.Instrument, err))
			continue
		}
		out = append(out, ref)
	}
	return out, errors.Join(errs...)
}

// modelSpecificMembers puts the strategy's members among the others, in
// the scenario's order: one per model ("model-specific@MODEL", see
// analysis.ScopedStrategy), from the model's calibrated weights. A model
// without weights (a run that did not calibrate: validate, or the
// distributed roles) gets an empty member and a note.
func modelSpecificMembers(sc *scenarios.Scenario, others []population.Member) ([]population.Member, []string, error) {
	var out []population.Member
	var notes []string
	for _, st := range sc.Population.Strategies {
		if st != population.ModelSpecific {
			for _, m := range others {
				if m.Name == string(st) {
					out = append(out, m)
				}
			}
			continue
		}
		for _, m := range sc.Models {
			member := population.Member{Name: string(population.ModelSpecific) + "@" + m.Name}
			ws, ok := sc.Population.ModelSpecific[m.Name]
			if !ok {
				notes = append(notes, fmt.Sprintf("Model %s has no model-specific weights: this run did not calibrate it, so its model-specific population is empty.", m.Name))
				out = append(out, member)
				continue
			}
			w, err := population.CustomWeights(ws)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: population.model_specific.%s: %v", ErrBadInput, m.Name, err)
			}
			if sc.Population.Sampling == scenarios.Random {
				member.Counts = population.Draw(w, sc.Population.Size, rand.New(rand.NewPCG(sc.Seed, 0x64726177)))
			} else {
				member.Counts = population.Counts(w, sc.Population.Size)
			}
			out = append(out, member)
		}
	}
	return out, notes, nil
}

// NeedsCalibration reports whether sc uses the model-specific strategy for
// a model without weights, which Engine.Prepare calibrates.
func NeedsCalibration(sc *scenarios.Scenario) bool {
	if !slices.Contains(sc.Population.Strategies, population.ModelSpecific) {
		return false
	}
	for _, m := range sc.Models {
		if _, ok := sc.Population.ModelSpecific[m.Name]; !ok {
			return true
		}
	}
	return false
}

// calibrate runs the model-specific calibration: the scenario's models
// answer its value instrument (the PVQ-40 by default) with
// population.calibration agents per value prompt, over the same pipeline
// (the response cache makes the prompts it shares with the main run free).
// For each model and value prompt, the value structure of that prompt's own
// agents is compared with the first human reference, and the weights are
// proportional to the fit the scenario names (population.model_specific_weight:
// App. E's Pearson correlation by default; population.ModelSpecificWeights).
// A prompt whose structure cannot be computed counts as 0.
func (e *Engine) calibrate(ctx context.Context, sc *scenarios.Scenario) (*scenarios.Scenario, []analysis.CalibrationRow, calibrationTraffic, error) {
	c := copyScenario(sc)
	c.Name = sc.Name + "-calibration"
	per := sc.Population.Calibration
	if per <= 0 {
		per = scenarios.DefaultCalibration
	}
	even := map[string]float64{}
	for _, code := range values.Codes() {
		even[code] = 1
	}
	c.Population = scenarios.Population{Size: per * values.N, Strategy: population.Custom, Strategies: []population.Strategy{population.Custom},
		Weights: even, Shares: sc.Population.Shares, NoDominant: sc.Population.NoDominant, Sampling: scenarios.Stratified}
	var vq *scenarios.Questionnaire
	for i, q := range sc.Questionnaires {
		in, err := instrumentOf(q)
		if err == nil && in.Kind == questionnaires.KindValues {
			vq = &sc.Questionnaires[i]
			break
		}
	}
	if vq == nil {
		vq = &scenarios.Questionnaire{Name: scenarios.DefaultInstrument}
	}
	c.Questionnaires = []scenarios.Questionnaire{{Name: vq.Name, File: vq.File}}
	c.Games = scenarios.Games{}
	// The calibration reads only each prompt's whole-population similarity:
	// one tiny resample and no null keep its analysis nearly free.
	c.Analysis = scenarios.Analysis{Bootstrap: scenarios.BootstrapPaper, BootstrapIterations: 1, BootstrapSize: values.N, MDS: sc.Analysis.MDS, References: sc.Analysis.References[:1]}
	res, err := e.run(ctx, c, "", e.Calibration, Preparation{}, "")
	if err != nil {
		return nil, nil, calibrationTraffic{}, fmt.Errorf("model-specific calibration: %w", err)
	}
	ref, err := analysis.LookupReference(c.Analysis.References[0])
	if err != nil {
		return nil, nil, calibrationTraffic{}, err
	}
	out := copyScenario(sc)
	if out.Population.ModelSpecific == nil {
		out.Population.ModelSpecific = map[string]map[string]float64{}
	}
	var rows []analysis.CalibrationRow
	for _, sh := range res.Collector.Sheets(res.Study.Plans) {
		if _, done := sc.Population.ModelSpecific[sh.Model]; done {
			continue
		}
		fits, err := analysis.PromptFits(sh, res.Study.Pool.Persona, ref, analysis.MDSMethod(sc.Analysis.MDS))
		if err != nil {
			return nil, nil, calibrationTraffic{}, fmt.Errorf("model-specific calibration: %w", err)
		}
		rule := sc.Population.ModelSpecificWeight
		if rule == "" {
			rule = population.FitPearson
		}
		var clean [values.N]float64
		for i, f := range fits {
			if s := f.By(rule); !math.IsNaN(s) {
				clean[i] = s
			}
		}
		w, err := population.ModelSpecificWeights(clean)
		if err != nil {
			return nil, nil, calibrationTraffic{}, fmt.Errorf("model-specific calibration of %s: %w", sh.Model, err)
		}
		ws := map[string]float64{}
		for _, v := range values.All() {
			ws[v.Code()] = w.Of(v)
			rows = append(rows, analysis.CalibrationRow{Model: sh.Model, Persona: v.Code(), Reference: ref.Name, Agents: fits[v].Agents,
				ValuesSimilarity: analysis.Num(fits[v].ValuesSimilarity), Pearson: analysis.Num(fits[v].Pearson),
				Rule: string(rule), Weight: analysis.Num(w.Of(v))})
		}
		out.Population.ModelSpecific[sh.Model] = ws
	}
	return out, rows, calibrationTraffic{counts: res.Outcome.Results.LLM, models: res.Study.Traffic}, nil
}

// calibrationTraffic is a calibration run's model traffic: in all, and
// per model.
type calibrationTraffic struct {
	counts analysis.LLMCounts
	models map[string]analysis.ModelTraffic
}

// AddCalibrationTraffic adds the requests, cache savings, retries and
// tokens of the run's model-specific calibration (made by the process
// that prepared the run) to a run's counts and per-model traffic gathered
// elsewhere (the agent hosts' reports of a distributed run), and returns
// the traffic.
func (p *Plan) AddCalibrationTraffic(counts *analysis.LLMCounts, traffic map[string]analysis.ModelTraffic) map[string]analysis.ModelTraffic {
	rep := Report{Counts: *counts, Traffic: traffic}
	p.calibrationCalls.addTo(&rep)
	*counts = rep.Counts
	return rep.Traffic
}

// addTo adds the calibration's requests, cache savings, retries and
// tokens to a run's report. What describes the main run's answers
// (distributions, coverage, fallbacks) is left as it is.
func (c calibrationTraffic) addTo(rep *Report) {
	rep.Counts.Add(c.counts)
	for name, t := range c.models {
		if rep.Traffic == nil {
			rep.Traffic = map[string]analysis.ModelTraffic{}
		}
		m := rep.Traffic[name]
		m.AddCalls(t)
		rep.Traffic[name] = m
	}
}

func instrumentOf(q scenarios.Questionnaire) (*questionnaires.Instrument, error) {
	if q.File != "" {
		return questionnaires.Load(q.File)
	}
	return questionnaires.Builtin(q.Name)
}

// testSamples is how many answers per item a sample-mode model gives to
// fill in the test; their mode is shown. Distribution-mode models show the
// most probable answer.
const testSamples = 5

// testPrimed is a model under the "test" or "priming+test" priming: before
// a value-prompted agent's question it shows the PVQ as the same backend,
// prompted with that value (and the model's style), filled it in: each
// item's modal answer. The filled-in test depends only on the value, so it
// is computed once per value and shared by every agent, and its prompts are
// those of the priming-only PVQ (the response cache serves them). With
// "test" the value prompt itself is left out (agent.StyleTest); with
// "priming+test" it stays. Unprimed agents are asked as they are.
type testPrimed struct {
	inner   agent.Model
	fill    agent.Model // asks the test's own questions; nil: inner
	mode    scenarios.Priming
	style   agent.Style
	pvq     *questionnaires.Instrument
	samples int

	mu    [values.N]sync.Mutex
	tests [values.N]string
	// filled is how each value's test was filled in: its modal answers
	// once complete, and the answers asked of each item, over every try.
	filled [values.N]FilledTest
}

// FilledTest is how a test-primed model filled in the test of one value:
// each PVQ item's modal answer (questionnaires.Missing when none was
// valid) and the answers it asked of the item (samples 0 to Asked-1), in
// item order. Agent hosts report theirs, so that the prompts of a run
// whose agents asked elsewhere can be rebuilt (RebuildPrompts).
type FilledTest struct {
	Value   string `json:"value"` // values.Value.Code
	Answers []int  `json:"answers"`
	Asked   []int  `json:"asked"`
}

// FilledTests are the tests that p's test-primed models have filled in
// completely, by model name, in value order; nil when there are none.
func FilledTests(p *Plan) map[string][]FilledTest {
	var out map[string][]FilledTest
	for name, m := range p.Models {
		t, ok := m.(*testPrimed)
		if !ok {
			continue
		}
		for v := range values.N {
			t.mu[v].Lock()
			if f := t.filled[v]; t.tests[v] != "" {
				if out == nil {
					out = map[string][]FilledTest{}
				}
				out[name] = append(out[name], FilledTest{Value: f.Value, Answers: slices.Clone(f.Answers), Asked: slices.Clone(f.Asked)})
			}
			t.mu[v].Unlock()
		}
	}
	return out
}

// primed is q as it reaches the model with test, the filled-in test of
// q's value, in its context (and without the value prompt for "test").
func (t *testPrimed) primed(q *agent.Question, test string) agent.Question {
	qq := *q
	qq.Context = test
	if q.Context != "" {
		qq.Context = test + "\n\n" + q.Context
	}
	if t.mode == scenarios.TestOnly {
		qq.Persona.Style = agent.StyleTest
	}
	return qq
}

var _ agent.Model = (*testPrimed)(nil)

func (t *testPrimed) Ask(ctx context.Context, q *agent.Question) (agent.Reply, error) {
	v := q.Persona.Value
	if !v.Valid() || q.Persona.Style == agent.StyleNone {
		return t.inner.Ask(ctx, q)
	}
	test, err := t.test(ctx, v)
	if err != nil {
		return agent.Reply{}, err
	}
	qq := t.primed(q, test)
	return t.inner.Ask(ctx, &qq)
}

// test returns the filled-in PVQ of value v, computing it on first use.
// A failure is not kept: the next question tries again.
func (t *testPrimed) test(ctx context.Context, v values.Value) (string, error) {
	t.mu[v].Lock()
	defer t.mu[v].Unlock()
	if t.tests[v] != "" {
		return t.tests[v], nil
	}
	answers := make([]int, len(t.pvq.Items))
	errs := make([]error, len(t.pvq.Items))
	f := &t.filled[v]
	if f.Asked == nil {
		f.Value, f.Asked = v.Code(), make([]int, len(t.pvq.Items))
	}
	var wg sync.WaitGroup
	for i := range t.pvq.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = t.modal(ctx, v, i, &f.Asked[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("test priming: fill in %s as %s: %w", t.pvq.Name, v.Name(), err)
	}
	t.tests[v], f.Answers = agent.TestContext(t.pvq, answers), answers
	return t.tests[v], nil
}

// modal is the value-prompted model's modal answer to item i, or
// questionnaires.Missing when it gave no valid answer; asked is raised to
// the answers asked.
func (t *testPrimed) modal(ctx context.Context, v values.Value, item int, asked *int) (int, error) {
	sc := t.pvq.Scale
	counts := make([]float64, sc.Points())
	for s := range max(t.samples, 1) {
		*asked = max(*asked, s+1)
		q := agent.Question{Persona: agent.Persona{Value: v, Style: t.style}, Instrument: t.pvq, Item: item, Sample: s}
		r, err := cmp.Or(t.fill, t.inner).Ask(ctx, &q)
		if err != nil {
			return questionnaires.Missing, err
		}
		if r.Dist != nil {
			for k, p := range r.Dist {
				if k < len(counts) {
					counts[k] += p
				}
			}
			break // a distribution is the whole answer
		}
		if r.Answer.Valid && sc.Valid(r.Answer.Value) {
			counts[r.Answer.Value-sc.Min]++
		}
	}
	best := -1
	for k, c := range counts {
		if c > 0 && (best < 0 || c > counts[best]) {
			best = k
		}
	}
	if best < 0 {
		return questionnaires.Missing, nil
	}
	return sc.Min + best, nil
}
