package analysis

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// MDSMethod names how a correlation matrix is placed in two dimensions
// before the Procrustes fit of the Values Similarity.
type MDSMethod string

const (
	// Classical is classical (Torgerson) scaling, the eigen-decomposition
	// of the double-centred squared dissimilarities (MDS). It is the
	// default: the study's Values Similarity as DESIGN.md §1 describes it.
	Classical MDSMethod = "classical"
	// SMACOF is metric SMACOF (de Leeuw & Mair 2009): the configuration
	// that minimises raw stress over the same dissimilarities, by Guttman
	// transforms from the classical configuration (MetricSMACOF).
	SMACOF MDSMethod = "smacof"
)

// Describe names the method for reports, saying which is the default.
func (m MDSMethod) Describe() string {
	switch m {
	case Classical, "":
		return "classical MDS (the default, as in the study)"
	case SMACOF:
		return "metric SMACOF MDS (raw stress, from the classical configuration; not the default)"
	}
	return string(m) + " MDS"
}

// Convergence of MetricSMACOF: it stops when an iteration lowers raw
// stress by less than smacofTol of its value, or after smacofMaxIter
// iterations. Ten points in two dimensions take a few hundred iterations
// at most to reach 1e-12; each costs about 400 multiply-adds.
const (
	smacofTol     = 1e-12
	smacofMaxIter = 10000
)

// Embed places the p variables of correlation matrix r in k dimensions by
// method, over the dissimilarities d_ij = sqrt(2(1 − r_ij)) (see MDS). The
// configuration's orientation is arbitrary, which Procrustes absorbs.
func Embed(method MDSMethod, r *mat.SymDense, k int) (*mat.Dense, error) {
	switch method {
	case Classical, "":
		return MDS(r, k)
	case SMACOF:
		start, err := MDS(r, k)
		if err != nil {
			return nil, err
		}
		delta, err := dissimilarities(r)
		if err != nil {
			return nil, err
		}
		x, _, _, err := MetricSMACOF(delta, start)
		return x, err
	}
	return nil, fmt.Errorf("mds: unknown method %q", method)
}

// MetricSMACOF minimises the raw stress
//
//	σ(X) = Σ_{i<j} (δ_ij − d_ij(X))²
//
// of an n×k configuration X against the dissimilarities δ (symmetric,
// zero diagonal, non-negative), all weights 1, by the SMACOF majorisation
// algorithm (de Leeuw 1977; de Leeuw & Mair 2009, Multidimensional scaling
// using majorization: SMACOF in R, J. Stat. Softw. 31(3), §2): from start,
// repeat the Guttman transform
//
//	X⁺ = n⁻¹ B(X) X,  b_ij = −δ_ij / d_ij(X) (i ≠ j, 0 when d_ij = 0),
//	b_ii = −Σ_{j≠i} b_ij,
//
// which never raises σ, until it lowers σ by less than smacofTol of its
// value (or smacofMaxIter iterations). start must be centred (classical
// MDS's is); the transform keeps it so. It returns the configuration, its
// raw stress and the iterations done; the result is a stationary point, a
// local minimum in practice, near the classical start.
func MetricSMACOF(delta *mat.SymDense, start *mat.Dense) (x *mat.Dense, stress float64, iterations int, err error) {
	if delta == nil || start == nil {
		return nil, 0, 0, errors.New("smacof: nil input")
	}
	n := delta.SymmetricDim()
	rows, k := start.Dims()
	if rows != n {
		return nil, 0, 0, fmt.Errorf("smacof: %d dissimilarities, start has %d points", n, rows)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := delta.At(i, j)
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || (i == j && v != 0) {
				return nil, 0, 0, fmt.Errorf("smacof: dissimilarity %d,%d is %v", i, j, v)
			}
		}
	}
	x = mat.DenseCopyOf(start)
	stress = rawStress(delta, x)
	b := mat.NewDense(n, n, nil)
	next := mat.NewDense(n, k, nil)
	for iterations < smacofMaxIter {
		for i := 0; i < n; i++ {
			var diag float64
			for j := 0; j < n; j++ {
				if i == j {
					continue
				}
				var bij float64
				if d := dist(x, i, j); d > 0 {
					bij = -delta.At(i, j) / d
				}
				b.Set(i, j, bij)
				diag -= bij
			}
			b.Set(i, i, diag)
		}
		next.Mul(b, x)
		next.Scale(1/float64(n), next)
		s := rawStress(delta, next)
		iterations++
		x, next = next, x
		old := stress
		stress = s
		if old-s <= smacofTol*old {
			break
		}
	}
	if math.IsNaN(stress) {
		return nil, 0, iterations, errors.New("smacof: stress is not a number")
	}
	return x, stress, iterations, nil
}

// rawStress is Σ_{i<j} (δ_ij − d_ij(X))².
func rawStress(delta *mat.SymDense, x *mat.Dense) float64 {
	n, _ := x.Dims()
	var s float64
	for i := 1; i < n; i++ {
		for j := 0; j < i; j++ {
			e := delta.At(i, j) - dist(x, i, j)
			s += e * e
		}
	}
	return s
}

// dist is the Euclidean distance between rows i and j of x.
func dist(x *mat.Dense, i, j int) float64 {
	_, k := x.Dims()
	var s float64
	for c := 0; c < k; c++ {
		d := x.At(i, c) - x.At(j, c)
		s += d * d
	}
	return math.Sqrt(s)
}
