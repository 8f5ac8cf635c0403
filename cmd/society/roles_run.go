package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// A distributed run's orchestrator is bus.Orchestrator: here it is
// wired to the cluster, the scenario's preparation in this process, the
// model cache and the progress bar.

// distConfig configures a distributed run.
type distConfig struct {
	NATS *bus.Flags
	// Scenario is the study to run; nil with Resume, which names a
	// registered run instead.
	Scenario *scenarios.Scenario
	Resume   string
	// Out, when set, makes the orchestrator write the results directory
	// itself, from the answers it followed, instead of waiting for the
	// analysis service.
	Out string
	// Force lets Out replace whatever it names (see checkOut).
	Force bool
	// Fresh discards whatever the run stored before.
	Fresh    bool
	Queue    bus.TaskQueueOptions
	CacheDir string
	// CacheMode is what the run does with the model cache; the cluster's
	// shared reply bucket (at most SharedCacheBytes)
	// is its shared tier, and is copied to the cache's file at the end.
	CacheMode        llm.CacheMode
	SharedCacheBytes int64
	// Stall is how long a phase may go without a new answer while no task
	// is queued before its missing work is handed out again; 0 means
	// twice the ack wait.
	Stall    time.Duration
	Progress io.Writer // nil: no progress bar
	Log      *slog.Logger
	// Stderr takes what a calibration run before the main run prints.
	Stderr io.Writer
	// Observer follows the run (the metrics) besides the progress bar;
	// BadMessage is told about every message that could not be used.
	// Either may be nil.
	Observer   sim.Observer
	BadMessage func(error)
}

// distResult is what a finished distributed run reports.
type distResult struct {
	ID      string
	Record  bus.RunRecord
	Outcome *analysis.Outcome // nil when the results did not fit the record
	Elapsed time.Duration
}

func runDistributed(ctx context.Context, cfg distConfig) (*distResult, error) {
	start := time.Now()
	log := cfg.Log
	nc, err := cfg.NATS.Connect(ctx, "run", log)
	if err != nil {
		return nil, usageOf(err)
	}
	defer bus.Drain(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	reg, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{Replicas: cfg.Queue.Replicas})
	if err != nil {
		return nil, err
	}

	sc := cfg.Scenario
	if cfg.Resume != "" {
		rec, _, ok, err := reg.Get(ctx, bus.RunID(cfg.Resume))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: --resume %s: no such run in the registry", errUsage, cfg.Resume)
		}
		rsc, err := scenarios.Parse([]byte(rec.Scenario), "run "+rec.ID)
		if err != nil {
			return nil, fmt.Errorf("run %s: stored scenario: %w", rec.ID, err)
		}
		if sc != nil && sim.RunID(sc) != sim.RunID(rsc) {
			return nil, fmt.Errorf("%w: --resume %s, but the scenario given is run %s", errUsage, cfg.Resume, sim.RunID(sc))
		}
		if sc == nil {
			if err := checkOut(cfg.Out, rsc.Name, cfg.Force); err != nil {
				return nil, err
			}
		}
		sc = rsc
	}
	// As in a single-process run: the persona data and any model-specific
	// calibration (run in this process) are settled first, so that the
	// resolved scenario every host builds its agents from holds what the
	// run really uses.
	var replies *bus.KVStore
	if cfg.CacheMode != llm.CacheOff {
		replies = bus.OpenReplies(ctx, js, cfg.SharedCacheBytes, log)
	}
	var shared llm.Store
	if replies != nil {
		shared = replies
	}
	e, closeEngine := newEngine(runConfig{CacheDir: cfg.CacheDir, CacheMode: cfg.CacheMode, CacheShared: shared, Log: cfg.Stderr})
	defer closeEngine()
	sc, prep, err := e.Prepare(ctx, sc)
	if err != nil {
		return nil, err
	}
	models := newModelSets(cfg.CacheDir, nil, nil).WithCache(cfg.CacheMode, shared)
	defer models.Close()
	b := models.Set()
	p, err := sim.NewPlan(sc, b)
	if err != nil {
		return nil, err
	}
	prep.Apply(p)
	id := bus.RunID(sim.RunID(sc))
	bar := progress.NewBar(cfg.Progress, id)
	defer bar.Finish()
	obs := sim.Observers{bar}
	if cfg.Observer != nil {
		obs = append(obs, cfg.Observer)
	}
	o := &bus.Orchestrator{NC: nc, JS: js, Reg: reg, Log: log, Fresh: cfg.Fresh, Queue: cfg.Queue, Stall: cfg.Stall,
		Observer: obs, BadMessage: cfg.BadMessage, Start: start, RunBlock: distributedRun,
		Answered: func(ctx context.Context, err error) {
			bar.Finish()
			if err == nil && replies != nil {
				b.Keep(ctx, replies.Each)
			}
		}}
	r, err := o.Run(ctx, sc, p, prep, cfg.Out)
	if err != nil {
		return nil, err
	}
	return &distResult{ID: r.ID, Record: r.Record, Outcome: r.Outcome, Elapsed: time.Since(start)}, nil
}

// printDistSummary tells where the analysis service wrote the results.
func printDistSummary(w io.Writer, r *distResult) {
	if r.Outcome != nil {
		printSummary(w, &sim.Result{Outcome: r.Outcome, Elapsed: r.Elapsed}, r.Record.Dir)
	} else {
		fmt.Fprintf(w, "Run %s done in %.1fs.\nResults: %s\n", r.ID, r.Elapsed.Seconds(), r.Record.Dir)
	}
	if r.Record.Host != "" {
		fmt.Fprintf(w, "(written on %s)\n", r.Record.Host)
	}
}
