package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// runConfig wires a single-process run: the engine of package sim over an
// embedded NATS server, the model backends, and what observes the run.
type runConfig struct {
	Scenario *scenarios.Scenario
	Out, ID  string    // the results directory; the run's id (sim.NewRunID)
	Progress io.Writer // a terminal's progress bar, when set
	Log      io.Writer // the model clients' log lines; nil drops them
	CacheDir string    // the model cache; "" is the user's cache directory
	// CacheMode is read-write unless set; CacheShared, when not nil, is
	// the cache's shared tier.
	CacheMode      llm.CacheMode
	CacheShared    llm.Store
	NATSMaxPayload int32 // the embedded server's; zero is its default
	// Observer, Model (the model clients' requests) and BadMessage (every
	// message that could not be decoded) may each be nil.
	Observer   sim.Observer
	Model      llm.Observer
	BadMessage func(error)
	Lines      *progress.Log // progress lines, when stderr is not a terminal
}

// newEngine is the engine of a single-process run and the close of the
// model backends it makes.
func newEngine(ctx context.Context, cfg runConfig) (*sim.Engine, func()) {
	var log *slog.Logger
	if cfg.Log != nil {
		log = roleLogger(cfg.Log, false)
	}
	models := newModelSets(cfg.CacheDir, cfg.Model, log).WithCache(cfg.CacheMode, cfg.CacheShared)
	bar := progress.NewBar(ctx, cfg.Progress, "")
	obs := sim.Observers{bar}
	if cfg.Observer != nil {
		obs = append(obs, cfg.Observer)
	}
	cal, stop := sim.Observer(bar), func() {}
	if cfg.Lines != nil {
		obs = append(obs, cfg.Lines.Observer(""))
		cal, stop = sim.Observers{bar, cfg.Lines.Observer("calibration")}, cfg.Lines.Start(ctx)
	}
	e := &sim.Engine{
		Provenance:  runBlock,
		ID:          cfg.ID,
		Backends:    models.Backends,
		Open:        bus.Embedded{MaxPayload: cfg.NATSMaxPayload, Bad: cfg.BadMessage}.Open,
		Observer:    obs,
		Calibration: cal,
	}
	return e, func() { stop(); bar.Finish(); models.Close() }
}

// runScenario runs cfg.Scenario in this process and writes its results
// to cfg.Out (nothing when empty).
func runScenario(ctx context.Context, cfg runConfig) (*sim.Result, error) {
	e, done := newEngine(ctx, cfg)
	defer done()
	return e.Run(ctx, cfg.Scenario, cfg.Out)
}

func printSummary(w io.Writer, r *sim.Result, dir string) {
	results.Summary(w, &r.Outcome.Results, r.Elapsed, dir)
}
