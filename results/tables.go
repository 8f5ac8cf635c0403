package results

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// The study's tables, laid out as in the paper: models in rows. Each cell
// is the mean over the bootstrap resamples (App. G: 100 resamples of 500
// agents by default) with the 2.5th and 97.5th percentiles. The similarity
// of the whole population is in results.json and the detailed tables; with
// more agents than a resample it is less noisy and so usually higher.
//
//   - Table 1: Values Similarity, models × strategies, against one human
//     reference.
//   - Table 2: Behavior Similarity, models × instruments, under H-NP.
//   - Table 3: the priming ablation, the models of one backend side by side
//     under each priming mode and prompt style.
//   - Table 4: Behavior Similarity under Uniform.

// cell formats a figure with its 95% interval.
func cell(x analysis.Num, ci [2]analysis.Num) string {
	if math.IsNaN(float64(x)) {
		return "NA"
	}
	return fmt.Sprintf("%s [%s, %s]", fmtNum(x, 2), fmtNum(ci[0], 2), fmtNum(ci[1], 2))
}

func mean(xs []float64) float64 {
	var s float64
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Table1 lays out Values Similarity against reference as models ×
// strategies (bootstrap means and intervals), with a mean row over models.
func Table1(rows []analysis.ValueStructureRow, reference string) string {
	var models, strategies []string
	cells := map[[2]string]analysis.ValueStructureRow{}
	for _, r := range rows {
		if r.Reference != reference {
			continue
		}
		models = appendNew(models, r.Model)
		strategies = appendNew(strategies, r.Strategy)
		cells[[2]string{r.Model, r.Strategy}] = r
	}
	if len(models) == 0 {
		return "No value-structure results against " + reference + ".\n"
	}
	b := &strings.Builder{}
	b.WriteString("| model |")
	for _, s := range strategies {
		b.WriteString(" " + s + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(strategies)) + "\n")
	means := make([][]float64, len(strategies))
	for _, m := range models {
		fmt.Fprintf(b, "| %s |", m)
		for j, s := range strategies {
			r, ok := cells[[2]string{m, s}]
			if !ok {
				b.WriteString(" |")
				continue
			}
			means[j] = append(means[j], float64(r.BootstrapMean))
			b.WriteString(" " + cell(r.BootstrapMean, r.CI95) + " |")
		}
		b.WriteString("\n")
	}
	if len(models) > 1 {
		b.WriteString("| **mean** |")
		for j := range strategies {
			fmt.Fprintf(b, " **%s** |", fmtNum(analysis.Num(mean(means[j])), 2))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// BehaviorTable lays out Behavior Similarity under strategy as models ×
// instruments: one column per instrument and reference (the reference's
// name is added when it is not the theory template), and a mean column
// over the instruments of the first reference kind found.
func BehaviorTable(rows []analysis.ValueBehaviorRow, strategy string) string {
	var models, columns []string
	cells := map[[2]string]analysis.ValueBehaviorRow{}
	for _, r := range rows {
		if r.Strategy != strategy {
			continue
		}
		col := r.Instrument
		if r.ReferenceKind != analysis.KindTheory {
			col += " (" + r.Reference + ")"
		}
		models = appendNew(models, r.Model)
		columns = appendNew(columns, col)
		cells[[2]string{r.Model, col}] = r
	}
	if len(models) == 0 {
		return fmt.Sprintf("No behaviour results under %s.\n", strategy)
	}
	b := &strings.Builder{}
	b.WriteString("| model |")
	for _, c := range columns {
		b.WriteString(" " + c + " |")
	}
	b.WriteString(" mean |\n|---|" + strings.Repeat("---:|", len(columns)+1) + "\n")
	colMeans := make([][]float64, len(columns))
	var all []float64
	for _, m := range models {
		fmt.Fprintf(b, "| %s |", m)
		var xs []float64
		for j, c := range columns {
			r, ok := cells[[2]string{m, c}]
			if !ok {
				b.WriteString(" |")
				continue
			}
			xs = append(xs, float64(r.BootstrapMean))
			colMeans[j] = append(colMeans[j], float64(r.BootstrapMean))
			b.WriteString(" " + cell(r.BootstrapMean, r.CI95) + " |")
		}
		mm := mean(xs)
		all = append(all, mm)
		fmt.Fprintf(b, " %s |\n", fmtNum(analysis.Num(mm), 2))
	}
	if len(models) > 1 {
		b.WriteString("| **mean** |")
		for j := range columns {
			fmt.Fprintf(b, " **%s** |", fmtNum(analysis.Num(mean(colMeans[j])), 2))
		}
		fmt.Fprintf(b, " **%s** |\n", fmtNum(analysis.Num(mean(all)), 2))
	}
	return b.String()
}

// backendKey groups the models of one backend: the models of a priming
// ablation differ only by priming and style.
func backendKey(m analysis.ModelInfo) string {
	if m.Model != "" {
		return m.Backend + " " + m.Model
	}
	return m.Backend
}

// condition is a model's column in Table 3.
func condition(m analysis.ModelInfo) string {
	p, s := m.Priming, m.Style
	if p == "" {
		p = "priming"
	}
	if s == "" {
		s = "description"
	}
	return p + ", " + s
}

// Table3 lays out the priming ablation: one row per backend, one column per
// priming mode and prompt style; each cell the Values Similarity under
// strategy against reference and the mean Behavior Similarity (theory
// references) under the same strategy. It is empty when no backend is run
// under more than one condition.
func Table3(models []analysis.ModelInfo, vs []analysis.ValueStructureRow, vb []analysis.ValueBehaviorRow, strategy, reference string) string {
	var groups, conds []string
	byCell := map[[2]string]string{} // (group, condition) → model name
	perGroup := map[string]int{}
	for _, m := range models {
		g, c := backendKey(m), condition(m)
		groups = appendNew(groups, g)
		conds = appendNew(conds, c)
		if _, dup := byCell[[2]string{g, c}]; !dup {
			byCell[[2]string{g, c}] = m.Name
			perGroup[g]++
		}
	}
	ablation := false
	for _, n := range perGroup {
		ablation = ablation || n > 1
	}
	if !ablation {
		return ""
	}
	slices.SortStableFunc(conds, func(a, b string) int { return conditionRank(a) - conditionRank(b) })
	valueSim := map[string]analysis.ValueStructureRow{}
	for _, r := range vs {
		if r.Strategy == strategy && r.Reference == reference {
			valueSim[r.Model] = r
		}
	}
	behav := map[string][]float64{}
	for _, r := range vb {
		if r.Strategy == strategy && r.ReferenceKind == analysis.KindTheory {
			behav[r.Model] = append(behav[r.Model], float64(r.BootstrapMean))
		}
	}
	b := &strings.Builder{}
	b.WriteString("| backend |")
	for _, c := range conds {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(conds)) + "\n")
	for _, g := range groups {
		fmt.Fprintf(b, "| %s |", g)
		for _, c := range conds {
			name, ok := byCell[[2]string{g, c}]
			if !ok {
				b.WriteString(" |")
				continue
			}
			vsText, bsText := "NA", "NA"
			if r, ok := valueSim[name]; ok {
				vsText = fmtNum(r.BootstrapMean, 2)
			}
			if xs := behav[name]; len(xs) > 0 {
				bsText = fmtNum(analysis.Num(mean(xs)), 2)
			}
			fmt.Fprintf(b, " VS %s · BS %s |", vsText, bsText)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// conditionRank orders Table 3's columns as the paper does: priming only,
// test only, priming and test; description before name within each.
func conditionRank(c string) int {
	p, s, _ := strings.Cut(c, ", ")
	r := 3
	switch p {
	case "priming":
		r = 0
	case "test":
		r = 1
	case "priming+test":
		r = 2
	}
	r *= 4
	switch s {
	case "name":
		r++
	case "none":
		r += 2
	}
	return r
}

// tableStrategy is the strategy a paper table is computed under: want when
// the run has it, else "".
func tableStrategy(pop []analysis.PopulationRow, want population.Strategy) string {
	for _, p := range pop {
		name, _, _ := strings.Cut(p.Strategy, "@")
		if name == string(want) {
			return name
		}
	}
	return ""
}

// ValueBehaviorTable lists every behaviour row with its interval and
// p-value: the detail behind Tables 2 and 4.
func ValueBehaviorTable(rows []analysis.ValueBehaviorRow) string {
	b := &strings.Builder{}
	b.WriteString("| model | strategy | instrument | reference | kind | agents | similarity [95% CI] | null mean [95%] | random [95%] | p |\n")
	b.WriteString("|---|---|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", r.Model, r.Strategy, r.Instrument, r.Reference,
			r.ReferenceKind, r.Agents, cell(r.BehaviorSimilarity, r.CI95), cell(r.NullMean, r.NullCI95), cell(r.RandomMean, r.RandomCI95),
			fmtPText(r.PValue, r.PValueResolution))
	}
	return b.String()
}

// ComparisonTable lists the paired comparisons of one measure and factor
// against reference ("": every reference): the difference A − B with its paired bootstrap
// interval, and whether the interval excludes 0. Empty when there are none.
func ComparisonTable(rows []analysis.ComparisonRow, measure, factor, reference string) string {
	b := &strings.Builder{}
	for _, r := range rows {
		if r.Measure != measure || r.Factor != factor || (reference != "" && r.Reference != reference) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| comparison | within | instrument | reference | difference [95% CI] | interval excludes 0 |\n|---|---|---|---|---:|---|\n")
		}
		within := r.Model
		if factor == "model" {
			within = r.Strategy
		}
		excl := "no"
		if float64(r.CI95[0]) > 0 || float64(r.CI95[1]) < 0 {
			excl = "yes"
		}
		fmt.Fprintf(b, "| %s − %s | %s | %s | %s | %s [%s, %s] | %s |\n", r.A, r.B, within, r.Instrument, r.Reference,
			fmtNum(r.Difference, 3), fmtNum(r.CI95[0], 3), fmtNum(r.CI95[1], 3), excl)
	}
	return b.String()
}

// CalibrationTable lays out calibration rows as Markdown: one row per
// model, one column per value prompt, each cell the fit that set the
// weight (CalibrationRow.Fit) and the weight it earned.
func CalibrationTable(rows []analysis.CalibrationRow) string {
	if len(rows) == 0 {
		return ""
	}
	var models []string
	cells := map[string]map[string]analysis.CalibrationRow{}
	for _, r := range rows {
		if cells[r.Model] == nil {
			cells[r.Model] = map[string]analysis.CalibrationRow{}
			models = append(models, r.Model)
		}
		cells[r.Model][r.Persona] = r
	}
	b := &strings.Builder{}
	b.WriteString("| model |")
	for _, c := range values.Codes() {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", values.N) + "\n")
	for _, m := range models {
		fmt.Fprintf(b, "| %s |", m)
		for _, c := range values.Codes() {
			r, ok := cells[m][c]
			if !ok {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(b, " %s (w %s) |", fmtNum(r.Fit(), 2), fmtNum(r.Weight, 2))
		}
		b.WriteString("\n")
	}
	return b.String()
}
