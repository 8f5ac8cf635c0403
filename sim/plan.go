package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// ErrBadInput marks input errors found outside scenario validation (an
// instrument file, a behaviour reference, a model's settings): the
// command exits with status 2 on them.
var ErrBadInput = errors.New("bad input")

// Backends builds a plan's models and reports on them afterwards
// (llm/backend.Set is one); each plan gets its own, and a calibration's
// traffic is added to the main run's (Preparation).
type Backends interface {
	// Model builds scenario model m. demand is the number of agents of
	// the run holding a persona's value (0 until the plan knows its
	// population), for requests sized to what agents use.
	Model(sc *scenarios.Scenario, m scenarios.Model, demand func(values.Value) int) (agent.Model, analysis.ModelInfo, error)
	// Check asks every model endpoint whether it can serve the run,
	// before any work.
	Check(ctx context.Context) error
	// Report is the models' traffic and what their endpoints said about
	// themselves, once the answers are in.
	Report(ctx context.Context, models []analysis.ModelInfo) Report
}

// Report is what Backends.Report tells about a run's models.
type Report struct {
	Traffic map[string]analysis.ModelTraffic
	// Models are the models' descriptions labelled with what their
	// endpoints said (a model served by the model server is synthetic).
	Models []analysis.ModelInfo
	Counts analysis.LLMCounts
	// Run is each model's entry of the run block: its settings as
	// resolved and what its endpoint said about itself.
	Run []analysis.RunModel
	// Sampling is each model's samples and max_tokens as resolved. In
	// distribution mode they apply only to the questions sampled
	// instead, and Run leaves them out when this process sampled none: a
	// run whose agents ran on other hosts records them from here when a
	// host did, as a single process would have.
	Sampling map[string]Sampling
}

// Sampling is a model's sampling settings (Report.Sampling).
type Sampling struct{ Samples, MaxTokens int }

// Phase is a step of a run: its plans are dispatched together and the run
// waits for all their answers before the next phase. A questionnaire run
// has one phase; a game has one per round and a closing one.
type Phase struct {
	Plans []analysis.Plan
	// before, when set, runs before the phase's tasks go out, with every
	// earlier phase's answers in the collector.
	before func(ctx context.Context, col *analysis.Collector) error
	// tasks, when set, makes the phase's tasks for the shard of agents
	// [lo, hi) instead of one per plan (a game round: games.go).
	tasks func(lo, hi int) []Task
}

// Plan is everything a run needs, derived from the scenario before any
// goroutine starts, so that bad input fails before anything is written.
type Plan struct {
	Study       *analysis.Study
	Instruments map[string]*questionnaires.Instrument
	Models      map[string]agent.Model
	Styles      map[string]agent.Style
	Phases      []Phase
	// Resolved is the scenario with its defaults filled in, as the
	// results directory keeps it.
	Resolved []byte
	Seed     uint64
	games    *gameRun // nil without a game (games.go)
	// models are the scenario's models, in its order (RebuildPrompts).
	models []scenarios.Model
	// calibrationCalls is the traffic of the model-specific calibration
	// that prepared the run (Preparation.Apply).
	calibrationCalls calibrationTraffic
}

// Instrument looks up one of the plan's instruments by name.
func (p *Plan) Instrument(name string) (*questionnaires.Instrument, bool) {
	in, ok := p.Instruments[name]
	return in, ok
}

