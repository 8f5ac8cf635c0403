package results

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// The paper's part of a results directory: the tables in report.md, the
// heat-map figures, the behaviour CSV files, and what `society report`
// needs to rebuild them (instruments that are not built in, the published
// references used).

// figure is a written figure: its base file name and caption.
type figure struct{ base, caption string }

// paperFigures are the figures of the paper's sections, by section.
type paperFigures struct {
	valueCorr []figure
	behavior  []figure
	persona   []figure
}

// figureStrategy is the strategy the heat-maps show: H-NP when the run has
// it (the strategy of Table 2), else the first.
func figureStrategy(r *analysis.Results) string {
	if s := tableStrategy(r.Population, population.HNP); s != "" {
		return s
	}
	if len(r.Population) > 0 {
		name, _, _ := strings.Cut(r.Population[0].Strategy, "@")
		return name
	}
	return ""
}

// writePaperFiles writes the behaviour and persona CSV files, the stored
// instruments and references, and the heat-maps.
func writePaperFiles(ctx context.Context, dir string, o *analysis.Output) (paperFigures, error) {
	var figs paperFigures
	r := &o.Outcome.Results
	files := []struct {
		name string
		fn   func(io.Writer) error
		keep bool
	}{
		{"value_behavior.csv", func(w io.Writer) error { return writeValueBehavior(w, r.ValueBehavior) }, len(r.ValueBehavior) > 0},
		{"persona_agreement.csv", func(w io.Writer) error { return writeAgreement(w, r.PersonaAgreement) }, len(r.PersonaAgreement) > 0},
		{"calibration.csv", func(w io.Writer) error { return writeCalibration(w, r.Calibration) }, len(r.Calibration) > 0},
	}
	for _, f := range files {
		if !f.keep {
			continue
		}
		if err := writeFile(filepath.Join(dir, f.name), f.fn); err != nil {
			return figs, err
		}
	}
	if err := writeStoredInputs(dir, o.Study); err != nil {
		return figs, err
	}

	strategy := figureStrategy(r)
	for _, vc := range o.Outcome.ValueCorr {
		if vc.Strategy != strategy {
			continue
		}
		if err := ctx.Err(); err != nil {
			return figs, err
		}
		base := fmt.Sprintf("valuecorr_%s_%s", fileToken(vc.Model), fileToken(vc.Strategy))
		err := PlotHeatmaps([]Heatmap{
			{Title: vc.Model + ", " + vc.Strategy, Rows: values.Codes(), Cols: values.Codes(), Z: matrixRows(vc.Model10)},
			{Title: "human: " + vc.Reference, Rows: values.Codes(), Cols: values.Codes(), Z: matrixRows(vc.Human)},
		}, CorrRange[0], CorrRange[1], filepath.Join(dir, base))
		if err != nil {
			return figs, fmt.Errorf("figure %s: %w", base, err)
		}
		figs.valueCorr = append(figs.valueCorr, figure{base, fmt.Sprintf("Value correlations (MRAT-centred scores): %s under %s (left) and people, %s (right).", vc.Model, vc.Strategy, vc.Reference)})
	}
	for _, bm := range o.Outcome.Behavior {
		if bm.Strategy != strategy {
			continue
		}
		if err := ctx.Err(); err != nil {
			return figs, err
		}
		panels := []Heatmap{{Title: fmt.Sprintf("%s, %s (n=%d)", bm.Model, bm.Strategy, bm.Agents), Rows: values.Codes(), Cols: bm.Keys, Z: matrixRows(bm.M)}}
		var refNames []string
		for _, ref := range o.Study.ReferencesFor(instrumentOf(o.Study, bm.Instrument)) {
			// Theory templates are expectations, not human data: they are
			// never labelled "human".
			title := "theory reference (template)"
			if ref.Kind != analysis.KindTheory {
				title = ref.Kind + " reference: " + ref.Name
			}
			panels = append(panels, Heatmap{Title: title, Rows: values.Codes(), Cols: ref.Keys, Z: matrixRows(ref.M)})
			refNames = append(refNames, ref.Name)
		}
		base := fmt.Sprintf("behavior_%s_%s_%s", fileToken(bm.Model), fileToken(bm.Instrument), fileToken(bm.Strategy))
		if err := PlotHeatmaps(panels, CorrRange[0], CorrRange[1], filepath.Join(dir, base)); err != nil {
			return figs, fmt.Errorf("figure %s: %w", base, err)
		}
		figs.behavior = append(figs.behavior, figure{base, fmt.Sprintf("%s: correlations of the ten values (rows) with the scores of %s (columns), %s under %s, beside the reference(s) %s.",
			bm.Instrument, bm.Instrument, bm.Model, bm.Strategy, strings.Join(refNames, ", "))})
	}
	for _, pa := range o.Outcome.Persona {
		if err := ctx.Err(); err != nil {
			return figs, err
		}
		m := fileToken(pa.Model)
		groups := analysis.GroupCodes()
		items := []struct {
			base    string
			panels  []Heatmap
			lo, hi  float64
			caption string
		}{
			{"persona_values_" + m, []Heatmap{{Title: pa.Model + ": agreement by value prompt", Rows: pa.Behaviors, Cols: analysis.PersonaColumns(), Z: pa.Value}}, 0, 1,
				"Persona statements: share of answers matching each behaviour (rows) by the agents of each value prompt and the unprimed ones (columns)."},
			{"persona_higher_" + m, []Heatmap{{Title: pa.Model + ": agreement by higher-order value", Rows: pa.Behaviors, Cols: groups, Z: pa.Higher}}, 0, 1,
				"Persona statements: agreement by higher-order value (OC Openness to Change, SEN Self-Enhancement, CON Conservation, STR Self-Transcendence; Hedonism counts in OC and SEN)."},
		}
		if pa.HigherCorr != nil {
			items = append(items, struct {
				base    string
				panels  []Heatmap
				lo, hi  float64
				caption string
			}{"persona_vectors_" + m, []Heatmap{{Title: pa.Model + ": higher-order value vectors", Rows: groups, Cols: groups, Z: matrixRows(pa.HigherCorr)}}, -1, 1,
				"Correlations of the higher-order values' agreement vectors across the behaviours."})
		}
		if names, rows := pa.Politics(); len(names) > 0 {
			items = append(items, struct {
				base    string
				panels  []Heatmap
				lo, hi  float64
				caption string
			}{"persona_politics_" + m, []Heatmap{{Title: pa.Model + ": politics", Rows: names, Cols: analysis.PersonaColumns(), Z: rows}}, 0, 1,
				"Politics panel: agreement with the political behaviours by value prompt."})
		}
		for _, it := range items {
			if err := PlotHeatmaps(it.panels, it.lo, it.hi, filepath.Join(dir, it.base)); err != nil {
				return figs, fmt.Errorf("figure %s: %w", it.base, err)
			}
			figs.persona = append(figs.persona, figure{it.base, it.caption})
		}
	}
	return figs, nil
}

