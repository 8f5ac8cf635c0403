package results

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
)

// Summary writes the few lines a terminal shows at the end of a run: the
// answers, the models and what they did, the value-structure similarity
// (Table 1's rows), the behaviour similarities of one strategy and the
// games; dir is where the results directory was written, elapsed the
// run's time.
func Summary(w io.Writer, res *analysis.Results, elapsed time.Duration, dir string) {
	if res.Note != "" {
		fmt.Fprintln(w, "SYNTHETIC RESPONDENTS: "+res.Note)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Scenario %s (seed %d): %d answers expected, %d valid, %d invalid, in %s.\n",
		res.Scenario, res.Seed, res.Answers.Expected, res.Answers.Valid, res.Answers.Invalid, runTime(res.Run, elapsed))
	if lines := analysis.RunLines(res.Run); len(lines) > 0 {
		fmt.Fprintln(w, lines[0]) // the rest is in report.md
	}
	fmt.Fprintln(w)
	summaryModelRuns(w, res)
	fmt.Fprintf(w, "Values similarity to human value structure by %s (1 = identical; 95%% interval: %s; p: permutation test, %d permutations):\n",
		res.MDS.Describe(), res.Bootstrap.Label, res.Bootstrap.NullIterations)
	fmt.Fprintln(w)
	fmt.Fprint(w, ValueStructureTable(res.ValueStructure))
	summaryBehavior(w, res)
	summaryGames(w, res)
	fmt.Fprintf(w, "\nResults: %s (report.md, results.json, answers, figures)\n", dir)
}

// runTime is how long a run took, as the summary's first line says it:
// the run block's wall_seconds (from the run's start to its results
// written), so that it reads as the figure on the run block's line below
// it, in the same format; elapsed, the command's time, without a run
// block, or next to it when the preparation before the run (a
// calibration) or the writing after it took a second or more.
func runTime(run *analysis.Run, elapsed time.Duration) string {
	if run == nil || run.End == "" {
		return fmt.Sprintf("%.1f s", elapsed.Seconds())
	}
	s := fmt.Sprintf("%.1f s", run.WallSeconds)
	if elapsed.Seconds()-run.WallSeconds >= 1 {
		s += fmt.Sprintf(" (%.1f s with the preparation and writing)", elapsed.Seconds())
	}
	return s
}

// Verdict writes to w (a terminal's stderr) a warning for every model
// whose answers are mostly invalid and for every undefined values
// similarity, and returns an error wrapping analysis.ErrUnscored when no
// agent could be scored: a run whose tables hold nothing must not look
// like a success. dir is where its answers were written.
func Verdict(w io.Writer, res *analysis.Results, dir string) error {
	for _, mr := range res.ModelRuns {
		if s := analysis.MostlyInvalidWarning(mr); s != "" {
			fmt.Fprintln(w, s)
		}
	}
	for _, s := range res.UndefinedSimilarities() {
		fmt.Fprintln(w, "WARNING: "+s)
	}
	if err := res.Unscored(); err != nil {
		return fmt.Errorf("run %s: %w (the answers are in %s)", res.Scenario, err, dir)
	}
	return nil
}

// summaryModelRuns says what each model really did, and loudly when its
// answers are mostly invalid.
func summaryModelRuns(w io.Writer, res *analysis.Results) {
	if len(res.ModelRuns) == 0 {
		return
	}
	for _, mr := range res.ModelRuns {
		if s := analysis.MostlyInvalidWarning(mr); s != "" {
			fmt.Fprintln(w, s)
		}
	}
	fmt.Fprintln(w, "Models:")
	for _, mr := range res.ModelRuns {
		fmt.Fprintln(w, "  "+analysis.ModelRunLine(mr))
	}
	fmt.Fprintln(w)
	for _, s := range res.UndefinedSimilarities() {
		fmt.Fprintln(w, "WARNING: "+s)
	}
}

// summaryGames adds the games to the run's summary: a few lines per game.
func summaryGames(w io.Writer, res *analysis.Results) {
	if res.Games == nil {
		return
	}
	for _, g := range res.Games.PairedCharity {
		label := ""
		if g.Synthetic {
			label = " (synthetic respondents)"
		}
		first, last := math.NaN(), math.NaN()
		if n := len(g.PerRound); n > 0 {
			first, last = float64(g.PerRound[0].Cooperation), float64(g.PerRound[n-1].Cooperation)
		}
		fmt.Fprintf(w, "\nPaired Charity Game, %s%s: %d players, %d rounds, %s pairing.\n", g.Model, label, g.Players, g.Rounds, g.Pairing)
		fmt.Fprintf(w, "  cooperation %.3f (round 1 %.3f, round %d %.3f); %d points to causes; accounts conserved: %v\n",
			float64(g.Cooperation), first, g.Rounds, last, g.CharityTotal, g.Conserved)
		fmt.Fprintf(w, "  after a contributing partner %.3f, after a keeping one %.3f; fit to the study's finding r = %.3f (signs)\n",
			float64(g.Conditional.AfterPartnerContributed), float64(g.Conditional.AfterPartnerKept), float64(g.Theory.RSigns))
	}
}

// summaryBehavior adds the behaviour similarities of the run's
// strategy of Table 2 (H-NP when it is there) to the run's summary.
func summaryBehavior(w io.Writer, res *analysis.Results) {
	if len(res.ValueBehavior) == 0 {
		return
	}
	strategy := res.ValueBehavior[0].Strategy
	for _, r := range res.ValueBehavior {
		if r.Strategy == string(population.HNP) {
			strategy = r.Strategy
			break
		}
	}
	fmt.Fprintf(w, "\nBehaviour similarity to the value-behaviour references (theory references, and published ones when given) under %s (bootstrap mean [95%% interval]):\n\n", strategy)
	fmt.Fprint(w, BehaviorTable(res.ValueBehavior, strategy))
	if res.Note != "" {
		fmt.Fprintln(w, "\nThe synthetic respondents are built from the theory templates: their behaviour similarity is the pipeline's ceiling, not a finding.")
	}
}
