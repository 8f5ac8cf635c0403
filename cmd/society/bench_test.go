package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/llmbench"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/sim/simbench"
	"github.com/society-sim/society/values"
)

// TestBenchHelperProcess is not a test: the bench tests run it as their
// child process ("society bench --one ...", "society model-server ..."),
// in place of the society binary, which a test does not have.
func TestBenchHelperProcess(t *testing.T) {
	if os.Getenv("SOCIETY_BENCH_HELPER") != "1" {
		t.Skip("only runs as the bench tests' child process")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func helperChild(ctx context.Context, args []string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestBenchHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SOCIETY_BENCH_HELPER=1")
	return cmd, nil
}

// TestBenchNoBusMatchesPipeline checks that the no-bus baseline does the
// same work as the pipeline: the same answers and the same results.
func TestBenchNoBusMatchesPipeline(t *testing.T) {
	ctx := context.Background()
	pipe, err := measureOne(ctx, 500, 3, "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	nobus, err := measureOne(ctx, 500, 3, "nobus")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*simbench.Result{pipe, nobus} {
		if r.Answers != 500*simbench.PVQItems || r.WallSeconds <= 0 || r.AnswerSeconds <= 0 || r.AnswerSeconds > r.WallSeconds {
			t.Errorf("%s: got %d answers in %v s (answers done at %v s), want %d answers and times in order",
				r.Part, r.Answers, r.WallSeconds, r.AnswerSeconds, 500*simbench.PVQItems)
		}
	}
	if pipe.ResultsSHA256 == "" || pipe.ResultsSHA256 != nobus.ResultsSHA256 {
		t.Errorf("results.json: pipeline %s, no bus %s: want the same", pipe.ResultsSHA256, nobus.ResultsSHA256)
	}
}

// TestBenchReport runs the bench as a user would, each measurement in a
// child process, and reads its JSON.
func TestBenchReport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	o := benchOptions{Suite: simbench.Suite{Agents: []int{300}, Options: simbench.Options{Seed: 1, Skip: map[string]bool{"calls": true}, Child: helperChild}},
		Model: llmbench.Options{Latency: 20 * time.Millisecond, Slots: 4, Agents: 13, Items: 3}, Reps: 50, PersonaK: 10, MinMsgs: 500}
	rep, err := benchSuite(o).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(rep); err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"agents", "answers", "wall_seconds", "answers_per_second", "peak_rss_bytes",
		"nats_msgs_per_second", "baseline_ratio", "model_path_efficiency", "machine", "runs", "model_path", "note"} {
		if _, ok := top[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if top["agents"] != 300.0 || top["answers"] != 300.0*simbench.PVQItems {
		t.Errorf("top level: got %v agents, %v answers, want the run's (300, %d)", top["agents"], top["answers"], 300*simbench.PVQItems)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("got %d runs, want 1", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.PeakRSSBytes <= 0 || r.CPUSeconds <= 0 || r.NoBusSeconds <= 0 || r.NATSMsgsPerSecond <= 0 || r.JetStreamMsgsPerSecond <= 0 {
			t.Errorf("%d agents: got %+v, want every figure measured", r.Agents, r)
		}
		if r.SameResults == nil || !*r.SameResults {
			t.Errorf("%d agents: pipeline and no-bus results differ", r.Agents)
		}
	}
	mp, ok := rep.ModelPath.(*llmbench.ModelPath)
	if !ok || mp == nil {
		t.Fatalf("got model path %#v, want llmbench's figures", rep.ModelPath)
	}
	// Each mode's phase through both clients, every figure in the JSON:
	// 13 agents × 3 items (one call per answer) in sample mode, 11
	// personas × 3 items in distribution mode.
	modelPath, _ := top["model_path"].(map[string]any)
	for mode, calls := range map[string]int64{"sample": 39, "distribution": 33} {
		cmp, _ := modelPath[mode].(map[string]any)
		for _, k := range []string{"rate_ratio", "seconds_ratio", "cpu_ratio"} {
			if x, _ := cmp[k].(float64); x <= 0 {
				t.Errorf("%s: got %s %v, want a positive ratio", mode, k, cmp[k])
			}
		}
		for _, client := range []string{"society", "bare"} {
			run, _ := cmp[client].(map[string]any)
			for _, k := range []string{"calls", "server_requests", "seconds", "min_seconds", "calls_per_second", "efficiency",
				"server_peak_in_flight", "server_peak_in_service", "client_cpu_us_per_call", "server_cpu_us_per_call"} {
				if x, _ := run[k].(float64); x <= 0 {
					t.Errorf("%s mode, %s client: got %s %v, want it measured", mode, client, k, run[k])
				}
			}
			if run["calls"] != float64(calls) || run["server_requests"] != float64(calls) {
				t.Errorf("%s mode, %s client: got %v calls and %v server requests, want %d", mode, client, run["calls"], run["server_requests"], calls)
			}
		}
	}
	if mp.Efficiency <= 0 || rep.ModelPathEfficiency != mp.Efficiency {
		t.Errorf("got model path efficiency %v (top level %v), want sample mode's, positive", mp.Efficiency, rep.ModelPathEfficiency)
	}
	var table bytes.Buffer
	rep.WriteText(&table)
	for _, want := range []string{"SYNTHETIC", "300", "Model path", "of S/L", "peak in flight", "society/bare", "distribution", "bare"} {
		if !bytes.Contains(table.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--agents", "ten"},
		{"bench", "--agents", "0"},
		{"bench", "--skip", "everything"},
		{"bench", "--slots", "0"},
		{"bench", "extra"},
		{"bench", "--one", "abc"},
		{"bench", "--one", "10", "--part", "other"},
	} {
		t.Run(args[len(args)-1], func(t *testing.T) {
			_, stderr, code := runCLI(t, args...)
			if code != 2 {
				t.Errorf("got exit %d (%s), want 2", code, stderr)
			}
		})
	}
}

// TestAgentsKeepTheirFirstStack guards the memory of a million agents: an
// agent goroutine answering the PVQ-40 from the synthetic respondents must
// not outgrow the stack it started with, which would double the stacks of
// every agent (copying each to one twice its size).
func TestAgentsKeepTheirFirstStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector enlarges every frame")
	}
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	as := make([]agent.Agent, n)
	for i := range as {
		as[i] = agent.New(i, agent.Persona{Value: population.Persona(i % (values.N + 1))}, i, 1)
	}
	sh := agent.NewShard(0, 0, as, map[string]agent.Model{"m": llm.NewSynthetic(1, means)})
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	// StackInuse counts every goroutine of the process: the agents' share
	// is what it gained since before they existed, so that goroutines left
	// by earlier tests (or a machine slow to end them) do not count.
	var empty, before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&empty)
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sh.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	// Every agent's stack exists once its goroutine does.
	for runtime.NumGoroutine() < base+n {
		runtime.Gosched()
	}
	runtime.ReadMemStats(&before)
	if _, err := sh.Do(ctx, &agent.Task{Model: "m", Instrument: in, Items: items}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grown := (int64(after.StackInuse) - int64(before.StackInuse)) / n; grown > 256 {
		t.Errorf("answering grew the stacks by %d bytes per agent, want at most 256", grown)
	}
	if per := (int64(after.StackInuse) - int64(empty.StackInuse)) / n; per > 3<<10 {
		t.Errorf("got %d bytes of stack per agent, want at most %d", per, 3<<10)
	}
}
