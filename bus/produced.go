package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/sim"
)

// Produced is what a run's results record beyond its answers: the model
// traffic the agent hosts reported (counts, per model, and the models
// labelled with what their servers said), and the finished run block. The
// answers are kept in the run's stream and the analysis is deterministic,
// so with these the results can be written again exactly.
type Produced struct {
	LLM     analysis.LLMCounts               `json:"llm"`
	Traffic map[string]analysis.ModelTraffic `json:"traffic,omitempty"`
	Models  []analysis.ModelInfo             `json:"models,omitempty"`
	Run     *analysis.Run                    `json:"run,omitempty"`
	// Tests are the tests the hosts' test-primed models filled in.
	Tests map[string][]sim.FilledTest `json:"tests,omitempty"`
}

// finishing is how one process writes a distributed run's results.
type finishing struct {
	id   string
	plan *sim.Plan
	col  *analysis.Collector
	// start is the run's first start (RunRecord.Start); produced, when
	// not nil, what its results last recorded (RunRecord.Produced).
	start    string
	produced *Produced
	// b describes the run's models (resolved settings; no model is
	// called); runBlock, when not nil, starts the run block.
	b        sim.Backends
	runBlock func(id, start string) *analysis.Run
	reg      *Registry
	log      *slog.Logger
	bad      func(error)
	computed func(*analysis.Outcome)
}

// produce computes the run's results from its answers and writes them to
// dir (results.Produce). A run whose record kept what its results last
// recorded (f.produced: nothing was handed out since) writes them again
// with that: the same model traffic, labels and run block. Otherwise the
// traffic is the hosts' reports (hostTraffic) and the run block's models
// are their settings as resolved from the run's scenario, as the hosts
// resolved them, labelled with what the hosts' servers said they served
// (runModels). It returns what the results recorded, for the run's
// record. The errors are results.Produce's.
func (f *finishing) produce(ctx context.Context, dir string) (*Produced, error) {
	st := f.plan.Study
	var (
		llm   analysis.LLMCounts
		run   *analysis.Run
		tests map[string][]sim.FilledTest
	)
	if pr := f.produced; pr != nil {
		llm, tests = pr.LLM, pr.Tests
		if len(pr.Traffic) > 0 {
			st.Traffic = pr.Traffic
		}
		if len(pr.Models) == len(st.Models) {
			st.Models = pr.Models
		}
		if pr.Run != nil {
			r := *pr.Run
			run = &r
		}
	} else {
		counts, stats, err := hostTraffic(ctx, f.reg, f.id, f.plan, f.bad)
		if err != nil {
			f.log.Warn("read the hosts' model traffic", "run", f.id, "err", err)
		}
		llm = counts
		for _, h := range stats {
			for m, ts := range h.Tests {
				if tests == nil {
					tests = map[string][]sim.FilledTest{}
				}
				tests[m] = append(tests[m], ts...)
			}
		}
		if f.runBlock != nil {
			run = f.runBlock(f.id, f.start)
			run.Models, run.AgentHosts = runModels(ctx, f.b, st.Models, stats), len(stats)
		}
	}
	// The agents asked their models in the hosts: the prompts are
	// rebuilt from the plan and the answers.
	prompts, err := sim.RebuildPrompts(f.plan, f.col, tests)
	if err != nil {
		return nil, err
	}
	out, err := results.Produce(ctx, dir, results.Finished{Study: st, Collector: f.col, Scenario: f.plan.Resolved, LLM: llm, Run: run,
		Prompts: prompts, Computed: f.computed})
	if err != nil {
		return nil, err
	}
	return &Produced{LLM: llm, Traffic: st.Traffic, Models: st.Models, Run: out.Results.Run, Tests: tests}, nil
}

// runModels are the run block's models: each model's settings as b
// resolves them (a process's own clients of the run's scenario, which
// call nothing), with what the agent hosts' servers said they served: the
// first model and fingerprint any host saw, the last, and whether they
// changed (on a host, or between hosts).
//
// Its concurrency is each host's, and Hosts the number of hosts whose
// clients of the model served tasks. Its samples and max_tokens, left
// out in distribution mode when this process sampled nothing, are
// recorded when a host sampled questions instead (its fallbacks), as a
// single process records them.
func runModels(ctx context.Context, b sim.Backends, models []analysis.ModelInfo, stats []HostStats) []analysis.RunModel {
	rep := b.Report(ctx, models)
	out := rep.Run
	for i := range out {
		m := &out[i]
		var seen bool
		hosts := 0
		for _, h := range stats {
			for _, s := range h.Models {
				if s.Model != m.Name {
					continue
				}
				hosts++
				if sp, ok := rep.Sampling[m.Name]; ok && s.Fallbacks > 0 {
					m.Samples, m.MaxTokens = sp.Samples, sp.MaxTokens
				}
				if s.ServedModel == "" && s.Fingerprint == "" {
					continue
				}
				m.Synthetic = m.Synthetic || s.Synthetic
				if !seen {
					m.ServedModel, m.SystemFingerprint, m.FingerprintChanged = s.ServedModel, s.Fingerprint, false
					seen = true
				}
				m.FingerprintChanged = m.FingerprintChanged || s.FingerprintChanged || s.Fingerprint != m.SystemFingerprint
				m.LastServedModel, m.LastSystemFingerprint = s.LastServedModel, s.LastFingerprint
			}
		}
		if hosts > 0 && m.Concurrency > 0 {
			m.Hosts = hosts
		}
	}
	return out
}

// forgetProduced is a run's dispatcher that, before it hands out the
// first task of this start of the run, drops what the run's record kept
// of its results last written (RunRecord.Produced): new answers mean new
// traffic, so the results are no longer those.
type forgetProduced struct {
	sim.Dispatcher
	reg   *Registry
	id    string
	epoch int

	mu   sync.Mutex
	done bool
}

// handedOut reports whether a task was handed out: the results
// recorded before were dropped.
func (d *forgetProduced) handedOut() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}

func (d *forgetProduced) Dispatch(ctx context.Context, tasks []sim.Task) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(tasks) > 0 && !d.done {
		if _, err := d.reg.Modify(ctx, d.id, func(r *RunRecord) error {
			if r.Epoch != d.epoch {
				return fmt.Errorf("run %s: taken over by another orchestrator (epoch %d)", d.id, r.Epoch)
			}
			r.Produced = nil
			return nil
		}); err != nil {
			return err
		}
		d.done = true
	}
	return d.Dispatcher.Dispatch(ctx, tasks)
}

// currentProduced is what the run's record keeps of its results last
// written, read when they are written again; nil when it keeps nothing or
// cannot be read.
func currentProduced(ctx context.Context, reg *Registry, id string) *Produced {
	rec, _, ok, err := reg.Get(ctx, id)
	if err != nil || !ok {
		return nil
	}
	return rec.Produced
}
