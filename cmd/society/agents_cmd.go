package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

const agentsSynopsis = `agents --nats URL [--name NAME] [--tasks N] [--run ID] [--cache DIR] [--cache-mode MODE | --no-cache] [--metrics ADDR]

Runs an agent host: it learns the runs registered on the NATS cluster and
answers their tasks with the scenario's agents and models. Start as many
hosts as you like, on as many machines, before or during a run; each takes
whatever task is next, and the tasks of a host that stops go to the
others. Stop it with Ctrl-C (its tasks in hand go back to the queue).

` + bus.FlagsHelp

// cmdAgents runs "society agents" until ctx is done.
func cmdAgents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agents", agentsSynopsis, stderr)
	nf := bus.AddFlags(fs, true)
	host, _ := os.Hostname()
	name := fs.String("name", fmt.Sprintf("%s-%d", host, os.Getpid()), "this host's name in logs and dead-letter records")
	tasks := fs.Int("tasks", 4, "tasks served at once (each is one shard's agents answering one questionnaire)")
	only := fs.String("run", "", "serve only the run `ID` (default: every run)")
	cache := llm.AddCacheFlags(fs, "shared by the runs this host serves")
	verbose := fs.Bool("v", false, "log every step")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `ADDR` (HOST:PORT; :PORT binds 127.0.0.1) while the service runs")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("agents takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if !nf.Set() {
		problems = append(problems, "--nats URL is required: an agent host serves the runs of a NATS cluster")
	}
	if *tasks < 1 {
		problems = append(problems, fmt.Sprintf("--tasks: must be at least 1, got %d", *tasks))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	if err := cache.Check(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	srv, err := startMetrics(ctx, *metricsAddr, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	log := roleLogger(stderr, *verbose).With("role", "agents", "host", *name)
	nc, js, reg, err := nf.Join(ctx, "agents", log)
	if err != nil || reg == nil {
		return usageOf(err)
	}
	defer bus.Drain(nc)
	log.Info("agent host ready; waiting for runs")
	// The shared tier is opened once for every run the host serves.
	_, shared := sharedCache(ctx, js, cache, log)
	m := srv.Metrics()
	h := &bus.AgentHost{JS: js, Reg: reg, Log: log, Name: *name, Concurrency: *tasks, Only: *only,
		Models: func(_ string, log *slog.Logger, f *bus.Flights) (bus.HostModels, func()) {
			models := newModelSets(cache.Dir, modelObserver(m), log).WithCache(cache.Mode(), shared).WithFlights(f)
			return hostModels{models.Set()}, models.Close
		},
		Follow: func(rec bus.RunRecord, sc *scenarios.Scenario, p *sim.Plan) func() {
			return m.Run(metrics.RunInfo{ID: rec.ID, Scenario: sc.Name, Seed: p.Seed}).End
		}}
	err = h.Serve(ctx)
	fmt.Fprintln(stdout, h)
	return err
}

// sharedCache opens the cluster's reply bucket as the shared tier of the
// model cache, unless the cache is off: nil (and a nil llm.Store, not a
// nil *bus.KVStore in one) when there is none.
func sharedCache(ctx context.Context, js jetstream.JetStream, cache *llm.CacheFlags, log *slog.Logger) (*bus.KVStore, llm.Store) {
	if cache.Mode() == llm.CacheOff {
		return nil, nil
	}
	if kv := bus.OpenReplies(ctx, js, cache.SharedBytes(), log); kv != nil {
		return kv, kv
	}
	return nil, nil
}
