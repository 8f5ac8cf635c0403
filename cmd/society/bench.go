package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/society-sim/society/bus/busbench"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/llmbench"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/sim"
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

PARTS (comma-separated, for --skip): pipeline, nobus, nats, model, calls.
The synthetic respondents are a psychometric model, not a language model:
these are figures about the program, never about models.`

// benchParts are the parts of a bench run that --skip can leave out.
var benchParts = []string{"pipeline", "nobus", "nats", "model", "calls"}

// benchOptions is a bench run's configuration.
type benchOptions struct {
	Agents      []int
	Seed        uint64
	Latency     time.Duration
	Slots       int
	ModelAgents int // agents of the model-path phases; 0: llmbench.DefaultAgents
	Concurrency int // the clients' concurrency on the model path; 0: 2·Slots
	Skip        map[string]bool
	ProfileDir  string // CPU profiles of the children, when set
	Repetitions int    // the study's N answers per prompt and item
	PersonaK    int    // persona statements per behaviour
	Log         io.Writer
	// child makes the command that runs one measurement in a fresh
	// process; nil re-executes this binary.
	child func(ctx context.Context, args []string) (*exec.Cmd, error)
	// modelItems, when set, is the PVQ-40 items of the model-path phases
	// instead of all of them (for quick tests).
	modelItems int
	// natsMinMsgs, when set, replaces the transport measurement's minimum
	// message count and drops its byte minimum (for quick tests).
	natsMinMsgs int
}

// benchRow is one population size: the pipeline's figures and its
// baselines. Ratios above one mean the pipeline took longer.
type benchRow struct {
	Agents           int     `json:"agents"`
	Answers          int64   `json:"answers"`
	Shards           int     `json:"shards"`
	WallSeconds      float64 `json:"wall_seconds"`
	AnswersPerSecond float64 `json:"answers_per_second"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	// AnswerSeconds runs from the start until every answer is collected
	// (agents started, tasks sent, answers stored and consumed);
	// FinishSeconds is the rest: analysis and the results directory.
	AnswerSeconds float64 `json:"answer_seconds"`
	FinishSeconds float64 `json:"finish_seconds"`

	NoBusSeconds       float64 `json:"nobus_seconds,omitempty"`
	NoBusAnswerSeconds float64 `json:"nobus_answer_seconds,omitempty"`
	NoBusPeakRSSBytes  int64   `json:"nobus_peak_rss_bytes,omitempty"`
	// BaselineRatio is the pipeline's wall time over the no-bus run's;
	// AnswerRatio compares the answer phases alone.
	BaselineRatio float64 `json:"baseline_ratio,omitempty"`
	AnswerRatio   float64 `json:"answer_ratio,omitempty"`
	// SameResults reports whether both runs wrote the same results.json.
	SameResults *bool `json:"same_results,omitempty"`

	MessageBytes int `json:"message_bytes"`
	Messages     int `json:"messages"`
	// NATSMsgsPerSecond is the raw core NATS publish/subscribe rate for
	// messages of this run's size; NATSSeconds is the time the run's
	// messages take at that rate. JetStream* is the same through a memory
	// stream (acknowledged publish, then an ordered consumer).
	NATSMsgsPerSecond      float64 `json:"nats_msgs_per_second,omitempty"`
	NATSBytesPerSecond     float64 `json:"nats_bytes_per_second,omitempty"`
	NATSSeconds            float64 `json:"nats_seconds,omitempty"`
	JetStreamMsgsPerSecond float64 `json:"jetstream_msgs_per_second,omitempty"`
	JetStreamSeconds       float64 `json:"jetstream_seconds,omitempty"`

	ModelPathEfficiency float64 `json:"model_path_efficiency,omitempty"`
}

// benchReport is the whole bench run. Its top level repeats the row of the
// largest population, so that `bench --agents N --json` reads as one row.
type benchReport struct {
	benchRow
	Note      string              `json:"note"`
	Machine   machineInfo         `json:"machine"`
	Runs      []benchRow          `json:"runs"`
	ModelPath *llmbench.ModelPath `json:"model_path,omitempty"`
	Calls     *llmbench.Calls     `json:"model_calls,omitempty"`
}

