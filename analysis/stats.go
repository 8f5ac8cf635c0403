package analysis

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"
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

// BootstrapResult summarises a bootstrap distribution.
type BootstrapResult struct {
	Mean    float64    // mean of the samples
	CI95    [2]float64 // 2.5th and 97.5th percentiles of the samples
	P       float64    // two-sided one-sample t-test of the samples against 0
	Samples []float64  // the statistic of each successful iteration, in draw order
}

// Bootstrap resamples n rows: iterations times it draws size row indices
// uniformly with replacement from [0, n) and calls stat with them, keeping
// the values for which stat reports ok (a resample can be degenerate, for
// instance with a constant column). The index slice is reused between
// calls; stat must not keep it.
//
// P follows the study's appendix: a one-sample t-test of the bootstrap
// values against 0. It answers whether the statistic is reliably non-zero;
// it is not a test against another population. With no successful
// iteration every figure is NaN.
func Bootstrap(n int, iterations, size int, rng *rand.Rand, stat func(idx []int) (float64, bool)) BootstrapResult {
	res, _ := BootstrapContext(context.Background(), n, iterations, size, rng, stat)
	return res
}

// BootstrapContext is Bootstrap that stops between iterations once ctx is
// done, returning ctx's error (a large bootstrap runs for minutes).
func BootstrapContext(ctx context.Context, n int, iterations, size int, rng *rand.Rand, stat func(idx []int) (float64, bool)) (BootstrapResult, error) {
	res := BootstrapResult{Samples: make([]float64, 0, max(iterations, 0))}
	if n > 0 && size > 0 {
		idx := make([]int, size)
		for range iterations {
			if err := ctx.Err(); err != nil {
				return BootstrapResult{}, err
			}
			for i := range idx {
				idx[i] = rng.IntN(n)
			}
			if v, ok := stat(idx); ok && !math.IsNaN(v) {
				res.Samples = append(res.Samples, v)
			}
		}
	}
	if len(res.Samples) == 0 {
		nan := math.NaN()
		res.Mean, res.CI95, res.P = nan, [2]float64{nan, nan}, nan
		return res, nil
	}
	for _, v := range res.Samples {
		res.Mean += v
	}
	res.Mean /= float64(len(res.Samples))
	sorted := slices.Clone(res.Samples)
	slices.Sort(sorted)
	res.CI95 = [2]float64{percentile(sorted, 0.025), percentile(sorted, 0.975)}
	_, res.P = TTestOneSample(res.Samples, 0)
	return res, nil
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

// BootstrapValuesSimilarity bootstraps the Values Similarity of a
// population against a human matrix: each iteration draws size agents with
// replacement from scores (one row of ten value scores per agent), computes
// their correlation matrix and its similarity to human. Resamples whose
// matrix cannot be scaled (a value without variance) are skipped. Rows of
// different lengths are a programmer error and panic.
func BootstrapValuesSimilarity(scores [][]float64, human *mat.SymDense, iterations, size int, rng *rand.Rand) BootstrapResult {
	if len(scores) == 0 {
		return Bootstrap(0, iterations, size, rng, nil)
	}
	acc := NewCorrAccumulator(len(scores[0]))
	return Bootstrap(len(scores), iterations, size, rng, func(idx []int) (float64, bool) {
		acc.Reset()
		for _, i := range idx {
			acc.Add(scores[i])
		}
		sim, err := ValuesSimilarity(acc.Corr(), human)
		return sim, err == nil
	})
}
