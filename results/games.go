package results

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/values"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// gameFigureBase names a game's figure files in the results directory.
func gameFigureBase(model string) string { return "charity_cooperation_" + fileToken(model) }

// writeGames writes each game's figure and CSV tables into dir.
func writeGames(dir string, r *analysis.Results) error {
	if r.Games == nil || len(r.Games.PairedCharity) == 0 {
		return nil
	}
	var errs []error
	for i := range r.Games.PairedCharity {
		g := &r.Games.PairedCharity[i]
		if err := PlotCooperation(g, filepath.Join(dir, gameFigureBase(g.Model))); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "charity_rounds.csv"), func(w io.Writer) error { return writeCharityRounds(w, r.Games) }); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "charity_payoffs.csv"), func(w io.Writer) error { return writeCharityPayoffs(w, r.Games) })
}

func writeCharityRounds(w io.Writer, g *analysis.Games) error {
	cols := append([]string{"model", "round", "players", "sat_out", "contributed", "kept", "no_decision", "cooperation"}, values.Codes()...)
	cols = append(cols, "none", "charity", "payoffs", "gini", "mean_probable", "distinct_prompts", "distinct_decision_prompts", "conserved")
	t := newCSVTable(w, strings.Join(cols, ","))
	for _, res := range g.PairedCharity {
		for _, r := range res.PerRound {
			row := []string{res.Model, fmt.Sprint(r.Round), fmt.Sprint(r.Players), fmt.Sprint(r.SatOut), fmt.Sprint(r.Contributed),
				fmt.Sprint(r.Kept), fmt.Sprint(r.NoDecision), fmtNum(r.Cooperation, 4)}
			for _, c := range append(values.Codes(), "none") {
				x, ok := r.ByValue[c]
				if !ok {
					x = analysis.Num(math.NaN())
				}
				row = append(row, fmtNum(x, 4))
			}
			row = append(row, fmt.Sprint(r.Charity), fmt.Sprint(r.Payoffs), fmtNum(r.Gini, 4), fmtNum(r.MeanProbable, 3),
				fmt.Sprint(r.DistinctPrompts), fmt.Sprint(r.DecisionPrompts), fmt.Sprint(r.Conserved))
			t.row(row...)
		}
	}
	return t.close()
}

func writeCharityPayoffs(w io.Writer, g *analysis.Games) error {
	t := newCSVTable(w, "model,persona,players,cooperation,mean_payoff,given")
	for _, res := range g.PairedCharity {
		for _, p := range res.Payoffs {
			t.row(res.Model, p.Persona, strconv.Itoa(p.Players), fmtNum(p.Cooperation, 4), fmtNum(p.MeanPayoff, 2), strconv.FormatInt(p.Given, 10))
		}
	}
	return t.close()
}

// gamesSection is the report's section on the games, "" without any.
func gamesSection(r *analysis.Results) string {
	if r.Games == nil || len(r.Games.PairedCharity) == 0 {
		return ""
	}
	b := &strings.Builder{}
	b.WriteString("\n## Paired Charity Game\n\n")
	b.WriteString("Each round every player holds an endowment and keeps it, or contributes it so that its partner receives the endowment " +
		"and a social cause it names receives as much again; it first states a probable choice (1 keep … 4 can't decide … 7 donate), " +
		"then decides. Cooperation is the share of valid decisions that were contributions.\n")
	for _, g := range r.Games.PairedCharity {
		fmt.Fprintf(b, "\n### %s, strategy %s", g.Model, g.Strategy)
		if g.Synthetic {
			b.WriteString(" (synthetic respondents)")
		}
		b.WriteString("\n\n")
		if g.Synthetic {
			b.WriteString("> **Synthetic respondents.** These rounds were played by the built-in psychometric model, not a language model: " +
				"they show what the pipeline measures, never a result about models.\n\n")
		}
		fmt.Fprintf(b, "%d players of %d agents, %d rounds, endowment %d, %s pairing, memory %d rounds, rate shown: %v.\n\n",
			g.Players, g.Agents, g.Rounds, g.Endowment, g.Pairing, g.Memory, g.ShowRate)
		fmt.Fprintf(b, "Cooperation over the game: %s. To causes: %d; to players: %d; accounts conserved every round: %v. "+
			"Gini of the players' total payoffs: %s.\n\n",
			fmtNum(g.Cooperation, 3), g.CharityTotal, g.PayoffTotal, g.Conserved, fmtNum(g.Gini, 3))
		c := g.Conditional
		fmt.Fprintf(b, "Conditional cooperation: P(contribute | last partner contributed) = %s (n %d), P(contribute | last partner kept) = %s (n %d), difference %s.\n\n",
			fmtNum(c.AfterPartnerContributed, 3), c.NAfterContributed, fmtNum(c.AfterPartnerKept, 3), c.NAfterKept, fmtNum(c.Difference, 3))
		fmt.Fprintf(b, "Fit to the theory reference (the study's finding as a template, reference kind `theory`): r = %s with the signs "+
			"(+ UN, BE; − PO, AC, HE), r = %s with the cosine to the Self-Transcendence pole. Source: %s\n\n",
			fmtNum(g.Theory.RSigns, 3), fmtNum(g.Theory.RCosine, 3), g.Theory.Citation)
		base := gameFigureBase(g.Model)
		fmt.Fprintf(b, "![cooperation per round by value, %s](%s.png)\n\n", g.Model, base)
		b.WriteString("| persona | players | cooperation | mean payoff | given to causes |\n|---|---:|---:|---:|---:|\n")
		for _, p := range g.Payoffs {
			fmt.Fprintf(b, "| %s | %d | %s | %s | %d |\n", p.Persona, p.Players, fmtNum(p.Cooperation, 3), fmtNum(p.MeanPayoff, 1), p.Given)
		}
		b.WriteString("\n| round | cooperation | to causes | Gini | mean probable choice | distinct prompts | decision prompts |\n" +
			"|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rr := range g.PerRound {
			fmt.Fprintf(b, "| %d | %s | %d | %s | %s | %d | %d |\n", rr.Round, fmtNum(rr.Cooperation, 3), rr.Charity,
				fmtNum(rr.Gini, 3), fmtNum(rr.MeanProbable, 2), rr.DistinctPrompts, rr.DecisionPrompts)
		}
	}
	b.WriteString("\nTables: `charity_rounds.csv` (every round, cooperation by value) and `charity_payoffs.csv`.\n")
	return b.String()
}

