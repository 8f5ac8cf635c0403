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
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
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
	out := fs.String("out", "", "results directory (default results/NAME-TIMESTAMP-ID); refused when it holds anything but an earlier result of the same scenario")
	force := fs.Bool("force", false, "let --out replace whatever it names (a file, a non-empty directory, another study's results)")
	quiet := fs.Bool("quiet", false, "no progress display")
	prog := progress.AddFlags(fs)
	cache := addCacheFlags(fs, "reruns make no model calls")
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
	if err := cache.check(); err != nil {
		return err
	}
	if dist.active() {
		return cmdRunDistributed(ctx, dist, pos, *out, *force, *quiet, cache, *metricsAddr, *metricsLinger, stdout, stderr)
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
	dir := *out
	if dir == "" {
		dir = results.DefaultOut(sc.Name)
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
		bar, lines = prog.Display(stderr)
	}
	obs, err := startRunMetrics(ctx, *metricsAddr, stderr)
	if err != nil {
		return err
	}
	defer obs.close()
	cfg := runConfig{Scenario: sc, Out: dir, Progress: bar, Log: stderr, CacheDir: cache.dir, CacheMode: cache.mode(), Lines: lines}
	obs.wire(&cfg)
	res, err := runScenario(ctx, cfg)
	if res != nil {
		obs.finish(res.Outcome)
	}
	if err != nil {
		return err
	}
	printSummary(stdout, res, dir)
	if err := runVerdict(stderr, &res.Outcome.Results, dir); err != nil {
		return err
	}
	obs.linger(ctx, *metricsLinger, stderr)
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
	models := newModelSets("", nil, nil).WithCache(llm.CacheOff, nil)
	defer models.Close()
	if _, err := sim.NewPlan(sc, models.Backends()); err != nil {
		return errors.Join(unrelated, err)
	}
	if unrelated != nil {
		return unrelated
	}
	for _, w := range scenarioWarnings(sc) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok (scenario %q, %d agents, %d model(s), %d questionnaire(s))\n",
		pos[0], sc.Name, sc.Population.Size, len(sc.Models), len(sc.Questionnaires))
	return nil
}

// cacheFlags are the model cache options of the roles that ask models.
type cacheFlags struct {
	dir      string
	modeFlag cacheModeFlag
	off      bool
	// sharedMiB bounds the cluster's shared reply bucket (runs with
	// --nats and agent hosts).
	sharedMiB int64
}

func addCacheFlags(fs *flag.FlagSet, dirNote string) *cacheFlags {
	c := &cacheFlags{}
	fs.StringVar(&c.dir, "cache", "", "model response cache `DIR` (default: the user's cache directory); "+dirNote)
	fs.Var(&c.modeFlag, "cache-mode", "what the run does with the model response cache: read-write (default), read (use stored replies, store none), write (store fresh replies, use none stored before) or off")
	fs.BoolVar(&c.off, "no-cache", false, "neither read nor write the model response cache (--cache-mode off)")
	fs.Int64Var(&c.sharedMiB, "shared-cache-mib", defaultRepliesBytes>>20, "with --nats: bound in `MiB` of the cluster's shared model reply bucket (society-replies), created by the first role that needs it")
	return c
}

// check refuses contradictory or impossible settings.
func (c *cacheFlags) check() error {
	if c.off && c.modeFlag.set && c.modeFlag.mode != llm.CacheOff {
		return fmt.Errorf("%w: --no-cache and --cache-mode %s contradict each other", errUsage, c.modeFlag.mode)
	}
	if c.sharedMiB <= 0 {
		return fmt.Errorf("%w: --shared-cache-mib: must be positive, got %d", errUsage, c.sharedMiB)
	}
	return nil
}

func (c *cacheFlags) mode() llm.CacheMode {
	if c.off {
		return llm.CacheOff
	}
	return c.modeFlag.mode
}

