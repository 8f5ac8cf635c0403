package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
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
	Lines *progressLog
}

// newEngine is the engine of a single-process run and the close of the
// model backends it makes.
func newEngine(cfg runConfig) (*sim.Engine, func()) {
	var log *slog.Logger
	if cfg.Log != nil {
		log = slog.New(slog.NewTextHandler(cfg.Log, nil))
	}
	models := newModelSets(cfg.CacheDir, cfg.Model, log).WithCache(cfg.CacheMode, cfg.CacheShared)
	bar := newProgressBar(cfg.Progress, "")
	obs := sim.Observers{bar}
	if cfg.Observer != nil {
		obs = append(obs, cfg.Observer)
	}
	cal, stop := sim.Observer(bar), func() {}
	if cfg.Lines != nil {
		obs = append(obs, cfg.Lines.observer(""))
		cal, stop = sim.Observers{bar, cfg.Lines.observer("calibration")}, cfg.Lines.start()
	}
	e := &sim.Engine{
		Provenance:  runBlock,
		Backends:    models.Backends,
		Open:        bus.Embedded{MaxPayload: cfg.NATSMaxPayload, Bad: cfg.BadMessage}.Open,
		Observer:    obs,
		Calibration: cal,
	}
	return e, func() { stop(); bar.finish(); models.Close() }
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

// progressBar draws a one-line bar on a terminal as a run's observer;
// with a nil writer it does nothing. A run after another (the main run
// after its calibration) starts a new line.
type progressBar struct {
	sim.NoObserver
	w     io.Writer
	label string // "" takes the run's scenario name
	name  string
	start time.Time
	drawn time.Time // zero: nothing drawn on the line
}

// barEvery is how often the bar is redrawn at most: a terminal needs no
// more, and a large run stores thousands of batches a second.
const barEvery = 100 * time.Millisecond

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, name: label, start: time.Now()}
}

// Start begins the bar of a run.
func (b *progressBar) Start(l sim.Layout) {
	b.finish()
	b.start, b.name = time.Now(), b.label
	if b.name == "" {
		b.name = l.Name
	}
}

// Batch redraws the bar, at most every barEvery and when the answers are
// all in.
func (b *progressBar) Batch(_ *agent.Batch, n sim.Counts) {
	done := n.Valid + n.Invalid
	if time.Since(b.drawn) >= barEvery || done >= n.Expected {
		b.update(done, n.Expected)
	}
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
	fmt.Fprintf(b.w, "\r%s [%s%s] %5.1f%% %d/%d answers  %.0f/s ", b.name,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*f, done, total, rate)
	b.drawn = time.Now()
}

// finish ends the bar's line.
func (b *progressBar) finish() {
	if b.w != nil && !b.drawn.IsZero() {
		fmt.Fprintln(b.w)
		b.drawn = time.Time{}
	}
}