const benchNote = "SYNTHETIC RESPONDENTS (a generative psychometric model, not a language model): these are figures about the program, never about models."

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
	skip := fs.String("skip", "", "parts to leave out, comma-separated: "+strings.Join(benchParts, ", "))
	seed := fs.Uint64("seed", 1, "scenario seed")
	profile := fs.String("profile", "", "write CPU profiles into `DIR`: one per child, bench.prof for this process (NATS, model path)")
	reps := fs.Int("repetitions", 50, "answers per prompt and item in the study's design (N), for the call counts")
	personaK := fs.Int("persona-k", 1000, "persona statements per behaviour (K), for the call counts")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	o := benchOptions{Seed: *seed, Latency: *latency, Slots: *slots, ModelAgents: *modelAgents, Concurrency: *conc, ProfileDir: *profile,
		Repetitions: *reps, PersonaK: *personaK, Log: stderr, Skip: map[string]bool{}}
	var problems []error
	if len(pos) > 0 {
		problems = append(problems, fmt.Errorf("bench takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if o.Agents, err = parseSizes(*agents); err != nil {
		problems = append(problems, fmt.Errorf("--agents: %w", err))
	}
	for p := range strings.SplitSeq(*skip, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(benchParts, p) {
			problems = append(problems, fmt.Errorf("--skip: unknown part %q (want %s)", p, strings.Join(benchParts, ", ")))
		}
		o.Skip[p] = true
	}
	if o.Slots < 1 || o.Latency <= 0 || o.ModelAgents < 1 || o.Concurrency < 0 || o.Repetitions < 1 || o.PersonaK < 0 {
		problems = append(problems, errors.New("--slots, --latency, --model-agents and --repetitions must be positive, --concurrency and --persona-k not negative"))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: bench: %w", errUsage, errors.Join(problems...))
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		stop, err := startCPUProfile(filepath.Join(o.ProfileDir, "bench.prof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, err := runBench(ctx, o)
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
	printBench(stdout, rep)
	return nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ReplaceAll(strings.TrimSpace(f), "_", "")
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a population size", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(ctx context.Context, o benchOptions) (*benchReport, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	rep := &benchReport{Note: benchNote, Machine: readMachine()}
	populations := o.Agents
	if o.Skip["pipeline"] && o.Skip["nobus"] && o.Skip["nats"] {
		populations = nil // nothing measured per population
	}
	for _, n := range populations {
		row, err := benchPopulation(ctx, o, n)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, row)
	}
	if !o.Skip["model"] {
		fmt.Fprintf(o.Log, "bench: model path, S=%d L=%v\n", o.Slots, o.Latency)
		mk := o.child
		if mk == nil {
			mk = selfCommand
		}
		mb, err := llmbench.MeasureModelPath(ctx, llmbench.Options{Slots: o.Slots, Latency: o.Latency, Agents: o.ModelAgents, Items: o.modelItems,
			Concurrency: o.Concurrency,
			Server: func(ctx context.Context) (*exec.Cmd, error) {
				return mk(ctx, []string{"model-server", "--addr", "127.0.0.1:0", "--latency", o.Latency.String(),
					"--slots", strconv.Itoa(o.Slots), "--seed", strconv.FormatUint(o.Seed, 10)})
			}})
		if err != nil {
			return nil, err
		}
		rep.ModelPath = mb
		for i := range rep.Runs {
			rep.Runs[i].ModelPathEfficiency = mb.Efficiency
		}
	}
	if !o.Skip["calls"] {
		fmt.Fprintln(o.Log, "bench: model calls of the study's design, checked against the model server")
		means, err := population.HumanMeans(syntheticMeans)
		if err != nil {
			return nil, err
		}
		cr, err := llmbench.MeasureCalls(ctx, o.PersonaK, o.Repetitions, means)
		if err != nil {
			return nil, err
		}
		rep.Calls = cr
	}
	rep.Machine.LoadAfter = loadAverage()
	if len(rep.Runs) > 0 {
		rep.benchRow = largestRun(rep.Runs)
	} else if rep.ModelPath != nil {
		rep.ModelPathEfficiency = rep.ModelPath.Efficiency
	}
	return rep, nil
}

// largestRun is the row of the largest population (the first of equals).
func largestRun(runs []benchRow) benchRow {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.Agents > best.Agents {
			best = r
		}
	}
	return best
}

// benchPopulation measures one population size.
func benchPopulation(ctx context.Context, o benchOptions, n int) (benchRow, error) {
	row := benchRow{Agents: n, Answers: int64(n) * pvqItems, Shards: sim.ShardCount(n, 0)}
	row.MessageBytes, row.Messages = busbench.AnswerMessageSize(llm.SyntheticName, "pvq40", pvqItems, n, row.Shards), row.Shards*pvqItems
	var pipe, nobus *childResult
	if !o.Skip["pipeline"] {
		fmt.Fprintf(o.Log, "bench: %d agents, full pipeline (child process)\n", n)
		r, err := runChild(ctx, o, n, "pipeline")
		if err != nil {
			return row, err
		}
		pipe = r
		row.WallSeconds, row.PeakRSSBytes, row.CPUSeconds = r.WallSeconds, r.PeakRSSBytes, r.CPUSeconds
		row.AnswerSeconds, row.FinishSeconds = r.AnswerSeconds, r.WallSeconds-r.AnswerSeconds
		row.Answers = r.Answers
		if r.WallSeconds > 0 {
			row.AnswersPerSecond = float64(r.Answers) / r.WallSeconds
		}
	}
	if !o.Skip["nobus"] {
		fmt.Fprintf(o.Log, "bench: %d agents, no bus (child process)\n", n)
		r, err := runChild(ctx, o, n, "nobus")
		if err != nil {
			return row, err
		}
		nobus = r
		row.NoBusSeconds, row.NoBusAnswerSeconds, row.NoBusPeakRSSBytes = r.WallSeconds, r.AnswerSeconds, r.PeakRSSBytes
	}
	if pipe != nil && nobus != nil {
		if nobus.WallSeconds > 0 {
			row.BaselineRatio = pipe.WallSeconds / nobus.WallSeconds
		}
		if nobus.AnswerSeconds > 0 {
			row.AnswerRatio = pipe.AnswerSeconds / nobus.AnswerSeconds
		}
		same := pipe.ResultsSHA256 == nobus.ResultsSHA256
		row.SameResults = &same
	}
	if !o.Skip["nats"] {
		fmt.Fprintf(o.Log, "bench: %d agents, raw NATS and JetStream for %d messages of %d bytes\n", n, row.Messages, row.MessageBytes)
		minMsgs, minBytes := busbench.MinMsgs, busbench.MinBytes
		if o.natsMinMsgs > 0 {
			minMsgs, minBytes = o.natsMinMsgs, 0
		}
		nr, err := busbench.Measure(ctx, row.MessageBytes, row.Messages, minMsgs, minBytes)
		if err != nil {
			return row, err
		}
		row.NATSMsgsPerSecond, row.NATSBytesPerSecond = nr.MsgsPerSecond, nr.BytesPerSecond
		row.NATSSeconds = float64(row.Messages) / nr.MsgsPerSecond
		row.JetStreamMsgsPerSecond = nr.JetStreamMsgsPerSecond
		row.JetStreamSeconds = float64(row.Messages) / nr.JetStreamMsgsPerSecond
	}
	return row, nil
}

// runChild runs one measurement in a fresh process and adds the process's
// own accounting (peak RSS, CPU time) to what it reported.
func runChild(ctx context.Context, o benchOptions, n int, part string) (*childResult, error) {
	args := []string{"bench", "--one", strconv.Itoa(n), "--part", part, "--seed", strconv.FormatUint(o.Seed, 10)}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		args = append(args, "--cpuprofile", filepath.Join(o.ProfileDir, fmt.Sprintf("%s-%d.prof", part, n)))
	}
	mk := o.child
	if mk == nil {
		mk = selfCommand
	}
	cmd, err := mk(ctx, args)
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: %s run of %d agents: %w: %s", part, n, err, strings.TrimSpace(errb.String()))
	}
	var r childResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("bench: %s run of %d agents: read its report: %w", part, n, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSSBytes = maxrssBytes(ru.Maxrss)
		r.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	if r.PeakRSSBytes == 0 {
		r.PeakRSSBytes = r.VmHWMBytes
	}
	return &r, nil
}

// selfCommand re-executes this binary.
func selfCommand(ctx context.Context, args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find this program: %w", err)
	}
	return exec.CommandContext(ctx, exe, args...), nil
}

