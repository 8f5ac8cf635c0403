package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

type runConfig struct {
	Scenario *scenarios.Scenario
	Out      string
	Progress io.Writer // nil: no progress display
	Log      io.Writer
	Hooks    runHooks
	// CacheDir holds the model response cache; "" is the user's cache
	// directory.
	CacheDir string
	// NATSMaxPayload is the embedded server's max payload; zero is its
	// default. Tests lower it to hold the run to a small limit.
	NATSMaxPayload int32
}

// runHooks let observers (metrics) follow a run without the pipeline
// knowing them. Every field may be nil.
type runHooks struct {
	// Batch is called for every new answer batch the analysis stores.
	Batch func(b *agent.Batch)
	// Progress is called about ten times a second with the answer counts.
	Progress func(expected, valid, invalid int64)
	// BadMessage is called for every message that could not be decoded.
	BadMessage func(err error)
	// Start is called once the run's agents and answer stream exist,
	// before any of the run's goroutines starts.
	Start func(rs runStart)
	// Publish is called just before a phase's tasks go out to the shards.
	Publish func(plans []analysis.Plan, shards int)
	// Round is for game phases: called after a round is recorded, with the
	// share of players of each dominant value code who contributed.
	Round func(game string, round int, byValue map[string]float64)
	// Model is told about the model clients' requests.
	Model llm.Observer
	// Analysis is called once every answer is in, just before the
	// analysis starts.
	Analysis func()
}

// phase is a step of a run: its plans are published together and the run
// waits for all their answers before the next phase. A questionnaire run
// has one phase; a game has one per round.
type phase struct {
	plans []analysis.Plan
	// before, when set, runs before the phase's tasks go out, with every
	// earlier phase's answers in the collector.
	before func(ctx context.Context, col *analysis.Collector) error
	// tasks, when set, makes the phase's task messages for the shard of
	// agents [lo, hi) instead of one per plan (a game round: games.go).
	tasks func(lo, hi int) []bus.TaskMsg
}

type runResult struct {
	Outcome *analysis.Outcome
	// Collector and Study are the run's answers and design, for a run
	// that feeds another (the model-specific calibration).
	Collector *analysis.Collector
	Study     *analysis.Study
	Elapsed   time.Duration
}

// plan is everything a run needs, derived from the scenario before any
// goroutine starts, so that bad input fails before anything is written.
type plan struct {
	study       *analysis.Study
	instruments map[string]*questionnaires.Instrument
	models      map[string]agent.Model
	styles      map[string]agent.Style
	phases      []phase
	resolved    []byte
	backends    *backends
	games       *gameRun // nil without a game (games.go)
}

