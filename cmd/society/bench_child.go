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
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
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
// no-bus baseline, writing the results into a temporary directory that it
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
	switch part {
	case "pipeline":
		var mu sync.Mutex
		var answered time.Duration
		hooks := runHooks{Progress: func(expected, valid, invalid int64) {
			mu.Lock()
			defer mu.Unlock()
			if answered == 0 && valid+invalid >= expected {
				answered = time.Since(start)
			}
		}}
		res, err := runScenario(ctx, runConfig{Scenario: sc, Out: out, Hooks: hooks, CacheDir: cacheDir})
		if err != nil {
			return nil, err
		}
		r.WallSeconds = time.Since(start).Seconds()
		r.Answers = res.Outcome.Results.Answers.Expected
		mu.Lock()
		r.AnswerSeconds = answered.Seconds()
		mu.Unlock()
	case "nobus":
		answered, answers, err := runNoBus(ctx, sc, out, cacheDir)
		if err != nil {
			return nil, err
		}
		r.WallSeconds = time.Since(start).Seconds()
		r.AnswerSeconds, r.Answers = answered.Seconds(), answers
	}
	sum, err := fileSHA256(filepath.Join(out, "results.json"))
	if err != nil {
		return nil, err
	}
	r.ResultsSHA256 = sum
	r.VmHWMBytes = vmHWM()
	return r, nil
}

// runNoBus does what runScenario does for a questionnaire run, minus NATS:
// the same plan, the same shards of agent goroutines, each shard serving
// its tasks in its own goroutine as an agent host does, every batch stored
// straight into the collector, then the same analysis and results
// directory. It returns how long the answers took and how many there were.
func runNoBus(ctx context.Context, sc *scenarios.Scenario, out, cacheDir string) (time.Duration, int64, error) {
	start := time.Now()
	p, err := buildPlan(sc, cacheDir)
	if err != nil {
		return 0, 0, err
	}
	defer p.backends.close()
	n := p.study.Pool.Size()
	shards := benchShards(p, sc)
	col := analysis.NewCollector(n, p.study.Plans)

	runCtx, cancel := context.WithCancel(ctx)
	var agents sync.WaitGroup
	for _, sh := range shards {
		agents.Add(1)
		go func() {
			defer agents.Done()
			sh.Run(runCtx)
		}()
	}
	err = serveNoBus(runCtx, p, shards, col)
	cancel()
	agents.Wait()
	if err != nil {
		return 0, 0, err
	}
	answered := time.Since(start)
	outcome, err := p.study.Compute(ctx, col)
	if err != nil {
		return 0, 0, err
	}
	outcome.Results.LLM = p.backends.counts()
	if err := results.Write(context.Background(), out, &analysis.Output{Outcome: outcome, Collector: col, Study: p.study, Scenario: p.resolved}); err != nil {
		return 0, 0, err
	}
	return answered, outcome.Results.Answers.Expected, nil
}

// benchShards cuts the pool into shards exactly as runScenario does.
func benchShards(p *plan, sc *scenarios.Scenario) []*agent.Shard {
	pool := p.study.Pool
	n := pool.Size()
	count := shardCount(n, sc.Run.Shards)
	out := make([]*agent.Shard, 0, count)
	for s := range count {
		lo, hi := s*n/count, (s+1)*n/count
		agents := make([]agent.Agent, hi-lo)
		for i := range agents {
			id := lo + i
			agents[i] = agent.New(id, agent.Persona{Value: pool.Persona[id]}, int(pool.Rank[id]), sc.Seed)
		}
		out = append(out, agent.NewShard(s, lo, agents, p.models))
	}
	return out
}

// serveNoBus runs every phase: each shard works through the phase's plans
// in order in its own goroutine and stores its batches in the collector.
func serveNoBus(ctx context.Context, p *plan, shards []*agent.Shard, col *analysis.Collector) error {
	for _, ph := range p.phases {
		if ph.before != nil {
			if err := ph.before(ctx, col); err != nil {
				return err
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(shards))
		for i, sh := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, pl := range ph.plans {
					t := &agent.Task{Model: pl.Model, Instrument: pl.Instrument, Items: pl.Items, Round: pl.Round, Style: p.styles[pl.Model]}
					batches, err := sh.Do(ctx, t)
					if err != nil {
						errs[i] = fmt.Errorf("shard %d: %w", sh.ID, err)
						return
					}
					for k := range batches {
						if err := col.Add(&batches[k]); err != nil {
							errs[i] = err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	s := sha256.Sum256(b)
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
