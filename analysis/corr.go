package analysis

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// CorrAccumulator computes Pearson correlations between p variables from a
// stream of rows without keeping them. It uses Welford-style updates of the
// means and of the co-moments (sums of products of deviations from the
// current means), which stay accurate over millions of rows where the naive
// sums of squares lose their digits to cancellation.
//
// The zero value is not usable; call NewCorrAccumulator. A CorrAccumulator
// is not safe for concurrent use: give each goroutine its own and Merge them.
type CorrAccumulator struct {
	p     int
	n     int
	mean  []float64
	co    []float64 // p×p co-moments, row-major; only the upper triangle is kept current
	delta []float64 // scratch for Add, so that Add does not allocate
}

// NewCorrAccumulator returns an accumulator for rows of p variables.
func NewCorrAccumulator(p int) *CorrAccumulator {
	if p < 1 {
		panic(fmt.Sprintf("analysis: NewCorrAccumulator(%d): need at least one variable", p))
	}
	return &CorrAccumulator{
		p:     p,
		mean:  make([]float64, p),
		co:    make([]float64, p*p),
		delta: make([]float64, p),
	}
}

// Add adds one row. A row with a NaN in any variable is skipped whole, so
// that every correlation is computed over the same respondents. A row of
// the wrong length is a programmer error and panics.
func (a *CorrAccumulator) Add(x []float64) {
	if len(x) != a.p {
		panic(fmt.Sprintf("analysis: CorrAccumulator.Add: row has %d values, want %d", len(x), a.p))
	}
	for _, v := range x {
		if math.IsNaN(v) {
			return
		}
	}
	a.n++
	inv := 1 / float64(a.n)
	for i, v := range x {
		d := v - a.mean[i]
		a.delta[i] = d
		a.mean[i] += d * inv
	}
	// co_ij += (x_i - oldMean_i)(x_j - newMean_j) is the exact update of
	// the co-moment; it needs no subtraction of large sums.
	for i := 0; i < a.p; i++ {
		di := a.delta[i]
		row := a.co[i*a.p:]
		for j := i; j < a.p; j++ {
			row[j] += di * (x[j] - a.mean[j])
		}
	}
}

// Reset forgets every row, keeping the allocated memory.
func (a *CorrAccumulator) Reset() {
	a.n = 0
	clear(a.mean)
	clear(a.co)
}

// N is the number of rows added (rows with NaN do not count).
func (a *CorrAccumulator) N() int { return a.n }

// Corr returns the p×p correlation matrix of the rows so far. A variable
// with no variance (or fewer than two rows) has no defined correlation:
// its row and column, diagonal included, are NaN, so that downstream code
// cannot mistake it for a measured zero.
func (a *CorrAccumulator) Corr() *mat.SymDense {
	return corrFromComoments(a.p, a.n, a.mean, func(i, j int) float64 { return a.co[i*a.p+j] })
}

// Correlation returns the Pearson correlation matrix of the columns of
// rows, skipping rows that contain NaN, with the same conventions as
// CorrAccumulator.Corr. It keeps all rows in memory and makes two passes
// (means, then centred products), the most accurate way when the data fit.
// It returns nil when rows is empty; ragged rows are a programmer error and
// panic.
func Correlation(rows [][]float64) *mat.SymDense {
	if len(rows) == 0 {
		return nil
	}
	p := len(rows[0])
	keep := func(x []float64) bool {
		if len(x) != p {
			panic(fmt.Sprintf("analysis: Correlation: row has %d values, want %d", len(x), p))
		}
		for _, v := range x {
			if math.IsNaN(v) {
				return false
			}
		}
		return true
	}
	mean := make([]float64, p)
	n := 0
	for _, x := range rows {
		if !keep(x) {
			continue
		}
		n++
		for i, v := range x {
			mean[i] += v
		}
	}
	for i := range mean {
		mean[i] /= float64(n)
	}
	co := make([]float64, p*p)
	for _, x := range rows {
		if !keep(x) {
			continue
		}
		for i := 0; i < p; i++ {
			di := x[i] - mean[i]
			for j := i; j < p; j++ {
				co[i*p+j] += di * (x[j] - mean[j])
			}
		}
	}
	return corrFromComoments(p, n, mean, func(i, j int) float64 { return co[i*p+j] })
}

// corrFromComoments turns the upper triangle of a co-moment matrix into
// correlations, clamped to [-1, 1] against rounding. A spread no larger than
// the rounding error of the mean counts as no variance: a constant column
// whose mean is not exactly representable would otherwise yield noise
// correlations.
func corrFromComoments(p, n int, mean []float64, co func(i, j int) float64) *mat.SymDense {
	r := mat.NewSymDense(p, nil)
	sd := make([]float64, p)
	for i := range sd {
		noise := 64 * 0x1p-52 * math.Abs(mean[i])
		if v := co(i, i); n >= 2 && v > float64(n)*noise*noise {
			sd[i] = math.Sqrt(v)
		} else {
			sd[i] = math.NaN()
		}
	}
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			v := co(i, j) / (sd[i] * sd[j])
			if !math.IsNaN(v) {
				v = math.Max(-1, math.Min(1, v))
			}
			r.SetSym(i, j, v)
		}
		if !math.IsNaN(sd[i]) {
			r.SetSym(i, i, 1)
		}
	}
	return r
}