func instrumentOf(st *analysis.Study, name string) *questionnaires.Instrument {
	for _, p := range st.Plans {
		if p.Instrument.Name == name {
			return p.Instrument
		}
	}
	return nil
}

// matrixRows copies a matrix into rows, as Heatmap wants them.
func matrixRows(m interface {
	At(i, j int) float64
	Dims() (int, int)
}) [][]float64 {
	r, c := m.Dims()
	out := make([][]float64, r)
	for i := range out {
		out[i] = make([]float64, c)
		for j := range out[i] {
			out[i][j] = m.At(i, j)
		}
	}
	return out
}

func mkdirFor(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	return nil
}

// writeStoredInputs keeps what a later `society report` needs that the
// scenario alone cannot give back: every instrument that is not a built-in
// one (a user's file, the sampled persona statements) as
// instruments/NAME.toml, and every published reference as
// references/INSTRUMENT_NAME.csv.
func writeStoredInputs(dir string, st *analysis.Study) error {
	seen := map[string]bool{}
	for _, p := range st.Plans {
		in := p.Instrument
		if seen[in.Name] {
			continue
		}
		seen[in.Name] = true
		if b, err := questionnaires.Builtin(in.Name); err == nil && b == in {
			continue
		}
		path := questionnaires.StoredPath(dir, in.Name)
		if err := mkdirFor(path); err != nil {
			return err
		}
		if err := writeFile(path, func(w io.Writer) error { return questionnaires.Write(w, in) }); err != nil {
			return err
		}
	}
	for _, ref := range st.BehaviorReferences {
		path := StoredReferencePath(dir, ref.Instrument, ref.Name)
		if err := mkdirFor(path); err != nil {
			return err
		}
		if err := writeFile(path, func(w io.Writer) error { return analysis.WriteBehaviorReference(w, ref) }); err != nil {
			return err
		}
	}
	return nil
}

func writeValueBehavior(w io.Writer, rows []analysis.ValueBehaviorRow) error {
	t := newCSVTable(w, "model,strategy,instrument,reference,reference_kind,agents,behavior_similarity,bootstrap_mean,ci95_low,ci95_high,"+inferenceHeader)
	for _, r := range rows {
		t.row(append([]string{r.Model, r.Strategy, r.Instrument, r.Reference, r.ReferenceKind, strconv.Itoa(r.Agents),
			fmtNum(r.BehaviorSimilarity, 4), fmtNum(r.BootstrapMean, 4), fmtNum(r.CI95[0], 4), fmtNum(r.CI95[1], 4)}, inferenceFields(r.Inference)...)...)
	}
	return t.close()
}

