package sim

import (
	"context"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
)

// Engine runs scenarios in one process: it prepares a scenario, builds
// its plan, opens a dispatcher for it, runs the Loop, analyses the answers
// and writes the results directory.
type Engine struct {
	// Backends makes the models of each plan (the main run's, and a
	// calibration run's apart). Whoever provides it closes what it made.
	Backends func() Backends
	// Open opens the run's dispatcher once the plan and its shards are
	// known (an embedded NATS server, or Local); close stops it, and is
	// called before the analysis, once every answer is in.
	Open func(ctx context.Context, l Layout) (d Dispatcher, close func() error, err error)
	// Observer follows the main run; Calibration follows the
	// Model-Specific calibration run before it. Either may be nil.
	Observer    Observer
	Calibration Observer
	// Provenance, when set, starts the run block of a run with id that
	// starts at start (the program's build, the host); the engine adds the
	// models and the end, and the results record it.
	Provenance func(id string, start time.Time) *analysis.Run
	// NoPrefetch leaves every question to the agent that asks it (see
	// Loop.Prefetch): the answers are the same, only slower to come.
	NoPrefetch bool
	// ID is the main run's id (NewRunID, which names the default results
	// directory too); "" makes a new one. The model-specific calibration
	// run before it gets an id of its own.
	ID string
}

// Result is what a run that wrote its results reports.
type Result struct {
	Outcome *analysis.Outcome
	// Collector and Study are the run's answers and design, for a run
	// that feeds another (the model-specific calibration).
	Collector *analysis.Collector
	Study     *analysis.Study
	Plan      *Plan
	Elapsed   time.Duration
}

// Run runs sc and, when out is not empty, writes its results directory
// there. Interrupted (ctx done), it writes nothing.
func (e *Engine) Run(ctx context.Context, sc *scenarios.Scenario, out string) (*Result, error) {
	start := time.Now()
	// The persona data and the model-specific weights are settled first,
	// so that the plan and the resolved scenario hold what the run really
	// used.
	sc, prep, err := e.Prepare(ctx, sc)
	if err != nil {
		return nil, err
	}
	res, err := e.run(ctx, sc, out, e.Observer, prep, e.ID)
	if err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

func (e *Engine) run(ctx context.Context, sc *scenarios.Scenario, out string, obs Observer, prep Preparation, id string) (*Result, error) {
	start := time.Now()
	if id == "" {
		id = NewRunID(sc)
	}
	b := e.Backends()
	p, err := NewPlan(sc, b)
	if err != nil {
		return nil, err
	}
	prep.Apply(p)
	if err := b.Check(ctx); err != nil {
		return nil, err
	}
	prompts := recordPrompts(sc, p)
	lay := Layout{ID: id, Name: sc.Name, Plan: p, Shards: ShardCount(p.Study.Pool.Size(), sc.Run.Shards)}
	d, closeD, err := e.Open(ctx, lay)
	if err != nil {
		return nil, err
	}
	lay.Dispatcher = d
	loop := &Loop{Layout: lay, Observer: obs, Prefetch: !e.NoPrefetch}
	col, err := loop.Run(ctx)
	// Stop intake and drain the transport before the analysis.
	if cerr := closeD(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	rep := b.Report(ctx, p.Study.Models)
	p.calibrationCalls.addTo(&rep)
	p.Study.Traffic, p.Study.Models = rep.Traffic, rep.Models
	stage(obs, StageAnalysing)
	var run *analysis.Run
	if e.Provenance != nil {
		run = e.Provenance(lay.ID, start)
		run.Models = rep.Run
	}
	outcome, err := results.Produce(ctx, out, results.Finished{Study: p.Study, Collector: col, Scenario: p.Resolved, Prompts: prompts.Rows(), LLM: rep.Counts, Run: run,
		Computed: func(*analysis.Outcome) {
			if out != "" {
				stage(obs, StageWriting)
			}
		}})
	if err != nil {
		return nil, err
	}
	return &Result{Outcome: outcome, Collector: col, Study: p.Study, Plan: p}, nil
}
