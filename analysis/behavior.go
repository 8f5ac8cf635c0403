package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Behavior Similarity (the study's Table 2): for the agents of a population,
// the Pearson correlation of each value's MRAT-centred PVQ score with each
// behaviour score of an instrument gives a value × behaviour matrix (rows:
// the ten values; columns: the instrument's scored keys — BFI-2 domains, the
// EBQ's 19 refined values, each donation cause, the prosociality score, the
// charity choice). Behavior Similarity is the Pearson correlation between
// that matrix, vectorised, and a human reference matrix of the same layout.

// BehaviorSimilarity is the Pearson correlation between two matrices of the
// same shape, read cell by cell. Cells that are NaN in either matrix (a
// behaviour without variance) are left out; fewer than three usable cells,
// or no spread in either matrix, is an error.
func BehaviorSimilarity(model, ref mat.Matrix) (float64, error) {
	if model == nil || ref == nil {
		return math.NaN(), errors.New("behavior similarity: nil matrix")
	}
	r1, c1 := model.Dims()
	r2, c2 := ref.Dims()
	if r1 != r2 || c1 != c2 {
		return math.NaN(), fmt.Errorf("behavior similarity: model matrix is %d×%d, reference %d×%d", r1, c1, r2, c2)
	}
	var xs, ys []float64
	for i := range r1 {
		for j := range c1 {
			x, y := model.At(i, j), ref.At(i, j)
			if math.IsNaN(x) || math.IsNaN(y) {
				continue
			}
			xs = append(xs, x)
			ys = append(ys, y)
		}
	}
	if len(xs) < 3 {
		return math.NaN(), fmt.Errorf("behavior similarity: %d usable cells, want at least 3", len(xs))
	}
	r := pearson(xs, ys)
	if math.IsNaN(r) {
		return r, errors.New("behavior similarity: a matrix has no spread")
	}
	return r, nil
}

// pearson is the two-pass correlation of two equal-length vectors; NaN
// when either has no spread.
func pearson(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	n := float64(len(xs))
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return math.Max(-1, math.Min(1, sxy/math.Sqrt(sxx*syy)))
}

// ValueBehaviorCorrelation returns the values.N × k matrix of Pearson
// correlations between value scores x[a] and behaviour scores y[a] over the
// agents listed in idx (an agent may be listed more than once, as in a
// bootstrap resample). cols selects the behaviour columns (indexes into
// y[a]); nil means all. A column or value without variance gives NaN
// cells. It makes two passes, means then centred products, which is exact
// enough for any population that fits in memory.
func ValueBehaviorCorrelation(x [][values.N]float64, y [][]float64, idx []int, cols []int) *mat.Dense {
	return valueBehaviorCorr(x, y, idx, idx, cols)
}

// valueBehaviorCorr is ValueBehaviorCorrelation pairing the value scores of
// ix[k] with the behaviour scores of iy[k] (the permutation null pairs
// them at random); ix and iy have the same length.
func valueBehaviorCorr(x [][values.N]float64, y [][]float64, ix, iy []int, cols []int) *mat.Dense {
	idx := ix
	if cols == nil && len(idx) > 0 {
		cols = make([]int, len(y[idx[0]]))
		for j := range cols {
			cols[j] = j
		}
	}
	k := len(cols)
	if k == 0 {
		return &mat.Dense{}
	}
	out := mat.NewDense(values.N, k, nil)
	var mx [values.N]float64
	my := make([]float64, k)
	for r, a := range idx {
		for i := range values.N {
			mx[i] += x[a][i]
		}
		ya := y[iy[r]]
		for j, c := range cols {
			my[j] += ya[c]
		}
	}
	n := float64(len(idx))
	for i := range mx {
		mx[i] /= n
	}
	for j := range my {
		my[j] /= n
	}
	var sxx [values.N]float64
	syy := make([]float64, k)
	sxy := make([]float64, values.N*k)
	dy := make([]float64, k)
	for r, a := range idx {
		ya := y[iy[r]]
		for j, c := range cols {
			dy[j] = ya[c] - my[j]
			syy[j] += dy[j] * dy[j]
		}
		for i := range values.N {
			dx := x[a][i] - mx[i]
			sxx[i] += dx * dx
			row := sxy[i*k : (i+1)*k]
			for j, d := range dy {
				row[j] += dx * d
			}
		}
	}
	for i := range values.N {
		for j := range k {
			v := math.NaN()
			if sxx[i] > 1e-12*n && syy[j] > 1e-12*n {
				v = math.Max(-1, math.Min(1, sxy[i*k+j]/math.Sqrt(sxx[i]*syy[j])))
			}
			out.Set(i, j, v)
		}
	}
	return out
}

// BehaviorMatrix is one model's value × behaviour correlation matrix for
// one instrument under one strategy: what the heat-maps draw.
type BehaviorMatrix struct {
	Model, Strategy, Instrument string
	Keys                        []string
	M                           *mat.Dense
	Agents                      int
}

// ValueCorr is a model's 10×10 value correlation matrix under a strategy
// beside the human one it is compared with, for the heat-maps.
type ValueCorr struct {
	Model, Strategy, Reference string
	Model10, Human             *mat.SymDense
}

// behaviorSheet is an instrument's per-agent key scores.
type behaviorSheet struct {
	sheet  *Sheet
	keys   []string
	scores [][]float64 // per agent, Keys order
	ok     []bool
}

func scoreBehaviorSheet(sh *Sheet, agents int) *behaviorSheet {
	in := sh.Instrument
	n := len(in.Items)
	bs := &behaviorSheet{sheet: sh, keys: in.Keys(), scores: make([][]float64, agents), ok: make([]bool, agents)}
	answers := make([]int, n)
	for a := range agents {
		for i := range answers {
			answers[i] = questionnaires.Missing
			if c := sh.Codes[a*n+i]; c != 0 {
				answers[i] = int(c) - 1 + in.Scale.Min
			}
		}
		s := in.Score(answers)
		bs.scores[a] = s
		ok := true
		for _, v := range s {
			if math.IsNaN(v) {
				ok = false
				break
			}
		}
		bs.ok[a] = ok
	}
	return bs
}

// valueInstrument reports whether every item of in is keyed to a basic
// value code, the test Compute uses for value instruments.
func valueInstrument(in *questionnaires.Instrument) ([]int, bool) {
	keyOf := make([]int, len(in.Items))
	for i, it := range in.Items {
		v, err := values.Parse(it.Key)
		if err != nil || !v.Valid() {
			return nil, false
		}
		keyOf[i] = int(v)
	}
	return keyOf, len(keyOf) > 0
}

// ScopedStrategy maps a pool member's name to the strategy it reports for a
// model. A member named "NAME@MODEL" serves only MODEL and is reported as
// NAME: the model-specific strategy has one member per model, because each
// model's weights come from its own value prompts. Other members serve
// every model under their own name.
func ScopedStrategy(member, model string) (string, bool) {
	name, owner, scoped := strings.Cut(member, "@")
	if !scoped {
		return member, true
	}
	return name, owner == model
}

// ReferencesFor lists an instrument's references: its theory template
// (when any key has one) first, then the published files given for it.
func (st *Study) ReferencesFor(in *questionnaires.Instrument) []BehaviorReference {
	var out []BehaviorReference
	if ref, ok := TheoryReference(in); ok {
		out = append(out, ref)
	}
	for _, r := range st.BehaviorReferences {
		if r.Instrument == in.Name {
			out = append(out, r)
		}
	}
	return out
}

// computeBehavior fills the value–behaviour rows and matrices. For each
// model with a value instrument, every other instrument it answered in
// round 0 is correlated with the same agents' MRAT value scores.
func (st *Study) computeBehavior(ctx context.Context, c *Collector, out *Outcome) error {
	sheets := c.Sheets(st.Plans)
	agents := c.Agents()
	anchored := map[string]bool{} // the first value instrument of a model anchors its rows
	rs := st.resampler()
	for _, vs := range sheets {
		keyOf, ok := valueInstrument(vs.Instrument)
		if !ok || vs.Round != 0 || anchored[vs.Model] {
			continue
		}
		anchored[vs.Model] = true
		scores := scoreSheet(vs, keyOf, agents)
		st.valueCorrMaps(vs, scores, out)
		for _, sh := range sheets {
			if sh.Model != vs.Model || sh.Round != 0 || sh == vs {
				continue
			}
			if _, isValues := valueInstrument(sh.Instrument); isValues {
				continue
			}
			refs := st.ReferencesFor(sh.Instrument)
			if len(refs) == 0 {
				continue
			}
			if err := st.behaviorRows(ctx, rs, vs, keyOf, scores, scoreBehaviorSheet(sh, agents), refs, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *Study) behaviorRows(ctx context.Context, rs *resampler, vs *Sheet, keyOf []int, scores *Scores, bs *behaviorSheet, refs []BehaviorReference, out *Outcome) error {
	in := bs.sheet.Instrument
	// The columns any reference needs, and each reference's columns among them.
	var cols []int
	refCols := make([][]int, len(refs))
	for ri, ref := range refs {
		for _, k := range ref.Keys {
			j := slices.Index(bs.keys, k)
			if j < 0 {
				return fmt.Errorf("behavior reference %s for %s: column %q is not a key of the instrument (keys: %s)",
					ref.Name, in.Name, k, strings.Join(bs.keys, ", "))
			}
			pos := slices.Index(cols, j)
			if pos < 0 {
				pos = len(cols)
				cols = append(cols, j)
			}
			refCols[ri] = append(refCols[ri], pos)
		}
	}
	keys := make([]string, len(cols))
	for p, j := range cols {
		keys[p] = bs.keys[j]
	}
	r := &out.Results
	for si, strat := range st.Pool.Strategies {
		name, ok := ScopedStrategy(strat.Name, vs.Model)
		if !ok {
			continue
		}
		members := make([]int, 0, st.Pool.StrategySize(si))
		for a := range bs.ok {
			if st.Pool.In(si, a) && scores.OK[a] && bs.ok[a] {
				members = append(members, a)
			}
		}
		full := ValueBehaviorCorrelation(scores.MRAT, bs.scores, members, cols)
		out.Behavior = append(out.Behavior, BehaviorMatrix{Model: vs.Model, Strategy: name, Instrument: in.Name,
			Keys: keys, M: full, Agents: len(members)})
		boots, err := bootstrapBehavior(ctx, rs, si, scores.MRAT, bs.scores, func(a int) bool { return scores.OK[a] && bs.ok[a] },
			cols, refs, refCols, st.BootstrapIterations)
		if err != nil {
			return err
		}
		null, err := behaviorNull(ctx, scores.MRAT, bs.scores, members, cols, refs, refCols, st.NullIterations,
			st.Seed^nullStream^hash64(vs.Model, name, in.Name, "behavior"))
		if err != nil {
			return err
		}
		random, err := st.behaviorRandom(ctx, vs, keyOf, bs.sheet, len(members), cols, refs, refCols)
		if err != nil {
			return err
		}
		for ri, ref := range refs {
			sim, err := BehaviorSimilarity(columns(full, refCols[ri]), ref.M)
			if err != nil {
				sim = math.NaN()
			}
			row := ValueBehaviorRow{
				Model: vs.Model, Strategy: name, Instrument: in.Name, Reference: ref.Name, ReferenceKind: ref.Kind,
				BehaviorSimilarity: Num(sim), Agents: len(members),
			}
			row.BootstrapMean, row.CI95, row.Inference = fill(rs.paper, sim, boots[ri], null[ri], random[ri])
			out.keep(drawKey{"behavior", vs.Model, name, in.Name, ref.Name}, boots[ri])
			r.ValueBehavior = append(r.ValueBehavior, row)
		}
	}
	return nil
}

// columns returns the listed columns of m.
func columns(m *mat.Dense, cols []int) *mat.Dense {
	r, _ := m.Dims()
	out := mat.NewDense(r, len(cols), nil)
	for p, j := range cols {
		for i := range r {
			out.Set(i, p, m.At(i, j))
		}
	}
	return out
}

// bootstrapBehavior returns, for each reference, the Behavior Similarity
// of each of iterations resamples of strategy si (NaN where degenerate);
// agents for which ok is false are left out of a resample. All references
// share the resamples, so that a run compares them on the same draws at
// the cost of one.
func bootstrapBehavior(ctx context.Context, rs *resampler, si int, x [][values.N]float64, y [][]float64, ok func(a int) bool,
	cols []int, refs []BehaviorReference, refCols [][]int, iterations int) ([][]float64, error) {
	samples := make([][]float64, len(refs))
	for ri := range refs {
		samples[ri] = nanSlice(iterations)
	}
	err := parallel(ctx, iterations, func(b int) {
		idx := rs.draw(b, si, nil)
		kept := idx[:0]
		for _, a := range idx {
			if ok(a) {
				kept = append(kept, a)
			}
		}
		if len(kept) < 3 {
			return
		}
		m := ValueBehaviorCorrelation(x, y, kept, cols)
		for ri, ref := range refs {
			if s, err := BehaviorSimilarity(columns(m, refCols[ri]), ref.M); err == nil {
				samples[ri][b] = s
			}
		}
	})
	return samples, err
}

// valueCorrMaps keeps each strategy's 10×10 value correlation matrix beside
// the first human reference, for the heat-maps.
func (st *Study) valueCorrMaps(vs *Sheet, scores *Scores, out *Outcome) {
	if len(st.References) == 0 {
		return
	}
	ref, err := LookupReference(st.References[0])
	if err != nil {
		return
	}
	rows := scores.MRAT
	if ref.Centering == "raw" {
		rows = scores.Raw
	}
	for si, strat := range st.Pool.Strategies {
		name, ok := ScopedStrategy(strat.Name, vs.Model)
		if !ok {
			continue
		}
		var members []int
		for a := range scores.OK {
			if st.Pool.In(si, a) && scores.OK[a] {
				members = append(members, a)
			}
		}
		out.ValueCorr = append(out.ValueCorr, ValueCorr{Model: vs.Model, Strategy: name, Reference: ref.Name,
			Model10: corrOf(rows, members), Human: ref.R})
	}
}