func writeAgreement(w io.Writer, rows []analysis.AgreementRow) error {
	t := newCSVTable(w, "model,behavior,group,agreement,answers")
	for _, r := range rows {
		t.row(r.Model, r.Behavior, r.Group, fmtNum(r.Agreement, 4), strconv.Itoa(r.Answers))
	}
	return t.close()
}

func writeCalibration(w io.Writer, rows []analysis.CalibrationRow) error {
	t := newCSVTable(w, "model,persona,reference,agents,values_similarity,pearson,rule,weight")
	for _, r := range rows {
		t.row(r.Model, r.Persona, r.Reference, strconv.Itoa(r.Agents), fmtNum(r.ValuesSimilarity, 6), fmtNum(r.Pearson, 6), r.Rule, fmtNum(r.Weight, 6))
	}
	return t.close()
}

// paperTables is the report's section with Tables 1–4.
func paperTables(o *analysis.Output) string {
	r := &o.Outcome.Results
	b := &strings.Builder{}
	ref := ""
	if len(o.Study.References) > 0 {
		ref = o.Study.References[0]
	}
	synthetic := r.Note != ""
	fmt.Fprintf(b, "\n## Table 1. Values similarity\n\nModels × population strategies, against the human value structure `%s`: "+
		"1 − normalised Procrustes disparity of the two-dimensional maps of the 10×10 value correlation matrices by "+r.MDS.Describe()+". "+
		"Each cell: mean over the bootstrap resamples [95%% interval]; the whole population's figures are in the detailed table below. "+
		"Bootstrap: %s; interval: %s.\n\n", ref, r.Bootstrap.Label, r.Bootstrap.Interval)
	b.WriteString(Table1(r.ValueStructure, ref))
	if t := ComparisonTable(r.Comparisons, "values_similarity", "strategy", ref); t != "" {
		b.WriteString("\nPaired differences between strategies (whole-population figures; 95% interval of the paired bootstrap, " +
			"both strategies computed on the same resamples of the agents they share):\n\n" + t)
	}
	if t := ComparisonTable(r.Comparisons, "values_similarity", "model", ref); t != "" {
		b.WriteString("\nPaired differences between models (and priming modes), same design:\n\n" + t)
	}

	hnp := tableStrategy(r.Population, population.HNP)
	uni := tableStrategy(r.Population, population.Uniform)
	kinds := "the theory references built from templates (reference_kind `theory`)"
	if len(o.Study.BehaviorReferences) > 0 {
		kinds = "the theory references built from templates (`theory`) and the published matrices given (`published`)"
	}
	behaviourIntro := fmt.Sprintf("Behavior Similarity: Pearson correlation between the model's value × behaviour correlation matrix "+
		"(rows: the ten values' MRAT-centred PVQ scores; columns: the instrument's scores) and a reference matrix, here %s. "+
		"Each cell: bootstrap mean [95%% interval]; mean: over the instruments.", kinds)
	if synthetic {
		behaviourIntro += " **The synthetic respondents are built from the same theory templates, so their similarity to them is a ceiling of the pipeline, not a finding.**"
	}
	if len(r.ValueBehavior) == 0 {
		b.WriteString("\n## Behaviour similarity (Tables 2 and 4)\n\nNone in this run: it needs a value instrument (pvq40) and a behaviour " +
			"instrument (bfi2, prosocial, donation, charity, ebq, persona) answered by the same agents. The built-in scenario `paper` has them all.\n")
	} else {
		b.WriteString("\n## Table 2. Behaviour similarity under H-NP\n\n" + behaviourIntro + "\n\n")
		if hnp == "" {
			b.WriteString("This run has no h-np strategy.\n")
		} else {
			b.WriteString(BehaviorTable(r.ValueBehavior, hnp))
		}
	}

	main := o.Study.MainStrategy
	if main == "" {
		main = figureStrategy(r)
	}
	if t := Table3(r.Models, r.ValueStructure, r.ValueBehavior, main, ref); t != "" {
		b.WriteString("\n## Table 3. Priming ablation\n\n")
		fmt.Fprintf(b, "Each backend under every priming mode (priming: the value prompt; test: a PVQ the value-prompted model filled in, "+
			"shown instead; priming+test: both) and prompt style (description: value and defining goal; name: the value's name only), "+
			"under %s. VS: values similarity against `%s`; BS: mean behaviour similarity (theory references); both bootstrap means.\n\n", main, ref)
		b.WriteString(t)
		if synthetic {
			b.WriteString("\nThe synthetic respondents read no prompt: the prompt style makes no difference to them, and the test priming's weaker pull is a fixed factor of the respondent model, so on them this table shows the pipeline, not an effect.\n")
		}
	}

	if len(r.ValueBehavior) > 0 {
		b.WriteString("\n## Table 4. Behaviour similarity under Uniform\n\n" + behaviourIntro + "\n\n")
		if uni == "" {
			b.WriteString("This run has no uniform strategy.\n")
		} else {
			b.WriteString(BehaviorTable(r.ValueBehavior, uni))
		}
		if t := ComparisonTable(r.Comparisons, "behavior_similarity", "strategy", ""); t != "" {
			b.WriteString("\nPaired differences of behaviour similarity between strategies (whole-population figures; " +
				"95% interval of the paired bootstrap):\n\n" + t)
		}
	}

	if len(r.Calibration) > 0 {
		ref := r.Calibration[0].Reference
		fit := "the Pearson correlation of the entries below the diagonal of the prompt's 10×10 value correlation matrix and the human one (App. E; rule `pearson`)"
		if population.Fit(r.Calibration[0].Rule) != population.FitPearson {
			fit = "the values similarity of the prompt's value structure to the human one (rule `values-similarity`, not the paper's)"
		}
		fmt.Fprintf(b, "\n## Model-specific weights\n\nCalibration run (App. E): the agents of each value prompt answered the PVQ; each cell is %s, "+
			"against `%s`, and (w) the weight it earned (∝ the fit, negative fits as 0). calibration.csv has both fits.", fit, ref)
		if synthetic {
			b.WriteString(" On synthetic respondents, whose answers vary independently within a prompt, these fits are near noise.")
		}
		b.WriteString("\n\n" + CalibrationTable(r.Calibration))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// paperFigureSections is the report's section with the heat-maps, the
// full behaviour rows and the persona analysis.
func paperFigureSections(o *analysis.Output, figs paperFigures) string {
	r := &o.Outcome.Results
	b := &strings.Builder{}
	if len(figs.valueCorr) > 0 {
		b.WriteString("\n## Value correlations\n\n")
		for _, f := range figs.valueCorr {
			fmt.Fprintf(b, "%s\n\n![%s](%s.png)\n\n", f.caption, f.base, f.base)
		}
	}
	if len(r.ValueBehavior) > 0 {
		b.WriteString("\n## Behaviour similarity, every row\n\n")
		b.WriteString(ValueBehaviorTable(r.ValueBehavior))
	}
	if len(figs.behavior) > 0 {
		b.WriteString("\n## Value × behaviour correlations\n\n")
		for _, f := range figs.behavior {
			fmt.Fprintf(b, "%s\n\n![%s](%s.png)\n\n", f.caption, f.base, f.base)
		}
	}
	if len(o.Outcome.Persona) > 0 {
		b.WriteString("\n## Persona statements\n\n")
		b.WriteString("The persona statements of Perez et al. (2023), asked as yes/no items (\"Is the following statement something you would say?\"); " +
			"agreement is the share of answers that match the behaviour. Source: " + questionnaires.PersonaCitation + "\n\n")
		if r.Note != "" {
			b.WriteString("On synthetic respondents, agreement follows the theory templates of the behaviours that have one and stays near one half for the others.\n\n")
		}
		for _, pa := range o.Outcome.Persona {
			names, rows := pa.Politics()
			if len(names) == 0 {
				continue
			}
			fmt.Fprintf(b, "Politics panel, %s (agreement by value prompt):\n\n| behaviour |", pa.Model)
			for _, c := range analysis.PersonaColumns() {
				b.WriteString(" " + c + " |")
			}
			b.WriteString("\n|---|" + strings.Repeat("---:|", len(analysis.PersonaColumns())) + "\n")
			for i, n := range names {
				fmt.Fprintf(b, "| %s |", n)
				for _, x := range rows[i] {
					fmt.Fprintf(b, " %s |", fmtNum(analysis.Num(x), 2))
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		}
		for _, f := range figs.persona {
			fmt.Fprintf(b, "%s\n\n![%s](%s.png)\n\n", f.caption, f.base, f.base)
		}
	}
	return b.String()
}

// StoredReferencePath is where a results directory keeps a published
// behaviour reference.
func StoredReferencePath(dir, instrument, name string) string {
	return filepath.Join(dir, "references", fileToken(instrument)+"_"+fileToken(name)+".csv")
}
