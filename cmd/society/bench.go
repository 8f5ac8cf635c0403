package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/society-sim/society/bus/busbench"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/llmbench"
	"github.com/society-sim/society/sim/simbench"
)

const benchSynopsis = `bench [--agents N[,N...]] [--json] [--latency D] [--slots S] [--model-agents N]
      [--concurrency C] [--skip PARTS]

Measures what a run costs on this machine and the limits that bound it.
For each population size N it runs the whole pipeline (N agents × PVQ-40 on
the synthetic respondents, embedded NATS, JetStream answers, analysis,
results written) in a fresh child process, so that the peak memory reported
is that run's alone, and next to it the baselines of the same run: the same
sampling and analysis in-process with no bus, and the raw NATS
publish/subscribe rate for the same messages. It then measures the model
path against 'society model-server' with latency L and S slots: a phase of
--model-agents agents × PVQ-40 in sample mode and in distribution mode,
each through the society client and through a bare net/http client making
the same calls at the same concurrency, with their ratios. Last it counts
the model calls of the study's design in each query mode.

PARTS (comma-separated, for --skip): pipeline, nobus, nats, model, calls
(the model path alone: --skip pipeline,nobus,nats,calls). The synthetic
respondents are a psychometric model, not a language model: these are
figures about the program, never about models.`

// benchOptions is what a bench run's wiring needs beyond the child runs.
type benchOptions struct {
	simbench.Suite
	Model    llmbench.Options // the model path's; Server and Log are wired
	Reps     int              // the study's N answers per prompt and item
	PersonaK int              // persona statements per behaviour
	// MinMsgs and MinBytes bound the raw NATS measurement from below.
	MinMsgs, MinBytes int
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "--one" {
		return benchChild(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", benchSynopsis, stderr)
	agents := fs.String("agents", "10000,100000,1000000", "population sizes to measure, comma-separated")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	jsonOut := fs.String("out", "", "also write the results as JSON to `FILE`")
	latency := fs.Duration("latency", 100*time.Millisecond, "model server latency L per request")
	slots := fs.Int("slots", 256, "model server slots S (requests served at once)")
	modelAgents := fs.Int("model-agents", llmbench.DefaultAgents, "agents answering PVQ-40 in the model-path phases")
	conc := fs.Int("concurrency", 0, "client concurrency on the model path, the society and the bare client alike (default 2·S)")
	skip := fs.String("skip", "", "parts to leave out, comma-separated: "+strings.Join(simbench.Parts, ", "))
	seed := fs.Uint64("seed", 1, "scenario seed")
	profile := fs.String("profile", "", "write CPU profiles into `DIR`: one per child, bench.prof for this process (NATS, model path)")
	reps := fs.Int("repetitions", 50, "answers per prompt and item in the study's design (N), for the call counts")
	personaK := fs.Int("persona-k", 1000, "persona statements per behaviour (K), for the call counts")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	o := benchOptions{Suite: simbench.Suite{Options: simbench.Options{Seed: *seed, ProfileDir: *profile, Log: stderr, Child: selfCommand}},
		Model: llmbench.Options{Slots: *slots, Latency: *latency, Agents: *modelAgents, Concurrency: *conc},
		Reps:  *reps, PersonaK: *personaK, MinMsgs: busbench.MinMsgs, MinBytes: busbench.MinBytes}
	var problems []error
	if len(pos) > 0 {
		problems = append(problems, fmt.Errorf("bench takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if o.Agents, err = simbench.ParseSizes(*agents); err != nil {
		problems = append(problems, fmt.Errorf("--agents: %w", err))
	}
	var unknown []string
	o.Skip, unknown = simbench.ParseSkip(*skip)
	for _, p := range unknown {
		problems = append(problems, fmt.Errorf("--skip: unknown part %q (want %s)", p, strings.Join(simbench.Parts, ", ")))
	}
	if *slots < 1 || *latency <= 0 || *modelAgents < 1 || *conc < 0 || *reps < 1 || *personaK < 0 {
		problems = append(problems, errors.New("--slots, --latency, --model-agents and --repetitions must be positive, --concurrency and --persona-k not negative"))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: bench: %w", errUsage, errors.Join(problems...))
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		stop, err := startCPUProfile(filepath.Join(*profile, "bench.prof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, err := benchSuite(o).Run(ctx)
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(stdout)
	return nil
}

// benchSuite wires each part's harness into one bench run: the child runs
// and the model server as this binary's children (o.Child), the raw NATS
// rate from busbench, the model path and the design's model calls from
// llmbench.
func benchSuite(o benchOptions) simbench.Suite {
	s, m := o.Suite, o.Model
	s.MessageSize = func(agents, shards int) int {
		return busbench.AnswerMessageSize(llm.SyntheticName, "pvq40", simbench.PVQItems, agents, shards)
	}
	s.Transport = busbench.Transport(o.MinMsgs, o.MinBytes)
	m.Log = s.Log
	m.Server = func(ctx context.Context) (*exec.Cmd, error) {
		return s.Child(ctx, []string{"model-server", "--addr", "127.0.0.1:0", "--latency", m.Latency.String(),
			"--slots", strconv.Itoa(m.Slots), "--seed", strconv.FormatUint(s.Seed, 10)})
	}
	s.ModelPath, s.Calls = m.Part, llmbench.CallsPart(o.PersonaK, o.Reps, syntheticMeans)
	return s
}

// selfCommand re-executes this binary.
func selfCommand(ctx context.Context, args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find this program: %w", err)
	}
	return exec.CommandContext(ctx, exe, args...), nil
}
