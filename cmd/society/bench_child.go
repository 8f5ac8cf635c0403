package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// pvqItems is the PVQ-40's length: every bench agent answers all of it.
const pvqItems = 40

// childResult is what one measurement process reports on its stdout. The
// parent adds PeakRSSBytes and CPUSeconds from the process's accounting.
type childResult struct {
	Part          string  `json:"part"`
	Agents        int     `json:"agents"`
	Answers       int64   `json:"answers"`
	WallSeconds   float64 `json:"wall_seconds"`
	AnswerSeconds float64 `json:"answer_seconds"`
	VmHWMBytes    int64   `json:"vm_hwm_bytes"`
	ResultsSHA256 string  `json:"results_sha256"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes,omitempty"`
	CPUSeconds    float64 `json:"cpu_seconds,omitempty"`
}

// benchChild is the hidden "bench --one N --part P" mode: one measurement
// in this process, reported as JSON on stdout.
func benchChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench --one", "bench --one N --part pipeline|nobus [--seed S] [--cpuprofile FILE]", stderr)
	part := fs.String("part", "pipeline", "what to measure: pipeline or nobus")
	seed := fs.Uint64("seed", 1, "scenario seed")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `FILE`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: bench --one takes one population size", errUsage)
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil || n < 1 {
		return fmt.Errorf("%w: bench --one: %q is not a population size", errUsage, pos[0])
	}
	if *part != "pipeline" && *part != "nobus" {
		return fmt.Errorf("%w: bench --one: --part %q: want pipeline or nobus", errUsage, *part)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	r, err := measureOne(ctx, n, *seed, *part)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// benchScenario is the scale scenario at another size and seed.
func benchScenario(n int, seed uint64) (*scenarios.Scenario, error) {
	sc, err := scenarios.Builtin("scale")
	if err != nil {
		return nil, err
	}
	sc.Population.Size, sc.Seed = n, seed
	return sc, nil
}

// measureOne runs one population through the pipeline or through the
// no-bus baseline (the same engine in memory), writing the results into a temporary directory that it
// removes, and reports the times.
func measureOne(ctx context.Context, n int, seed uint64, part string) (*childResult, error) {
	sc, err := benchScenario(n, seed)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "society-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "results")
	cacheDir := filepath.Join(tmp, "cache")
	r := &childResult{Part: part, Agents: n}
	start := time.Now()
	answered := &answeredAt{start: start}
	cfg := runConfig{Scenario: sc, Out: out, CacheDir: cacheDir, Observer: answered}
	e, done := newEngine(cfg)
	defer done()
	if part == "nobus" {
		// The same plan, shards and analysis, minus NATS: every task runs
		// straight on its shard and every batch goes straight to the
		// collector (sim.Local).
		e.Open = sim.OpenLocal
	}
	res, err := e.Run(ctx, sc, out)
	if err != nil {
		return nil, err
	}
	r.WallSeconds = time.Since(start).Seconds()
	r.Answers = res.Outcome.Results.Answers.Expected
	r.AnswerSeconds = answered.seconds()
	// The run block (times, host) tells any two runs apart: the sum is
	// of the rest.
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	sum := sha256.Sum256(results.WithoutRun(data))
	r.ResultsSHA256 = hex.EncodeToString(sum[:])
	r.VmHWMBytes = vmHWM()
	return r, nil
}

// answeredAt notes when a run's last answer came in.
type answeredAt struct {
	sim.NoObserver
	start time.Time

	mu       sync.Mutex
	answered time.Duration
}

func (a *answeredAt) Batch(_ *agent.Batch, n sim.Counts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.answered == 0 && n.Valid+n.Invalid >= n.Expected {
		a.answered = time.Since(a.start)
	}
}

func (a *answeredAt) seconds() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answered.Seconds()
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// vmHWM is this process's peak resident set size from /proc/self/status;
// 0 when unknown.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
