package simbench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// Result is what one measurement process reports on its stdout. The
// parent adds PeakRSSBytes and CPUSeconds from the process's accounting.
type Result struct {
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

// Scenario is the built-in scale scenario at another size and seed.
func Scenario(n int, seed uint64) (*scenarios.Scenario, error) {
	sc, err := scenarios.Builtin("scale")
	if err != nil {
		return nil, err
	}
	sc.Population.Size, sc.Seed = n, seed
	return sc, nil
}

// NewEngine builds the engine of one measured run, with obs among its
// observers and cacheDir as its model reply cache, and the close of what
// it made.
type NewEngine func(obs sim.Observer, cacheDir string) (*sim.Engine, func())

// Measure runs n agents of the scale scenario through the engine newEngine
// builds (part Pipeline) or through the same engine over sim.Local (part
// NoBus), writing the results into a temporary directory that it removes,
// and reports the times and the digest of results.json.
func Measure(ctx context.Context, n int, seed uint64, part string, newEngine NewEngine) (*Result, error) {
	sc, err := Scenario(n, seed)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "society-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "results")
	r := &Result{Part: part, Agents: n}
	start := time.Now()
	answered := &answeredAt{start: start}
	e, done := newEngine(answered, filepath.Join(tmp, "cache"))
	defer done()
	if part == NoBus {
		// The same plan, shards and analysis, minus NATS: every task runs
		// straight on its shard and every batch goes straight to the
		// collector.
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
	sum, err := resultsSHA256(filepath.Join(out, "results.json"))
	if err != nil {
		return nil, err
	}
	r.ResultsSHA256 = sum
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

// resultsSHA256 is the SHA-256 of a results.json without its run block.
func resultsSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	s := sha256.Sum256(results.WithoutRun(b))
	return hex.EncodeToString(s[:]), nil
}

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
