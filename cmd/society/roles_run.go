package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// runDistributed runs sc (nil with --resume, which names a registered run
// instead) over the cluster d names: bus.Orchestrator, wired to the
// scenario's preparation in this process, the model cache with the
// cluster's reply bucket as its shared tier, the plan block and the progress
// bar (bar) or lines (lines; both nil: none) of the calibration and the main run,
// and the metrics (m: nil for none). Out, when set, makes the orchestrator
// write the results itself, instead of waiting for the analysis service.
func runDistributed(ctx context.Context, d *runDistFlags, sc *scenarios.Scenario, out string, force bool, cache *llm.CacheFlags,
	bar io.Writer, lines *progress.Log, m *metrics.Metrics, live *metrics.Follower, stderr io.Writer) (*bus.Orchestrated, error) {
	start := time.Now() // the preparation included
	log := roleLogger(stderr, d.verbose).With("role", "run")
	o, err := d.nats.Orchestrator(ctx, log, *d.queue)
	if err != nil {
		return nil, usageOf(err)
	}
	defer o.Close()
	given := sc
	if sc, err = o.Scenario(ctx, d.resume, sc); err != nil {
		return nil, usageOf(err)
	}
	if given == nil {
		if err := checkOut(out, sc.Name, force); err != nil {
			return nil, err
		}
	}
	if bar != nil || lines != nil { // a rerun of a run done requests nothing: its plan says so
		if err := planBlock(ctx, sc, nil, o.Stored(ctx, sc, d.fresh), stderr); err != nil {
			return nil, err
		}
	}
	var shared llm.Store
	o.Replies, shared = sharedCache(ctx, o.JS, cache, log)
	models := newModelSets(cache.Dir, nil, log).WithCache(cache.Mode(), shared)
	defer models.Close()
	// Preparing keeps the scenario's name and seed, so its run id.
	b := progress.NewBar(ctx, bar, bus.RunID(sim.RunID(sc)))
	defer b.Finish()
	obs, cal, stop := sim.Observers{b}, sim.Observers{b}, func() {}
	if lines != nil {
		obs, cal, stop = append(obs, lines.Observer("")), append(cal, lines.Observer("calibration")), lines.Start(ctx)
	}
	defer stop()
	if m != nil {
		obs, o.BadMessage = append(obs, live.Observer()), m.BadMessage
	}
	// Preparing needs the models and an embedded server for the calibration.
	prep := &sim.Engine{Backends: models.Backends, Open: bus.Embedded{}.Open, Calibration: cal}
	o.Observer, o.Fresh, o.Start, o.RunBlock, o.Prepare, o.Models = obs, d.fresh, start, distributedRun, prep.Prepare, models.Set()
	o.Answered = func(context.Context, error) { b.Finish() }
	return o.Run(ctx, sc, out)
}

// printDistSummary tells where the results were written.
func printDistSummary(w io.Writer, r *bus.Orchestrated) {
	fmt.Fprint(w, r.Note())
	if r.Outcome != nil {
		printSummary(w, &sim.Result{Outcome: r.Outcome, Elapsed: r.Elapsed}, r.Record.Dir)
	} else {
		fmt.Fprintf(w, "Run %s done in %.1f s.\nResults: %s\n", r.ID, r.Elapsed.Seconds(), r.Record.Dir)
	}
	if r.Record.Host != "" {
		fmt.Fprintf(w, "(written on %s)\n", r.Record.Host)
	}
}
