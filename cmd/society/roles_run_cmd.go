package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
)

// runDistFlags are the options of "society run" that make it the
// orchestrator of a run over an external NATS cluster.
type runDistFlags struct {
	nats    *bus.Flags
	queue   *bus.TaskQueueOptions
	resume  string
	fresh   bool
	verbose bool
}

func addRunDistFlags(fs *flag.FlagSet) *runDistFlags {
	d := &runDistFlags{nats: bus.AddFlags(fs, false), queue: bus.AddQueueFlags(fs)}
	fs.StringVar(&d.resume, "resume", "", "with --nats: continue the registered run `ID` (rerunning the same scenario and seed does too)")
	fs.BoolVar(&d.fresh, "fresh", false, "with --nats: discard what the run stored before and start a new run, named NAME-SEED-TIME-RANDOM as a single-process run is")
	fs.BoolVar(&d.verbose, "log-debug", false, "with --nats: log every step")
	return d
}

// active reports whether a distributed option was given.
func (d *runDistFlags) active() bool { return d.nats.Set() || d.resume != "" || d.fresh }

// cmdRunDistributed is "society run --nats URL": the orchestrator role.
func cmdRunDistributed(ctx context.Context, d *runDistFlags, pos []string, out string, force, quiet bool, prog *progress.Options, cache *llm.CacheFlags, metricsAddr string, metricsLinger time.Duration, stdout, stderr io.Writer) error {
	if !d.nats.Set() {
		return fmt.Errorf("%w: --resume and --fresh need --nats URL: the embedded server keeps nothing after a run", errUsage)
	}
	if err := d.queue.Check(); err != nil {
		return usageOf(err)
	}
	if err := prog.Check(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var sc *scenarios.Scenario
	if len(pos) == 1 || d.resume == "" {
		name := "quickstart"
		if len(pos) == 1 {
			name = pos[0]
		}
		var err error
		if sc, err = scenarios.Open(name); err != nil {
			return err
		}
		if err := scenarios.Unrelated(sc); err != nil {
			return err
		}
	}
	name := ""
	if sc != nil {
		name = sc.Name
	}
	if err := checkOut(out, name, force); err != nil {
		return err
	}
	var bar io.Writer
	var lines *progress.Log
	if !quiet {
		bar, lines = prog.Display(stderr)
	}
	srv, err := startMetrics(ctx, metricsAddr, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	live := metrics.Follow(ctx, srv.Metrics())
	defer live.Finish(nil)
	res, err := runDistributed(ctx, d, sc, out, force, cache, bar, lines, srv.Metrics(), live, stderr)
	if err != nil {
		return err
	}
	live.Finish(res.Outcome)
	printDistSummary(stdout, res)
	if res.Outcome != nil {
		if err := results.Verdict(stderr, &res.Outcome.Results, res.Record.Dir); err != nil {
			return err
		}
	}
	srv.Linger(ctx, metricsLinger, stderr)
	return nil
}
