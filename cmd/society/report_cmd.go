package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/sim"
)

// cmdReport is "society report DIR": sim.Rebuild reads the results
// directory back, and results.Rewrite (or Write, with --out) lays it out
// again, without calling any model.
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
// writes; the models are built (to describe them) over a throwaway cache.
func rebuild(ctx context.Context, dir string) (*analysis.Output, error) {
	cache, err := os.MkdirTemp("", "society-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	models := newModelSets(cache, nil, nil)
	defer models.Close()
	return sim.Rebuild(ctx, dir, models.Backends())
}