// Figure of cooperation per round: one line per persona, each value in its
// own clearly distinct colour (warm for the values of Openness and
// Self-Enhancement, greens and blues for Conservation, purples and brown
// for Self-Transcendence), the unprimed persona dashed grey, and the whole
// population in thick black. The legend sits in its own column.
const (
	coopWidth  = 8 * vg.Inch
	coopHeight = 4.5 * vg.Inch
	coopLegend = 1.9 * vg.Inch
)

var valueColors = [values.N]color.RGBA{
	{R: 200, G: 40, B: 40, A: 255},  // SD
	{R: 240, G: 140, B: 30, A: 255}, // ST
	{R: 200, G: 170, B: 0, A: 255},  // HE
	{R: 110, G: 170, B: 40, A: 255}, // AC
	{R: 20, G: 110, B: 50, A: 255},  // PO
	{R: 0, G: 160, B: 170, A: 255},  // SE
	{R: 40, G: 90, B: 200, A: 255},  // CO
	{R: 100, G: 60, B: 170, A: 255}, // TR
	{R: 210, G: 60, B: 160, A: 255}, // BE
	{R: 130, G: 80, B: 40, A: 255},  // UN
}

func valueColor(v values.Value) color.Color {
	if !v.Valid() {
		return color.RGBA{R: 140, G: 140, B: 140, A: 255}
	}
	return valueColors[v]
}

// PlotCooperation draws the cooperation rate per round by persona and
// overall, and writes base+".png" and base+".svg".
func PlotCooperation(g *analysis.CharityResult, base string) error {
	p := plot.New()
	title := fmt.Sprintf("Paired Charity Game, %s: cooperation by dominant value", g.Model)
	if g.Synthetic {
		title += " (synthetic respondents)"
	}
	p.Title.Text = title
	p.X.Label.Text = "round"
	p.Y.Label.Text = "share contributing"
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Min, p.X.Max = 1, math.Max(2, float64(len(g.PerRound)))
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(10)
	personas := append(values.All(), values.None)
	for _, v := range personas {
		var xys plotter.XYs
		for _, r := range g.PerRound {
			if x, ok := r.ByValue[v.Code()]; ok && !math.IsNaN(float64(x)) {
				xys = append(xys, plotter.XY{X: float64(r.Round), Y: float64(x)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot cooperation: %s: %w", v.Code(), err)
		}
		l.Color, l.Width = valueColor(v), vg.Points(1.5)
		if !v.Valid() {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		name := v.Name()
		if !v.Valid() {
			name = "no dominant value"
		}
		legend.Add(name, l)
	}
	var all plotter.XYs
	for _, r := range g.PerRound {
		if !math.IsNaN(float64(r.Cooperation)) {
			all = append(all, plotter.XY{X: float64(r.Round), Y: float64(r.Cooperation)})
		}
	}
	if len(all) > 0 {
		l, err := plotter.NewLine(all)
		if err != nil {
			return fmt.Errorf("plot cooperation: overall: %w", err)
		}
		l.Color, l.Width = color.Black, vg.Points(3)
		p.Add(l)
		legend.Add("all players", l)
	}
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(coopWidth, coopHeight, ext)
		if err != nil {
			return fmt.Errorf("plot cooperation: %w", err)
		}
		dc := draw.New(c)
		p.Draw(draw.Crop(dc, 0, -coopLegend, 0, 0))
		legend.Draw(draw.Crop(dc, coopWidth-coopLegend+vg.Points(6), 0, -vg.Points(12), -vg.Points(12)))
		path := base + "." + ext
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("plot cooperation: %w", err)
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("plot cooperation: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("plot cooperation: write %s: %w", path, err)
		}
	}
	return nil
}
