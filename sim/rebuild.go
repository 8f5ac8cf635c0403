package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
)

// Rebuild reads the results directory dir back into what results.Write
// writes, from what the run stored — scenario.toml, population.csv,
// answers.csv (or .gz), invalid.jsonl, prompts.csv when there, and the instruments and references
// kept under instruments/ and references/ — without calling any model: b
// builds the scenario's models only to describe them. The analysis is
// deterministic, so the output is the run's own; what the answers cannot
// give back (the model-traffic counts, the model-specific calibration, the
// run's notes) is read from results.json when it is there. A directory
// that is not a results directory is ErrBadInput.
func Rebuild(ctx context.Context, dir string, b Backends) (*analysis.Output, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a results directory", ErrBadInput, dir)
	}
	scPath := filepath.Join(dir, "scenario.toml")
	resolved, err := questionnaires.ReadFileMax(scPath, scenarios.MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, dir, err)
	}
	local, err := results.StoredInputs(dir, resolved)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, scPath, err)
	}
	sc, err := scenarios.Parse(local, scPath)
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(sc, b)
	if err != nil {
		return nil, err
	}
	st := p.Study

	prev, err := results.ReadPrevious(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, err
	}
	if prev != nil {
		st.Notes, st.Calibration = prev.Notes, prev.Calibration
		st.Models, st.Traffic = results.PreviousModels(st.Models, prev)
	}
	pool, err := results.ReadPopulation(filepath.Join(dir, "population.csv"), st.Pool)
	if err != nil {
		return nil, err
	}
	st.Pool = pool
	col, err := results.ReadAnswers(dir, p.Instruments, st.Plans, pool)
	if err != nil {
		return nil, err
	}
	prompts, err := results.ReadPrompts(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	outcome, err := st.Compute(ctx, col)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		outcome.Results.LLM, outcome.Results.Run = prev.LLM, prev.Run
	}
	return &analysis.Output{Outcome: outcome, Collector: col, Study: st, Scenario: resolved, Prompts: prompts}, nil
}