// sharedBytes is the bound of the shared reply bucket.
func (c *cacheFlags) sharedBytes() int64 { return c.sharedMiB << 20 }

// openReplies opens the cluster's shared reply bucket (at most maxBytes,
// 0 for defaultRepliesBytes), the shared tier of the model cache of every
// agent host and orchestrator on the cluster; nil when mode uses no store.
// The bucket only saves calls: when it cannot be opened the process warns
// and goes on without it.
func openReplies(ctx context.Context, js jetstream.JetStream, mode llm.CacheMode, maxBytes int64, log *slog.Logger) *bus.KVStore {
	if mode == llm.CacheOff {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = defaultRepliesBytes
	}
	kv, err := bus.NewKVStore(ctx, js, repliesBucket, maxBytes)
	if err != nil {
		log.Warn("shared model cache unavailable; each host pays for its own replies", "err", err)
		return nil
	}
	return kv
}

// repliesBucket is the cluster's shared model reply bucket: one per
// cluster, kept across runs.
const repliesBucket = "society-replies"

// defaultRepliesBytes bounds the shared reply bucket unless told: about
// two million replies of distribution mode (~500 bytes each).
const defaultRepliesBytes = 1 << 30

// cacheModeFlag is --cache-mode: a mode read by llm.ParseCacheMode, and
// whether it was given.
type cacheModeFlag struct {
	mode llm.CacheMode
	set  bool
}

func (f *cacheModeFlag) String() string { return f.mode.String() }

func (f *cacheModeFlag) Set(s string) error {
	m, err := llm.ParseCacheMode(s)
	if err != nil {
		return err
	}
	f.mode, f.set = m, true
	return nil
}

// scenarioWarnings lists what a scenario leaves to defaults that may not
// suit it: an OpenAI-compatible model without max_tokens gets the client's
// default budget (llm.DefaultMaxTokens), too small for a model that
// reasons before it answers.
func scenarioWarnings(sc *scenarios.Scenario) []error {
	var out []error
	for i, m := range sc.Models {
		if m.Backend == scenarios.OpenAI && m.MaxTokens == 0 {
			out = append(out, sc.Problem(fmt.Sprintf("models[%d].max_tokens", i), fmt.Sprintf(
				"not set: model %q gets %d tokens per sampled reply (1 per distribution request); "+
					"a model that reasons first needs more, or its reasoning switched off", m.Name, llm.DefaultMaxTokens)))
		}
	}
	return out
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
			return fmt.Errorf("%w: %v (built-ins: %s)", errUsage, err, strings.Join(scenarios.BuiltinNames(), ", "))
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

// connectNATS connects a role to the cluster named by the flags; options
// the flags cannot make are bad input.
func connectNATS(ctx context.Context, f *bus.Flags, role string, log *slog.Logger) (*nats.Conn, error) {
	host, _ := os.Hostname()
	o, err := f.Options(fmt.Sprintf("society-%s@%s", role, host), os.Getenv, log)
	if err != nil {
		return nil, fmt.Errorf("%w: --nats: %w", errUsage, err)
	}
	log.Info("connecting to nats", "nats", o.String())
	nc, err := bus.Connect(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return nc, nil
}

// joinCluster connects a long-running role (agent host, analysis service)
// to the cluster and opens the run registry, waiting for the registry to
// exist. A nil registry with a nil error means ctx ended first. The caller
// closes the connection with bus.Drain.
func joinCluster(ctx context.Context, f *bus.Flags, role string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, *bus.Registry, error) {
	nc, err := connectNATS(ctx, f, role, log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		bus.Drain(nc)
		return nil, nil, nil, err
	}
	reg, err := bus.OpenRegistryWait(ctx, js, log)
	if err != nil || reg == nil {
		bus.Drain(nc)
		return nil, nil, nil, err
	}
	return nc, js, reg, nil
}

// roleLogger writes a role's log lines (text, one per line) to w.
func roleLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
