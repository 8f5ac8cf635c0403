// Command society simulates human populations with value-prompted language
// models (or built-in synthetic respondents) and measures how human-like
// they are. It is the only package that wires the adapters (bus, llm,
// metrics) to the domain: it may import every package of the module, and
// no package imports it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

const usage = `society simulates human populations with value-prompted language models
and measures how human-like their values and behaviour are.

Usage:
  society run [SCENARIO] [--out DIR]   run a scenario (default: the built-in quickstart,
                                       on synthetic respondents, in a few seconds)
  society run SCENARIO --nats URL      orchestrate the run over a NATS cluster (--resume ID
                                       continues a stopped run; rerunning does too)
  society agents --nats URL            an agent host: answers the tasks of the cluster's runs
  society analyze --nats URL [--out DIR]
                                       the analysis service: follows answers, writes results
  society report DIR [--out DIR2]      rebuild a results directory's report, tables and figures
                                       from its stored answers, without calling any model
  society validate SCENARIO            check a scenario file and print every problem
  society plan SCENARIO                the requests, tokens, time and cost a run will take, per
                                       model, after checking that every endpoint answers
  society probe SCENARIO               ask each model endpoint a handful of requests and print
                                       what it supports and the settings to use (or
                                       'society probe MODEL --base-url URL')
  society scenarios                    list the built-in scenarios
  society scenarios show NAME          print a built-in scenario as TOML to copy and edit
  society model-server --addr HOST:PORT
                                       serve the synthetic respondents over the OpenAI HTTP API
                                       (with --latency, --slots, --error-rate, --garbage-rate)
  society bench [--agents N,...] [--json]
                                       measure the pipeline, its baselines and the model path
  society dashboards --out DIR         write the Grafana dashboard, its provisioning and a
                                       prometheus.yml for watching runs ('run --metrics ADDR')
  society version                      print the version and VCS revision (also --version)

SCENARIO is a TOML file or the name of a built-in scenario.
Exit status: 0 success, 1 the run failed or was interrupted, 2 bad input.
An interrupt (Ctrl-C, SIGTERM) stops the command cleanly (exit status 1); a second one exits at once (130).
Run 'society COMMAND -h' for a command's options.
`

// errUsage marks bad command-line input (exit status 2).
var errUsage = errors.New("usage")

func main() {
	stderr := progress.NewScreen(os.Stderr)    // every line written there starts below the bar, if one is drawn
	slog.SetDefault(roleLogger(stderr, false)) // what packages given no logger log (the model cache) reads as the rest
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) // a reader gone (| head): writes fail (EPIPE), the run still writes its results
	go watchSignals(sigs, cancel, stderr, func(code int) { bus.RemoveTempStores(); os.Exit(code) })
	err := protect(func() error { return run(ctx, os.Args[1:], os.Stdout, stderr) })
	signal.Stop(sigs)
	cancel()
	os.Exit(exitCode(err, stderr))
}

// watchSignals cancels the command at the first SIGINT or SIGTERM, so that
// every phase stops in order and nothing half-done is written, and exits at
// once with status 130 at the second (a user pressing Ctrl-C twice).
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, stderr io.Writer, exit func(int)) {
	if _, ok := <-sigs; !ok {
		return
	}
	log := roleLogger(stderr, false)
	log.Warn("interrupted: stopping (interrupt again to exit at once)")
	cancel()
	if _, ok := <-sigs; !ok {
		return
	}
	log.Warn("interrupted again: exiting at once")
	exit(130)
}

// protect turns a panic of fn into an error, so that a defect is reported as
// a run failure (exit status 1) with its stack rather than the runtime's
// exit status 2, which means bad input. A panic in another goroutine, and
// a fatal runtime error (out of memory, stack overflow), still end the
// process with the runtime's status 2: input limits (scenario and
// instrument size and nesting) keep input from causing them.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage), errors.Is(err, scenarios.ErrInvalid), errors.Is(err, sim.ErrBadInput), errors.Is(err, results.ErrBadInput):
		fmt.Fprintf(stderr, "society: %v\n", err)
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "society: interrupted")
		return 1
	default:
		fmt.Fprintf(stderr, "society: %v\n", err)
		return 1
	}
}

// errHelp is returned after help was printed on request.
var errHelp = errors.New("help requested")

// commands are the subcommands, by name.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"run": cmdRun, "report": cmdReport, "plan": cmdPlan, "model-server": cmdModelServer, "probe": cmdProbe,
	"agents": cmdAgents, "analyze": cmdAnalyze, "bench": cmdBench,
	"validate":   func(_ context.Context, a []string, o, e io.Writer) error { return cmdValidate(a, o, e) },
	"scenarios":  func(_ context.Context, a []string, o, e io.Writer) error { return cmdScenarios(a, o, e) },
	"dashboards": func(_ context.Context, a []string, o, e io.Writer) error { return cmdDashboards(a, o, e) },
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	cmd, rest, stderr := args[0], args[1:], progress.ScreenOf(stderr) // one lock for the goroutines that log and show progress
	switch cmd {
	case "version", "--version", "-version":
		return cmdVersion(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if f, ok := commands[cmd]; ok {
		return f(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}
