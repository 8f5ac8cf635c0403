package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/sim"
)

const analyzeSynopsis = `analyze --nats URL [--out DIR] [--name NAME] [--run ID] [--metrics ADDR]

Runs the analysis service: it follows the answers of every run registered
on the NATS cluster, publishes progress, and when a run's orchestrator
reports every answer in, computes the results and writes the results
directory DIR/RUN-ID. Killed and started again, it rebuilds everything
from the answers JetStream keeps: nothing is lost or counted twice. Run
one analysis service per name (two with the same name share a consumer).

` + bus.FlagsHelp

// cmdAnalyze runs "society analyze" until ctx is done.
func cmdAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze", analyzeSynopsis, stderr)
	nf := bus.AddFlags(fs, true)
	host, _ := os.Hostname()
	out := fs.String("out", "results", "write each run's results directory under `DIR`")
	name := fs.String("name", host, "this service's name (its durable consumers are named after it)")
	only := fs.String("run", "", "analyse only the run `ID` (default: every run)")
	verbose := fs.Bool("v", false, "log every step")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `ADDR` (HOST:PORT; :PORT binds 127.0.0.1) while the service runs")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("analyze takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if !nf.Set() {
		problems = append(problems, "--nats URL is required: the analysis service follows the runs of a NATS cluster")
	}
	if *name == "" {
		problems = append(problems, "--name: must not be empty")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	srv, err := startMetrics(ctx, *metricsAddr, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	log := roleLogger(stderr, *verbose).With("role", "analyze", "name", *name)
	nc, js, reg, err := nf.Join(ctx, "analyze", log)
	if err != nil || reg == nil {
		return usageOf(err)
	}
	defer bus.Drain(nc)
	m := srv.Metrics()
	a := &bus.Analyst{NC: nc, JS: js, Reg: reg, Log: log, Name: *name, Out: *out, Only: *only, RunBlock: distributedRun,
		Backends: backend.Describe, // calls no model: opens no cache
		Follow: func(ctx context.Context, l sim.Layout, col *analysis.Collector) (func(*agent.Batch) error, func(*analysis.Outcome)) {
			live := metrics.FollowAnswers(ctx, m, l)
			return live.Sink(col), live.Finish
		}}
	log.Info("analysis service ready; waiting for runs")
	err = a.Serve(ctx)
	fmt.Fprintln(stdout, a)
	return err
}