// maxrssBytes converts getrusage's ru_maxrss, which Linux gives in KiB.
func maxrssBytes(v int64) int64 {
	if runtime.GOOS == "darwin" {
		return v
	}
	return v << 10
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// machineInfo is what a figure needs to be read against.
type machineInfo struct {
	CPUs        int       `json:"cpus"`
	CPUModel    string    `json:"cpu_model"`
	MemoryBytes int64     `json:"memory_bytes"`
	GoVersion   string    `json:"go_version"`
	OS          string    `json:"os"`
	Kernel      string    `json:"kernel,omitempty"`
	LoadBefore  []float64 `json:"load_average_before,omitempty"`
	LoadAfter   []float64 `json:"load_average_after,omitempty"`
	Time        string    `json:"time"`
}

func readMachine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), MemoryBytes: sim.MemTotal(), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadAverage(), Time: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadAverage reads the 1, 5 and 15 minute load averages; nil when unknown.
func loadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	var out []float64
	for i := 0; i < 3 && i < len(f); i++ {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		out = append(out, x)
	}
	return out
}

func printBench(w io.Writer, r *benchReport) {
	m := r.Machine
	fmt.Fprintln(w, r.Note)
	fmt.Fprintf(w, "\nMachine: %d × %s, %s memory, %s %s, kernel %s, load average %s (before), %s (after)\n\n",
		m.CPUs, m.CPUModel, gib(m.MemoryBytes), m.GoVersion, m.OS, m.Kernel, fmtLoad(m.LoadBefore), fmtLoad(m.LoadAfter))
	if len(r.Runs) > 0 {
		fmt.Fprintln(w, "N agents × PVQ-40, whole pipeline per N in a fresh process (embedded NATS, JetStream answers, analysis, results written):")
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "agents\tanswers\twall s\tanswers/s\tpeak RSS\tCPU s\tanswers in s\tanalysis+write s\tno-bus s\tratio\tanswer ratio\tmsg bytes\tmsgs\tNATS msgs/s\tNATS s\tJetStream s\t")
		for _, x := range r.Runs {
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%s\t%s\t%.1f\t%.2f\t%.2f\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n",
				x.Agents, x.Answers, x.WallSeconds, si(x.AnswersPerSecond), mib(x.PeakRSSBytes), x.CPUSeconds,
				x.AnswerSeconds, x.FinishSeconds, optF(x.NoBusSeconds, "%.2f"), optF(x.BaselineRatio, "%.2f×"),
				optF(x.AnswerRatio, "%.2f×"), x.MessageBytes, x.Messages, si(x.NATSMsgsPerSecond),
				optF(x.NATSSeconds, "%.3f"), optF(x.JetStreamSeconds, "%.3f"))
		}
		tw.Flush()
		for _, x := range r.Runs {
			if x.SameResults != nil && !*x.SameResults {
				fmt.Fprintf(w, "WARNING: %d agents: the pipeline and the no-bus run wrote different results.json\n", x.Agents)
			}
		}
	}
	if mp := r.ModelPath; mp != nil {
		printModelPath(w, mp)
	}
	if c := r.Calls; c != nil {
		printCalls(w, c)
	}
}