// NewPlan builds the plan of sc, its models made by b. It reads no
// network and starts nothing.
func NewPlan(sc *scenarios.Scenario, b Backends) (*Plan, error) {
	p := &Plan{Instruments: map[string]*questionnaires.Instrument{}, Models: map[string]agent.Model{}, Styles: map[string]agent.Style{}, Seed: sc.Seed,
		models: sc.Models}
	// Sample requests are sized to the agents of a persona, known once
	// the pool is (read when agents ask, after the plan is complete).
	demand := func(v values.Value) int {
		if p.Study == nil || p.Study.Pool == nil {
			return 0
		}
		return p.Study.Pool.Count(v)
	}
	var errs []error

	// Instruments.
	var insts []*questionnaires.Instrument
	for _, q := range sc.Questionnaires {
		var in *questionnaires.Instrument
		var err error
		switch {
		case q.Name == questionnaires.PersonaName && q.File == "":
			// From the data set (prepare.go); nil when optional and absent.
			if in, err = personaInstrument(sc, q); in == nil && err == nil {
				continue
			}
		case q.File != "":
			in, err = questionnaires.Load(q.File)
		default:
			in, err = questionnaires.Builtin(q.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: questionnaire %q: %v", ErrBadInput, q.Name, err))
			continue
		}
		p.Instruments[in.Name] = in
		insts = append(insts, in)
	}

	// Population: one pool of agents serves every strategy.
	var members []population.Member
	for _, strat := range sc.Population.Strategies {
		name := string(strat)
		if strat == population.ModelSpecific {
			continue // one member per model, added by addPaper (prepare.go)
		}
		w, err := StrategyWeights(sc, strat)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: strategy %q: %v", ErrBadInput, name, err))
			continue
		}
		var counts [values.N + 1]int
		if sc.Population.Sampling == scenarios.Random {
			counts = population.Draw(w, sc.Population.Size, rand.New(rand.NewPCG(sc.Seed, 0x64726177)))
		} else {
			counts = population.Counts(w, sc.Population.Size)
		}
		members = append(members, population.Member{Name: name, Counts: counts})
	}

	// Models.
	var infos []analysis.ModelInfo
	for _, m := range sc.Models {
		model, info, err := b.Model(sc, m, demand)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Models[m.Name] = model
		infos = append(infos, info)
		p.Styles[m.Name] = m.Style
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var plans []analysis.Plan
	for _, m := range sc.Models {
		for _, in := range insts {
			n := len(in.Items)
			if q := questionnaireOf(sc, in.Name); q != nil && q.Items > 0 {
				n = min(n, q.Items)
			}
			items := make([]int, n)
			for i := range items {
				items[i] = i
			}
			plans = append(plans, analysis.Plan{Model: m.Name, Instrument: in, Items: items})
		}
	}
	answers := 0
	for _, pl := range plans {
		answers += len(pl.Items)
	}
	if err := checkMemory(sc, answers); err != nil {
		return nil, err
	}
	resolved, err := sc.Resolved()
	if err != nil {
		return nil, err
	}
	p.Resolved = resolved
	p.Phases = []Phase{{Plans: plans}}
	p.Study = &analysis.Study{
		Name: sc.Name, Seed: sc.Seed, Models: infos,
		Pool:                population.NewPool(members, sc.Seed),
		Plans:               plans,
		References:          sc.Analysis.References,
		Bootstrap:           sc.Analysis.Bootstrap,
		BootstrapIterations: sc.Analysis.BootstrapIterations,
		BootstrapSize:       sc.Analysis.BootstrapSize,
		MDS:                 analysis.MDSMethod(sc.Analysis.MDS),
		NullIterations:      sc.Analysis.NullIterations,
	}
	if err := addPaper(sc, p); err != nil {
		return nil, err
	}
	if err := addGames(sc, p); err != nil {
		return nil, err
	}
	return p, nil
}

// StrategyWeights are the dominant-value weights of strategy s under the
// scenario's human shares (population.StrategyWeights), or its custom
// weights. Model-specific weights come from a calibration, one set per
// model, and are an error here.
func StrategyWeights(sc *scenarios.Scenario, s population.Strategy) (population.Weights, error) {
	switch s {
	case population.Custom:
		return population.CustomWeights(sc.Population.Weights)
	case population.ModelSpecific:
		return population.Weights{}, errors.New("model-specific weights come from a calibration run (sim/prepare.go), one set per model")
	}
	sh, err := population.HumanShares(sc.Population.Shares)
	if err != nil {
		return population.Weights{}, err
	}
	return population.StrategyWeights(s, sh, sc.Population.NoDominant)
}

func questionnaireOf(sc *scenarios.Scenario, name string) *scenarios.Questionnaire {
	for i := range sc.Questionnaires {
		if sc.Questionnaires[i].Name == name {
			return &sc.Questionnaires[i]
		}
	}
	return nil
}

// ShardCount is the number of shards of agents agents when the scenario
// says configured (0: not at all): large enough that a batch carries real
// work, small enough that both cores stay busy on a quickstart-sized run.
func ShardCount(agents, configured int) int {
	if configured > 0 {
		return min(configured, agents)
	}
	n := agents / 4096
	return max(min(n, 4096), min(4*runtime.GOMAXPROCS(0), agents))
}

// ShardBounds are the agent ids [lo, hi) of shard s of n agents in shards.
func ShardBounds(s, n, shards int) (lo, hi int) {
	return s * n / shards, (s + 1) * n / shards
}

// NewShard instantiates shard s of shards of the plan's agents. Agents are
// fully determined by the scenario seed and their id, so any process can
// instantiate any shard and answer exactly as any other would.
func (p *Plan) NewShard(s, shards int) *agent.Shard {
	pool := p.Study.Pool
	lo, hi := ShardBounds(s, pool.Size(), shards)
	agents := make([]agent.Agent, hi-lo)
	for i := range agents {
		id := lo + i
		agents[i] = agent.New(id, agent.Persona{Value: pool.Persona[id]}, int(pool.Rank[id]), p.Seed)
	}
	return agent.NewShard(s, lo, agents, p.Models)
}

// TotalItems is the number of answers each agent gives over the run.
func (p *Plan) TotalItems() int {
	n := 0
	for _, pl := range p.Study.Plans {
		n += len(pl.Items)
	}
	return n
}

// RunID names the distributed run of sc in the run registry: its name
// and seed, so that starting the same scenario again continues the same
// run, and --resume names it. A single-process run's id is NewRunID's.
func RunID(sc *scenarios.Scenario) string {
	return fmt.Sprintf("%s-%d", sc.Name, sc.Seed)
}

// NewRunID is the id of a new single-process run of sc, started now:
// NAME-SEED-YYYYMMDD-HHMMSS-RANDOM, RANDOM eight hex digits from
// crypto/rand. Two runs of the same scenario and seed (a rerun, or two at
// once) thus differ in the run label of their metrics and in the run
// block of their results, and the default results directory is named by
// it (results.DefaultOut).
func NewRunID(sc *scenarios.Scenario) string {
	var b [4]byte
	crand.Read(b[:]) // never fails
	return fmt.Sprintf("%s-%s-%x", RunID(sc), time.Now().Format("20060102-150405"), b)
}

// batchKey names one shard's answers to one item: the unit in which
// answers travel and are stored.
type batchKey struct {
	model, instrument string
	round, item       int
	shard             int
}

// batchSet is the set of answer batches a run has stored; safe for
// concurrent use.
type batchSet struct {
	mu sync.Mutex
	m  map[batchKey]struct{}
}

func newBatchSet() *batchSet { return &batchSet{m: map[batchKey]struct{}{}} }

func (s *batchSet) add(b *agent.Batch) {
	s.mu.Lock()
	s.m[batchKey{b.Model, b.Instrument, b.Round, b.Item, b.Shard}] = struct{}{}
	s.mu.Unlock()
}

func (s *batchSet) has(k batchKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}

// missingTasks are the tasks of a phase whose answers are not all stored.
// A questionnaire phase gets one task per plan and shard asking only the
// items still missing; a game round, whose tasks carry the shard's
// memories, gets its tasks again for every shard lacking any answer. A
// fresh phase gets every task; a resumed run repeats nothing it has.
func missingTasks(ph Phase, have *batchSet, styles map[string]agent.Style, shards, agents int) []Task {
	missing := func(pl analysis.Plan, s int) []int {
		var items []int
		for _, it := range pl.Items {
			if !have.has(batchKey{pl.Model, pl.Instrument.Name, pl.Round, it, s}) {
				items = append(items, it)
			}
		}
		sort.Ints(items)
		return items
	}
	var out []Task
	if ph.tasks != nil {
		for s := range shards {
			lacking := false
			for _, pl := range ph.Plans {
				lacking = lacking || len(missing(pl, s)) > 0
			}
			if !lacking {
				continue
			}
			lo, hi := ShardBounds(s, agents, shards)
			for _, t := range ph.tasks(lo, hi) {
				t.Shard = s
				out = append(out, t)
			}
		}
		return out
	}
	for _, pl := range ph.Plans {
		for s := range shards {
			items := missing(pl, s)
			if len(items) == 0 {
				continue
			}
			out = append(out, Task{Model: pl.Model, Instrument: pl.Instrument.Name, Items: items,
				Round: pl.Round, Shard: s, Style: styles[pl.Model]})
		}
	}
	return out
}

// recordPrep is a run's preparation as a run's record keeps it, for the
// roles of a distributed run to report what the orchestrator settled.
type recordPrep struct {
	Calibration []analysis.CalibrationRow `json:"calibration,omitempty"`
	Notes       []string                  `json:"notes,omitempty"`
	// CalibrationLLM and CalibrationTraffic are the calibration run's
	// model traffic (Preparation.calls), which the process writing the
	// results adds to the agent hosts'.
	CalibrationLLM     *analysis.LLMCounts              `json:"calibration_llm,omitempty"`
	CalibrationTraffic map[string]analysis.ModelTraffic `json:"calibration_traffic,omitempty"`
}

// Encode is the preparation as a run's record keeps it; nil when there is
// nothing to keep.
func (pr Preparation) Encode() json.RawMessage {
	if len(pr.calibration) == 0 && len(pr.notes) == 0 && pr.calls.counts == (analysis.LLMCounts{}) && len(pr.calls.models) == 0 {
		return nil
	}
	r := recordPrep{Calibration: pr.calibration, Notes: pr.notes, CalibrationTraffic: pr.calls.models}
	if pr.calls.counts != (analysis.LLMCounts{}) {
		r.CalibrationLLM = &pr.calls.counts
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return b
}

// DecodePreparation reads what Encode wrote; empty raw is no preparation.
func DecodePreparation(raw json.RawMessage) (Preparation, error) {
	if len(raw) == 0 {
		return Preparation{}, nil
	}
	var r recordPrep
	if err := json.Unmarshal(raw, &r); err != nil {
		return Preparation{}, fmt.Errorf("run preparation: %w", err)
	}
	pr := Preparation{calibration: r.Calibration, notes: r.Notes, calls: calibrationTraffic{models: r.CalibrationTraffic}}
	if r.CalibrationLLM != nil {
		pr.calls.counts = *r.CalibrationLLM
	}
	return pr, nil
}

// RecordPlan builds the plan of a registered run from its stored scenario
// and preparation, as every role of a distributed run does. keyless drops
// the models' API key variables first: a role that builds the plan only
// to know the study never calls a model, and so must not need a key.
func RecordPlan(id string, scenario []byte, prep json.RawMessage, b Backends, keyless bool) (*scenarios.Scenario, *Plan, error) {
	sc, err := scenarios.Parse(scenario, "run "+id)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: scenario: %w", id, err)
	}
	if keyless {
		for i := range sc.Models {
			sc.Models[i].APIKeyEnv = ""
		}
	}
	p, err := NewPlan(sc, b)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", id, err)
	}
	pr, err := DecodePreparation(prep)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", id, err)
	}
	pr.Apply(p)
	// The results keep the scenario exactly as the orchestrator resolved it.
	p.Resolved = scenario
	return sc, p, nil
}