func buildPlan(sc *scenarios.Scenario, cacheDir string) (*plan, error) {
	p := &plan{instruments: map[string]*questionnaires.Instrument{}, models: map[string]agent.Model{}, styles: map[string]agent.Style{},
		backends: &backends{cacheDir: cacheDir}}
	// Sample requests are sized to the agents of a persona, known once
	// the pool is (read when agents ask, after the plan is complete).
	p.backends.demand = func(v values.Value) int {
		if p.study == nil || p.study.Pool == nil {
			return 0
		}
		return p.study.Pool.Count(v)
	}
	var errs []error

	// Instruments.
	var insts []*questionnaires.Instrument
	for _, q := range sc.Questionnaires {
		var in *questionnaires.Instrument
		var err error
		switch {
		case q.Name == questionnaires.PersonaName && q.File == "":
			// From the data set (modelspecific.go); nil when optional and absent.
			if in, err = personaInstrument(sc, q); in == nil && err == nil {
				continue
			}
		case q.File != "":
			in, err = questionnaires.Load(q.File)
		default:
			in, err = questionnaires.Builtin(q.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: questionnaire %q: %v", errBadInput, q.Name, err))
			continue
		}
		p.instruments[in.Name] = in
		insts = append(insts, in)
	}

	// Population: one pool of agents serves every strategy.
	var members []population.Member
	for _, strat := range sc.Population.Strategies {
		name := string(strat)
		if strat == population.ModelSpecific {
			continue // one member per model, added by addPaper (modelspecific.go)
		}
		w, err := strategyWeights(sc, strat)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: strategy %q: %v", errBadInput, name, err))
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
		model, info, err := p.backends.model(sc, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.models[m.Name] = model
		infos = append(infos, info)
		p.styles[m.Name] = m.Style
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
	p.resolved = resolved
	p.phases = []phase{{plans: plans}}
	p.study = &analysis.Study{
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

// syntheticMeans is the human sample whose value means centre the synthetic
// respondents' answers: the PVQ-40 sample, whose instrument they answer.
const syntheticMeans = "pvq40_smacof"

func strategyWeights(sc *scenarios.Scenario, s population.Strategy) (population.Weights, error) {
	switch s {
	case population.Custom:
		return population.CustomWeights(sc.Population.Weights)
	case population.ModelSpecific:
		return population.Weights{}, errors.New("model-specific weights come from a calibration run (modelspecific.go), one set per model")
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

// shardCount is the number of agents per shard when the scenario does not
// say: large enough that a batch message carries real work, small enough
// that both cores stay busy on a quickstart-sized run.
func shardCount(agents, configured int) int {
	if configured > 0 {
		return min(configured, agents)
	}
	n := agents / 4096
	return max(min(n, 4096), min(4*runtime.GOMAXPROCS(0), agents))
}

func runScenario(ctx context.Context, cfg runConfig) (*runResult, error) {
	start := time.Now()
	// The persona data and the model-specific weights are settled first
	// (modelspecific.go), so that the plan and the resolved scenario hold
	// what the run really used.
	sc, prep, err := prepareRun(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p, err := buildPlan(sc, cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	p.backends.obs.set(cfg.Hooks.Model)
	if cfg.Log != nil {
		p.backends.setLogger(slog.New(slog.NewTextHandler(cfg.Log, nil)))
	}
	prep.apply(p)
	defer p.backends.close()
	if err := p.backends.check(ctx); err != nil {
		return nil, err
	}
	p.games.observe(cfg.Hooks.Round)
	pool := p.study.Pool
	n := pool.Size()

	srv, err := bus.StartServer(bus.ServerOptions{MaxPayload: cfg.NATSMaxPayload})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("society-run")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	subj := bus.Subjects{Run: runID(sc)}
	expectedBytes := int64(n)*int64(totalItems(p))*2 + 64<<20
	if _, err := bus.EnsureAnswerStream(ctx, js, subj, bus.StreamOptions{MaxBytes: expectedBytes}); err != nil {
		return nil, err
	}
	// Tasks wait in the run's work queue until a worker takes them
	// (roles_local.go).
	if err := bus.EnsureTaskQueue(ctx, js, subj, localQueue(n)); err != nil {
		return nil, err
	}

	// Agents in shards.
	shards := shardCount(n, sc.Run.Shards)
	host := &bus.Host{Conn: nc, Subjects: subj, Instrument: func(name string) (*questionnaires.Instrument, bool) {
		in, ok := p.instruments[name]
		return in, ok
	}}
	for s := range shards {
		lo, hi := s*n/shards, (s+1)*n/shards
		agents := make([]agent.Agent, hi-lo)
		for i := range agents {
			id := lo + i
			agents[i] = agent.New(id, agent.Persona{Value: pool.Persona[id]}, int(pool.Rank[id]), sc.Seed)
		}
		host.Shards = append(host.Shards, agent.NewShard(s, lo, agents, p.models))
	}

	col := analysis.NewCollector(n, p.study.Plans)
	if cfg.Hooks.Start != nil {
		cfg.Hooks.Start(runStart{Study: p.study, Shards: host.Shards, JetStream: js, Subjects: subj})
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := serveLocal(runCtx, js, host); err != nil {
			cancel(err)
		}
	}()
	sink := col.Add
	if cfg.Hooks.Batch != nil {
		sink = func(b *agent.Batch) error {
			if err := col.Add(b); err != nil {
				return err
			}
			cfg.Hooks.Batch(b)
			return nil
		}
	}
	go func() {
		defer wg.Done()
		err := bus.ConsumeAnswers(runCtx, js, subj, sink, cfg.Hooks.BadMessage)
		if err != nil {
			cancel(err)
		}
	}()
	stopAll := func() {
		cancel(nil)
		wg.Wait()
	}

	bar := newProgressBar(cfg.Progress, sc.Name)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	progress := func() {
		e, v, i := col.Counts()
		bar.update(v+i, e)
		if cfg.Hooks.Progress != nil {
			cfg.Hooks.Progress(e, v, i)
		}
	}
	for i, ph := range p.phases {
		if ph.before != nil {
			if err := ph.before(runCtx, col); err != nil {
				bar.finish()
				stopAll()
				return nil, err
			}
		}
		if cfg.Hooks.Publish != nil {
			cfg.Hooks.Publish(ph.plans, shards)
		}
		if err := publishPhase(runCtx, js, nc, subj, fmt.Sprint("phase", i), ph, p.styles, shards, n); err != nil {
			bar.finish()
			stopAll()
			if runCtx.Err() != nil {
				return nil, cause(runCtx)
			}
			return nil, err
		}
	wait:
		for {
			done := true
			for _, pl := range ph.plans {
				if !col.Complete(pl) {
					done = false
					break
				}
			}
			if done {
				break wait
			}
			select {
			case <-col.Notify():
			case <-runCtx.Done():
				bar.finish()
				stopAll()
				return nil, cause(runCtx)
			case <-tick.C:
				progress()
			}
		}
	}
	progress()
	bar.finish()
	// Stop intake, drain NATS, then analyse and write.
	stopAll()
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return nil, fmt.Errorf("drain nats: %w", err)
	}

	p.study.Traffic = p.backends.traffic()
	p.study.Models = p.backends.label(ctx, p.study.Models)
	if cfg.Hooks.Analysis != nil {
		cfg.Hooks.Analysis()
	}
	outcome, err := p.study.Compute(ctx, col)
	if err != nil {
		return nil, err
	}
	outcome.Results.LLM = p.backends.counts()
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: nothing is written
	}
	if cfg.Out != "" {
		if err := results.Write(ctx, cfg.Out, &analysis.Output{Outcome: outcome, Collector: col, Study: p.study, Scenario: p.resolved}); err != nil {
			return nil, err
		}
	}
	return &runResult{Outcome: outcome, Elapsed: time.Since(start), Collector: col, Study: p.study}, nil
}

func cause(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

func totalItems(p *plan) int {
	n := 0
	for _, pl := range p.study.Plans {
		n += len(pl.Items)
	}
	return n
}

func runID(sc *scenarios.Scenario) string {
	return fmt.Sprintf("%s-%d", sc.Name, sc.Seed)
}

func printSummary(w io.Writer, r *runResult, dir string) {
	res := &r.Outcome.Results
	if res.Note != "" {
		fmt.Fprintln(w, "SYNTHETIC RESPONDENTS: "+res.Note)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Scenario %s (seed %d): %d answers expected, %d valid, %d invalid, in %.1fs.\n\n",
		res.Scenario, res.Seed, res.Answers.Expected, res.Answers.Valid, res.Answers.Invalid, r.Elapsed.Seconds())
	printModelRuns(w, res)
	fmt.Fprintf(w, "Values similarity to human value structure by %s (1 = identical; 95%% interval: %s; p: permutation test, %d permutations):\n",
		res.MDS.Describe(), res.Bootstrap.Label, res.Bootstrap.NullIterations)
	fmt.Fprintln(w)
	fmt.Fprint(w, results.ValueStructureTable(res.ValueStructure))
	printBehaviorSummary(w, res)
	printGames(w, res)
	fmt.Fprintf(w, "\nResults: %s (report.md, results.json, answers, figures)\n", dir)
}

// printModelRuns says what each model really did, and loudly when its
// answers are mostly invalid.
func printModelRuns(w io.Writer, res *analysis.Results) {
	if len(res.ModelRuns) == 0 {
		return
	}
	for _, mr := range res.ModelRuns {
		if s := analysis.MostlyInvalidWarning(mr); s != "" {
			fmt.Fprintln(w, s)
		}
	}
	fmt.Fprintln(w, "Models:")
	for _, mr := range res.ModelRuns {
		fmt.Fprintln(w, "  "+analysis.ModelRunLine(mr))
	}
	fmt.Fprintln(w)
	for _, s := range res.UndefinedSimilarities() {
		fmt.Fprintln(w, "WARNING: "+s)
	}
}

// runVerdict warns on stderr of every model whose answers are mostly
// invalid, and returns an error (exit 1) when no agent could be scored:
// a run whose tables hold nothing must not look like a success.
func runVerdict(stderr io.Writer, res *analysis.Results, dir string) error {
	for _, mr := range res.ModelRuns {
		if s := analysis.MostlyInvalidWarning(mr); s != "" {
			fmt.Fprintln(stderr, s)
		}
	}
	for _, s := range res.UndefinedSimilarities() {
		fmt.Fprintln(stderr, "WARNING: "+s)
	}
	if err := res.Unscored(); err != nil {
		return fmt.Errorf("run %s: %w (the answers are in %s)", res.Scenario, err, dir)
	}
	return nil
}

// progressBar draws a one-line bar on a terminal; with a nil writer it does
// nothing.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now()}
}

func (b *progressBar) update(done, total int64) {
	if b.w == nil || total == 0 {
		return
	}
	const width = 30
	f := float64(done) / float64(total)
	full := int(f * width)
	el := time.Since(b.start).Seconds()
	rate := float64(done) / max(el, 1e-9)
	fmt.Fprintf(b.w, "\r%s [%s%s] %5.1f%% %d/%d answers  %.0f/s ", b.label,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*f, done, total, rate)
	b.drawn = true
}

func (b *progressBar) finish() {
	if b.w != nil && b.drawn {
		fmt.Fprintln(b.w)
	}
}
