package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/society-sim/society/analysis"
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
	Out      string
	// Progress, when set, shows a progress bar (a terminal).
	Progress io.Writer
	// Log takes the model clients' log lines; nil drops them.
	Log io.Writer
	// CacheDir holds the model response cache; "" is the user's cache
	// directory.
	CacheDir string
	// CacheMode is what the run does with the cache (read-write unless
	// set); CacheShared, when not nil, is its shared tier.
	CacheMode   llm.CacheMode
	CacheShared llm.Store
	// NATSMaxPayload is the embedded server's max payload; zero is its
	// default. Tests lower it to hold the run to a small limit.
	NATSMaxPayload int32
	// Observer follows the run besides the progress bar; Model is told
	// about the model clients' requests; BadMessage about every message
	// that could not be decoded. Each may be nil.
	Observer   sim.Observer
	Model      llm.Observer
	BadMessage func(error)
	// Lines, when set, writes progress lines (stderr not a terminal).
	Lines *progress.Log
}

// newEngine is the engine of a single-process run and the close of the
// model backends it makes.
func newEngine(cfg runConfig) (*sim.Engine, func()) {
	var log *slog.Logger
	if cfg.Log != nil {
		log = slog.New(slog.NewTextHandler(cfg.Log, nil))
	}
	models := newModelSets(cfg.CacheDir, cfg.Model, log).WithCache(cfg.CacheMode, cfg.CacheShared)
	bar := progress.NewBar(cfg.Progress, "")
	obs := sim.Observers{bar}
	if cfg.Observer != nil {
		obs = append(obs, cfg.Observer)
	}
	cal, stop := sim.Observer(bar), func() {}
	if cfg.Lines != nil {
		obs = append(obs, cfg.Lines.Observer(""))
		cal, stop = sim.Observers{bar, cfg.Lines.Observer("calibration")}, cfg.Lines.Start()
	}
	e := &sim.Engine{
		Provenance:  runBlock,
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
	e, done := newEngine(cfg)
	defer done()
	return e.Run(ctx, cfg.Scenario, cfg.Out)
}

func printSummary(w io.Writer, r *sim.Result, dir string) {
	results.Summary(w, &r.Outcome.Results, r.Elapsed, dir)
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
