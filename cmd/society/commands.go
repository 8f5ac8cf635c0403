package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// parseFlags parses flags and positional arguments in any order
// ("run paper --out x" as well as "run --out x paper").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: society %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "run [SCENARIO] [--out DIR] [--nats URL [--resume ID]]\n\nSCENARIO is a TOML file or a built-in name (see 'society scenarios'); default quickstart.\nWith --nats the run is the orchestrator of agent hosts ('society agents') and an\nanalysis service ('society analyze') on a NATS cluster.\n\n"+bus.FlagsHelp, stderr)
	out := fs.String("out", "", "results directory (default results/NAME-SEED-TIME-RANDOM, the run id; with --nats the analysis service writes results/NAME-SEED); refused when it holds anything but an earlier result of the same scenario")
	force := fs.Bool("force", false, "let --out replace whatever it names (a file, a non-empty directory, another study's results), a symbolic link apart")
	quiet := fs.Bool("quiet", false, "no progress display")
	prog := progress.AddFlags(fs)
	cache := llm.AddCacheFlags(fs, "reruns make no model calls")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `FILE` (for performance work)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `ADDR` (HOST:PORT; :PORT binds 127.0.0.1) while the run lasts")
	metricsLinger := fs.Duration("metrics-linger", 0, "keep serving metrics this `LONG` after the run, so a last scrape sees the final values")
	dist := addRunDistFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: run takes one scenario, got %d", errUsage, len(pos))
	}
	if err := cache.Check(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if dist.active() {
		return cmdRunDistributed(ctx, dist, pos, *out, *force, *quiet, prog, cache, *metricsAddr, *metricsLinger, stdout, stderr)
	}
	name := "quickstart"
	if len(pos) == 1 {
		name = pos[0]
	}
	sc, err := scenarios.Open(name)
	if err != nil {
		return err
	}
	if err := scenarios.Unrelated(sc); err != nil {
		return err
	}
	id, dir := sim.NewRunID(sc), *out
	if dir == "" {
		dir = results.DefaultOut(id)
	}
	if err := checkOut(dir, sc.Name, *force); err != nil {
		return err
	}
	if err := prog.Check(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var bar io.Writer
	var lines *progress.Log
	if !*quiet {
		if err := planBlock(ctx, sc, &backend.ReplyCache{Dir: cache.Dir, Mode: cache.Mode()}, "", stderr); err != nil {
			return err
		}
		bar, lines = prog.Display(stderr)
	}
	srv, err := startMetrics(ctx, *metricsAddr, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()
	live := metrics.Follow(ctx, srv.Metrics())
	defer live.Finish(nil)
	cfg := runConfig{Scenario: sc, Out: dir, ID: id, Progress: bar, Log: stderr, CacheDir: cache.Dir, CacheMode: cache.Mode(), Lines: lines}
	if m := srv.Metrics(); m != nil {
		cfg.Observer, cfg.Model, cfg.BadMessage = live.Observer(), m, m.BadMessage
	}
	res, err := runScenario(ctx, cfg)
	if res != nil {
		live.Finish(res.Outcome)
	}
	if err != nil {
		return err
	}
	printSummary(stdout, res, dir)
	if err := results.Verdict(stderr, &res.Outcome.Results, dir); err != nil {
		return err
	}
	srv.Linger(ctx, *metricsLinger, stderr)
	return nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "validate SCENARIO", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: validate takes one scenario file or built-in name", errUsage)
	}
	sc, err := scenarios.Open(pos[0])
	if err != nil {
		return err
	}
	unrelated := scenarios.Unrelated(sc)
	// The plan is only checked: the model cache is neither opened nor
	// created (another process may be using it).
	b, done := backend.Describe()
	defer done()
	if _, err := sim.NewPlan(sc, b); err != nil {
		return errors.Join(unrelated, err)
	}
	if unrelated != nil {
		return unrelated
	}
	for _, w := range sc.Warnings(llm.DefaultMaxTokens) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok (scenario %q, %d agents, %d model(s), %d questionnaire(s))\n",
		pos[0], sc.Name, sc.Population.Size, len(sc.Models), len(sc.Questionnaires))
	return nil
}

func cmdScenarios(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scenarios", "scenarios [show NAME]", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		fmt.Fprintln(stdout, "Built-in scenarios (run one with 'society run NAME'; print one with 'society scenarios show NAME'):")
		for _, n := range scenarios.BuiltinNames() {
			fmt.Fprintf(stdout, "  %-16s %s\n", n, scenarios.Describe(n))
		}
		return nil
	case len(pos) == 2 && pos[0] == "show":
		src, err := scenarios.BuiltinSource(pos[1])
		if err != nil {
			return fmt.Errorf("scenarios show: %w", err) // err names the built-ins
		}
		_, err = stdout.Write(src)
		return err
	default:
		return fmt.Errorf("%w: want 'society scenarios' or 'society scenarios show NAME'", errUsage)
	}
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// checkOut refuses, as bad input, a --out that would destroy what it names
// (see results.CheckOut).
func checkOut(dir, name string, force bool) error {
	if err := results.CheckOut(dir, name, force); err != nil {
		return fmt.Errorf("%w: --out %w", errUsage, err)
	}
	return nil
}

// usageOf marks what bus reports as bad --nats flags as a usage error
// (exit status 2).
func usageOf(err error) error {
	if errors.Is(err, bus.ErrBadFlags) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

// roleLogger writes log lines to w in the program's one format: slog text.
func roleLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
