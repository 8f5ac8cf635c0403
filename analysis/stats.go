package analysis

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// TTestOneSample is Student's two-sided one-sample t-test of the mean of xs
// against mu: t = (x̄ − mu)/(s/√n) with n − 1 degrees of freedom. With fewer
// than two values t and p are NaN. With no spread at all, t is ±Inf and
// p is 0 when x̄ ≠ mu, and both are NaN when x̄ = mu.
func TTestOneSample(xs []float64, mu float64) (t, p float64) {
	n := len(xs)
	if n < 2 {
		return math.NaN(), math.NaN()
	}
	var mean float64
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	se := math.Sqrt(ss / float64(n-1) / float64(n))
	t = (mean - mu) / se
	if math.IsNaN(t) {
		return math.NaN(), math.NaN()
	}
	if math.IsInf(t, 0) {
		return t, 0
	}
	dist := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}
	// The survival function of |t| avoids 1 − CDF losing small p-values.
	p = 2 * dist.Survival(math.Abs(t))
	return t, math.Min(p, 1)
}

// percentile interpolates linearly between order statistics (the default
// of R's quantile and NumPy's percentile), so that small bootstraps do not
// snap to one sample.
func percentile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}
