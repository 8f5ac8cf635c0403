package analysis

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// The Model-Specific strategy (the study's App. E) weights each value prompt
// by how human-like the value structure of that prompt's own answers is. A
// calibration run has C agents per value prompt answer the PVQ; for each
// prompt v, the 10×10 correlation matrix R_v of the MRAT-centred value
// scores of v's agents is compared with the human matrix H, and the weights
// are proportional to the fits, negative ones counted as zero
// (population.ModelSpecificWeights). Two fits are computed and reported;
// the scenario's population.model_specific_weight chooses the one that
// sets the weights:
//
//   - "pearson" (the default, App. E as published): the Pearson correlation
//     of the 45 entries below the diagonal of R_v and of H
//     (LowerTriangleCorrelation);
//   - "values-similarity": the Values Similarity of R_v to H (MDS, then
//     Procrustes), in [0, 1].
//
// Within one prompt the agents differ only by sampling noise around the
// prompt's answer distribution, so this structure measures how a prompt's
// answers co-vary across respondents, not the prompt's mean profile. With
// synthetic respondents, whose answers to different items are independent
// given the persona, it is near noise, and so are the weights: reported as
// they are.

// CalibrationRow is one value prompt's calibration for one model: both
// fits, the rule that set the weight, and the weight.
type CalibrationRow struct {
	Model            string `json:"model"`
	Persona          string `json:"persona"`
	Reference        string `json:"reference"`
	Agents           int    `json:"agents"`
	ValuesSimilarity Num    `json:"values_similarity"`
	Pearson          Num    `json:"pearson"`
	Rule             string `json:"rule"`
	Weight           Num    `json:"weight"`
}

// PromptFit is how human-like one value prompt's own value structure is.
type PromptFit struct {
	// Agents are the prompt's agents with a valid value profile.
	Agents int
	// ValuesSimilarity and Pearson are the two fits (NaN when the
	// prompt's matrix cannot be computed or compared).
	ValuesSimilarity, Pearson float64
}

// By returns the fit the rule names; NaN for an unknown rule.
func (f PromptFit) By(rule population.Fit) float64 {
	switch rule {
	case population.FitPearson:
		return f.Pearson
	case population.FitValuesSimilarity:
		return f.ValuesSimilarity
	}
	return math.NaN()
}

// LowerTriangleCorrelation is the Pearson correlation of the entries below
// the diagonal of two p×p correlation matrices, each vectorised row by row
// (p(p−1)/2 pairs; the diagonal, 1 in both, is left out since it would add
// p identical points). This is the fit of App. E. It is an error when the
// shapes differ, p < 3, an entry is not finite, or either vector has no
// spread.
func LowerTriangleCorrelation(a, b *mat.SymDense) (float64, error) {
	if a == nil || b == nil {
		return math.NaN(), errors.New("lower-triangle correlation: nil matrix")
	}
	p := a.SymmetricDim()
	if q := b.SymmetricDim(); q != p {
		return math.NaN(), fmt.Errorf("lower-triangle correlation: %d×%d and %d×%d matrices", p, p, q, q)
	}
	if p < 3 {
		return math.NaN(), fmt.Errorf("lower-triangle correlation: %d×%d matrices have too few entries", p, p)
	}
	x := make([]float64, 0, p*(p-1)/2)
	y := make([]float64, 0, p*(p-1)/2)
	for i := 1; i < p; i++ {
		for j := 0; j < i; j++ {
			u, v := a.At(i, j), b.At(i, j)
			if math.IsNaN(u) || math.IsInf(u, 0) || math.IsNaN(v) || math.IsInf(v, 0) {
				return math.NaN(), fmt.Errorf("lower-triangle correlation: entry %d,%d is not finite", i, j)
			}
			x = append(x, u)
			y = append(y, v)
		}
	}
	r := stat.Correlation(x, y, nil)
	if math.IsNaN(r) {
		return r, errors.New("lower-triangle correlation: a matrix has no spread below the diagonal")
	}
	return r, nil
}

// PromptFits computes, for each value prompt, both fits of the value
// structure of its agents (personas[agent] == prompt) on a value
// instrument's sheet to the reference, the values similarity by the given
// MDS method. A prompt whose matrix cannot be computed or compared gets NaN
// fits.
func PromptFits(sh *Sheet, personas []values.Value, ref Reference, method MDSMethod) (fits [values.N]PromptFit, err error) {
	keyOf, ok := valueInstrument(sh.Instrument)
	if !ok {
		return fits, fmt.Errorf("calibration: %s is not a value instrument", sh.Instrument.Name)
	}
	sc := scoreSheet(sh, keyOf, len(personas))
	rows := sc.MRAT
	if ref.Centering == "raw" {
		rows = sc.Raw
	}
	for _, v := range values.All() {
		var members []int
		for a, p := range personas {
			if p == v && sc.OK[a] {
				members = append(members, a)
			}
		}
		f := PromptFit{Agents: len(members), ValuesSimilarity: math.NaN(), Pearson: math.NaN()}
		r := corrOf(rows, members)
		if s, err := ValuesSimilarityBy(method, r, ref.R); err == nil {
			f.ValuesSimilarity = s
		}
		if c, err := LowerTriangleCorrelation(r, ref.R); err == nil {
			f.Pearson = c
		}
		fits[v] = f
	}
	return fits, nil
}

// Fit is the fit that set the row's weight. Rows written before the rule
// was recorded were weighted by values similarity.
func (r CalibrationRow) Fit() Num {
	if population.Fit(r.Rule) == population.FitPearson {
		return r.Pearson
	}
	return r.ValuesSimilarity
}
