package results

import (
	"context"
	"time"

	"github.com/society-sim/society/analysis"
)

// Finished is a run whose answers are all in: what its results are
// computed and written from, whichever process does it (the single-process
// run, the orchestrator of a run over NATS, the analysis service).
type Finished struct {
	Study     *analysis.Study
	Collector *analysis.Collector
	// Scenario is the exact scenario used, defaults filled in, as TOML.
	Scenario []byte
	// Prompts are the distinct prompts the run's agents asked
	// (analysis.Output.Prompts); nil when not recorded.
	Prompts []analysis.PromptRow
	// LLM is the run's model traffic over every model.
	LLM analysis.LLMCounts
	// Run is the run's provenance block as started with the run; Produce
	// completes it (analysis.Results.Finish). Nil records none.
	Run *analysis.Run
	// Computed, when set, is told of the outcome once it is computed,
	// before the results are written (a run's phase, its metrics).
	Computed func(*analysis.Outcome)
}

// Produce computes the outcome of f's study from its answers
// (analysis.Study.Compute), records the run's model traffic, completes its
// run block at the time the outcome is computed, and, when dir is not "",
// writes the results directory there (Write). Interrupted (ctx done)
// before writing, it writes nothing and returns ctx's error; the errors
// are otherwise Compute's and Write's.
func Produce(ctx context.Context, dir string, f Finished) (*analysis.Outcome, error) {
	outcome, err := f.Study.Compute(ctx, f.Collector)
	if err != nil {
		return nil, err
	}
	outcome.Results.LLM = f.LLM
	if f.Run != nil {
		outcome.Results.Finish(f.Run, time.Now())
	}
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: nothing is written
	}
	if f.Computed != nil {
		f.Computed(outcome)
	}
	if dir != "" {
		if err := Write(ctx, dir, &analysis.Output{Outcome: outcome, Collector: f.Collector, Study: f.Study, Scenario: f.Scenario,
			Prompts: f.Prompts}); err != nil {
			return nil, err
		}
	}
	return outcome, nil
}
