package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/results"
)

// cmdReport is "society report DIR": backend.Rebuild reads the results
// directory back, and results.Rewrite (or Write, with --out) lays it out
// again, without calling any model.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "report DIR [--out DIR2]\n\nRebuild report.md, the tables and the figures of results directory DIR from its stored answers,\nwithout calling any model. By default the files are replaced in DIR; --out writes a complete\nresults directory elsewhere.", stderr)
	out := fs.String("out", "", "write the rebuilt results directory here instead of updating DIR; must be new or empty (results there, even of the same scenario, would be lost) unless --force")
	force := fs.Bool("force", false, "let --out replace whatever it names, a symbolic link apart")
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
		if err := results.CheckRebuild(dir, *out, *force); errors.Is(err, results.ErrBadInput) {
			return err
		} else if err != nil {
			return fmt.Errorf("%w: --out %w", errUsage, err)
		}
	}
	o, err := backend.Rebuild(ctx, dir)
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
