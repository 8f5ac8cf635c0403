package games

import (
	"math"

	"github.com/society-sim/society/values"
)

// TheoryCitation is the source of the theory templates.
const TheoryCitation = "Yehudai, Rozen, Gera et al., Teaching Values to Machines: Simulating Human-Like Behavior in LLMs (arXiv 2605.30036), " +
	"Paired Charity Game: in the human data, contributing rises with Universalism and Benevolence and falls with Power, Achievement and Hedonism; " +
	"the cosine form follows the sinusoidal pattern of value–behaviour correlations around the motivational circle (Schwartz 1992)."

// TheorySigns is the sign template of the study's human finding for the
// Paired Charity Game: +1 for the values with which contributing rises
// (Universalism, Benevolence), −1 for those with which it falls (Power,
// Achievement, Hedonism), 0 for values the finding does not name. Indexed
// by value in circular order.
func TheorySigns() [values.N]float64 {
	var t [values.N]float64
	t[values.Universalism], t[values.Benevolence] = 1, 1
	t[values.Power], t[values.Achievement], t[values.Hedonism] = -1, -1, -1
	return t
}

// TheoryCosine is the cosine template: the cosine of each value's angle to
// the Self-Transcendence pole of the circle, midway between Benevolence
// and Universalism. It agrees with the signs (highest at UN and BE, lowest
// at PO and AC, negative at HE) and grades the values between.
func TheoryCosine() [values.N]float64 {
	pole := (values.Benevolence.Angle() + values.Universalism.Angle()) / 2
	var t [values.N]float64
	for _, v := range values.All() {
		t[v] = math.Cos(v.Angle() - pole)
	}
	return t
}

// TemplateCorrelation is the Pearson correlation between the values'
// contribution rates and a template, over the values with a rate (NaN
// rates are left out). It is NaN with fewer than three values or when
// either side is constant.
func TemplateCorrelation(rates, template [values.N]float64) float64 {
	var xs, ys []float64
	for v := range rates {
		if !math.IsNaN(rates[v]) {
			xs = append(xs, rates[v])
			ys = append(ys, template[v])
		}
	}
	if len(xs) < 3 {
		return math.NaN()
	}
	mean := func(a []float64) float64 {
		s := 0.0
		for _, x := range a {
			s += x
		}
		return s / float64(len(a))
	}
	mx, my := mean(xs), mean(ys)
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
	return sxy / math.Sqrt(sxx*syy)
}