// printModelPath writes the model path's phases, the society client
// beside the bare one, with their ratios.
func printModelPath(w io.Writer, mp *llmbench.ModelPath) {
	fmt.Fprintf(w, "\nModel path: %d agents × %d PVQ-40 items → client → model server with S = %d slots and L = %v (ideal S/L = %.0f calls/s), "+
		"client concurrency %d; each phase against a fresh server; the bare client is net/http making the same calls:\n\n",
		mp.Agents, mp.Items, mp.Slots, time.Duration(mp.LatencySeconds*float64(time.Second)), mp.IdealCallsPerSecond, mp.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclient\tcalls\twall s\tleast s\tcalls/s\t% of S/L\tsteady %\tpeak in flight\tin service\tclient CPU µs/call\tserver CPU µs/call\tretries\t")
	for _, c := range []llmbench.Comparison{mp.Sample, mp.Distribution} {
		for _, x := range []llmbench.Run{c.Society, c.Bare} {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.0f\t%.1f%%\t%s\t%d\t%d\t%.0f\t%.0f\t%d\t\n",
				c.Mode, x.Client, x.Calls, x.Seconds, x.MinSeconds, x.CallsPerSecond, 100*x.Efficiency,
				optF(100*x.SteadyEfficiency, "%.1f%%"), x.PeakInFlight, x.PeakInService, x.ClientCPUMicros, x.ServerCPUMicros, x.Retries)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range []llmbench.Comparison{mp.Sample, mp.Distribution} {
		for _, x := range []llmbench.Run{c.Society, c.Bare} {
			if x.Calls != x.ServerRequests {
				fmt.Fprintf(w, "  WARNING: %s mode, %s client: %d calls counted by the client, %d requests by the server\n",
					c.Mode, x.Client, x.Calls, x.ServerRequests)
			}
		}
		want := min(int64(mp.Concurrency), c.Society.Calls)
		verdict := "reached"
		if c.Society.PeakInFlight < want {
			verdict = "NOT reached"
		}
		fmt.Fprintf(w, "  %-12s society/bare: calls/s %.2f×, wall time %.2f×, client CPU per call %.2f×; peak in flight %d, min(concurrency, calls) = %d %s\n",
			c.Mode, c.RateRatio, c.SecondsRatio, c.CPURatio, c.Society.PeakInFlight, want, verdict)
	}
}

func fmtLoad(l []float64) string {
	if len(l) == 0 {
		return "unknown"
	}
	s := make([]string, len(l))
	for i, x := range l {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

func optF(x float64, format string) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// si writes a rate with a k or M suffix.
func si(x float64) string {
	switch {
	case x == 0:
		return "-"
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func printCalls(w io.Writer, c *llmbench.Calls) {
	d := c.Design
	fmt.Fprintf(w, "\nModel calls of the study's design: %d prompts (ten values and no priming), %d items per respondent "+
		"(pvq40 %d, bfi2 %d, prosocial %d, donation %d, charity %d+%d, ebq %d, persona statements %d × %d behaviours), N = %d:\n\n",
		d.Prompts, d.Items, d.Instruments["pvq40"], d.Instruments["bfi2"], d.Instruments["prosocial"], d.Instruments["donation"],
		d.Instruments["charity"], d.Instruments["charity_decision"], d.Instruments["ebq"], d.PersonaK, d.Behaviours, d.Repetitions)
	fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", "population", "per-answer", fmt.Sprintf("n-sampling (n=%d)", d.Repetitions), "distribution")
	for _, r := range c.Counts {
		fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", r.Label, group(r.PerAnswer), group(r.NSampling), group(r.Distribution))
	}
	if len(c.Check) > 0 {
		fmt.Fprintf(w, "\nChecked on %d agents (H-NP) × %d items of the built-in instruments against the model server:\n", c.Check[0].Agents, c.Check[0].Items)
		for _, k := range c.Check {
			verdict := "match"
			if !k.Match {
				verdict = "MISMATCH"
			}
			fmt.Fprintf(w, "  %-22s predicted %6d, client calls %6d, server requests %6d: %s\n", k.Mode, k.Predicted, k.ClientCalls, k.ServerRequests, verdict)
		}
	}
}

// group writes an integer with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
