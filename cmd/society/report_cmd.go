package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// "society report DIR" rebuilds a results directory's report, tables and
// figures from what the run stored — scenario.toml, population.csv,
// answers.csv (or .gz), invalid.jsonl, and the instruments and references
// kept under instruments/ and references/ — without calling any model. The
// analysis is deterministic, so the report comes out byte for byte as the
// run wrote it; after a change to the analysis, it shows the new analysis
// of the same answers. What the answers cannot give back (the model-traffic
// counts, the model-specific calibration, the run's notes) is read from
// results.json when it is there.

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "report DIR [--out DIR2]\n\nRebuild report.md, the tables and the figures of results directory DIR from its stored answers,\nwithout calling any model. By default the files are replaced in DIR; --out writes a complete\nresults directory elsewhere.", stderr)
	out := fs.String("out", "", "write the rebuilt results directory here instead of updating DIR; refused when it holds anything but an earlier result of the same scenario")
	force := fs.Bool("force", false, "let --out replace whatever it names")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: report takes one results directory, got %d", errUsage, len(pos))
	}
	dir := pos[0]
	if err := ctx.Err(); err != nil {
		return err
	}
	elsewhere := *out != "" && filepath.Clean(*out) != filepath.Clean(dir)
	if elsewhere {
		name, ok := results.StoredScenarioName(dir)
		if !ok {
			return fmt.Errorf("%w: %s is not a results directory (no readable scenario.toml)", errBadInput, dir)
		}
		// A rebuild into another directory writes dir's answers there: any
		// results already in it (even of the same scenario: another run,
		// another model, paid calls) would be lost, so only a new or empty
		// directory is taken without --force.
		if err := checkOut(*out, name, *force); err != nil {
			return err
		}
		if prev, ok := results.DirScenario(*out); ok && !*force {
			return fmt.Errorf("%w: --out %s: holds the results of a run of %q, which a rebuild of %s would replace (name a new directory, or pass --force to replace them)",
				errUsage, *out, prev, dir)
		}
	}
	o, err := rebuild(ctx, dir)
	if err != nil {
		return err
	}
	if elsewhere {
		if err := results.Write(ctx, *out, o); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Rebuilt the report of %s in %s (no model was called).\n", dir, *out)
		return nil
	}
	if err := results.Rewrite(ctx, dir, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Rebuilt %s (no model was called).\n", filepath.Join(dir, "report.md"))
	return nil
}

// rebuild reads a results directory back into what results.Write
// writes.
func rebuild(ctx context.Context, dir string) (*analysis.Output, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a results directory", errBadInput, dir)
	}
	scPath := filepath.Join(dir, "scenario.toml")
	resolved, err := questionnaires.ReadFileMax(scPath, scenarios.MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBadInput, dir, err)
	}
	local, err := results.StoredInputs(dir, resolved)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBadInput, scPath, err)
	}
	sc, err := scenarios.Parse(local, scPath)
	if err != nil {
		return nil, err
	}
	cache, err := os.MkdirTemp("", "society-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	models := newModelSets(cache, nil, nil)
	p, err := sim.NewPlan(sc, models.backends())
	models.close()
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
	outcome, err := st.Compute(ctx, col)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		outcome.Results.LLM, outcome.Results.Run = prev.LLM, prev.Run
	}
	return &analysis.Output{Outcome: outcome, Collector: col, Study: st, Scenario: resolved}, nil
}
