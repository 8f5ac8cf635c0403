package analysis

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/mds"

	"github.com/society-sim/society/values"
)

// eigTol is the fraction of the largest eigenvalue below which an
// eigenvalue of the scaled matrix counts as zero: the eigensolver returns
// rounding noise of about this size for dimensions the data do not have.
const eigTol = 1e-10

// MDS places the p variables of correlation matrix r in k dimensions by
// classical (Torgerson) scaling of the dissimilarities
// d_ij = sqrt(2(1 − r_ij)), the distance between standardised variables
// with correlation r_ij (up to a factor √n). It returns a p×k configuration
// whose axes are the principal axes, largest first; its orientation (signs
// of axes) is arbitrary, which Procrustes absorbs.
func MDS(r *mat.SymDense, k int) (*mat.Dense, error) {
	if r == nil {
		return nil, errors.New("mds: nil matrix")
	}
	p := r.SymmetricDim()
	if k < 1 || k > p {
		return nil, fmt.Errorf("mds: %d dimensions for %d variables", k, p)
	}
	d, err := dissimilarities(r)
	if err != nil {
		return nil, err
	}
	var cfg mat.Dense
	eig := make([]float64, p)
	n, eig := mds.TorgersonScaling(&cfg, eig, d)
	positive := 0
	for i := 0; i < n; i++ {
		if eig[i] > eigTol*eig[0] {
			positive++
		}
	}
	if positive < k {
		return nil, fmt.Errorf("mds: %d positive eigenvalues, need %d", positive, k)
	}
	out := mat.NewDense(p, k, nil)
	out.Copy(cfg.Slice(0, p, 0, k))
	return out, nil
}

// dissimilarities returns d_ij = sqrt(2(1 − r_ij)) of correlation matrix r,
// with a zero diagonal.
func dissimilarities(r *mat.SymDense) (*mat.SymDense, error) {
	if r == nil {
		return nil, errors.New("mds: nil matrix")
	}
	p := r.SymmetricDim()
	d := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			v := r.At(i, j)
			if math.IsNaN(v) || v < -1-matrixTol || v > 1+matrixTol {
				return nil, fmt.Errorf("mds: entry %d,%d is %v, not a correlation", i, j, v)
			}
			d.SetSym(i, j, math.Sqrt(math.Max(0, 2*(1-v))))
		}
		d.SetSym(i, i, 0)
	}
	return d, nil
}

// Procrustes fits configuration x onto ref by translation, an orthogonal
// transform (rotation or reflection) and uniform scaling, minimising the sum
// of squared distances between corresponding rows. Both configurations are
// first standardised (centred, scaled to unit Frobenius norm), so the
// returned disparity, the sum of squared differences left after the fit, is
// in [0, 1]: 0 for configurations equal up to those transforms, and
// 1 − (Σσ)² in general, where σ are the singular values of xᵀref. This is
// the standard Procrustes disparity (as SciPy's scipy.spatial.procrustes
// defines it). fitted is x after the transform, in ref's standardised frame.
func Procrustes(ref, x *mat.Dense) (fitted *mat.Dense, disparity float64, err error) {
	if ref == nil || x == nil {
		return nil, 0, errors.New("procrustes: nil configuration")
	}
	rr, rc := ref.Dims()
	xr, xc := x.Dims()
	if rr != xr || rc != xc {
		return nil, 0, fmt.Errorf("procrustes: shapes %d×%d and %d×%d differ", rr, rc, xr, xc)
	}
	a, err := standardise(ref)
	if err != nil {
		return nil, 0, fmt.Errorf("procrustes: reference: %w", err)
	}
	b, err := standardise(x)
	if err != nil {
		return nil, 0, fmt.Errorf("procrustes: configuration: %w", err)
	}
	q, trace, err := orthogonal(a, b)
	if err != nil {
		return nil, 0, fmt.Errorf("procrustes: %w", err)
	}
	// With unit norms, the least-squares scale is the sum of the singular
	// values.
	fitted = mat.NewDense(xr, xc, nil)
	fitted.Mul(b, q)
	fitted.Scale(trace, fitted)
	var diff mat.Dense
	diff.Sub(a, fitted)
	disparity = mat.Norm(&diff, 2)
	disparity *= disparity
	return fitted, disparity, nil
}

// standardise centres the columns of m and scales it to unit Frobenius norm.
func standardise(m *mat.Dense) (*mat.Dense, error) {
	r, c := m.Dims()
	out := mat.NewDense(r, c, nil)
	for j := 0; j < c; j++ {
		var mean float64
		for i := 0; i < r; i++ {
			mean += m.At(i, j)
		}
		mean /= float64(r)
		for i := 0; i < r; i++ {
			out.Set(i, j, m.At(i, j)-mean)
		}
	}
	norm := mat.Norm(out, 2)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return nil, errors.New("not finite")
	}
	if norm == 0 {
		return nil, errors.New("all points coincide")
	}
	out.Scale(1/norm, out)
	return out, nil
}

// orthogonal returns the orthogonal Q minimising ‖a − bQ‖ (the solution of
// the orthogonal Procrustes problem, Schönemann 1966: with bᵀa = UΣVᵀ,
// Q = UVᵀ) and the trace of Σ.
func orthogonal(a, b *mat.Dense) (*mat.Dense, float64, error) {
	var m mat.Dense
	m.Mul(b.T(), a)
	var svd mat.SVD
	if !svd.Factorize(&m, mat.SVDFull) {
		return nil, 0, errors.New("singular value decomposition did not converge")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	var q mat.Dense
	q.Mul(&u, v.T())
	var trace float64
	for _, s := range svd.Values(nil) {
		trace += s
	}
	return &q, trace, nil
}

// ValuesSimilarityBy is the study's Values Similarity score: 1 minus the
// Procrustes disparity between the two-dimensional MDS configurations of
// the model's and the human value correlation matrices, both placed by
// method (Embed; the study's is Classical), the model's fitted onto the
// human one. 1 means the same structure up to rotation, reflection and
// scale.
func ValuesSimilarityBy(method MDSMethod, model, human *mat.SymDense) (float64, error) {
	_, _, sim, err := mdsFit(method, model, human)
	return sim, err
}

// MDSMapBy returns what a value map plots: the human two-dimensional
// configuration and the model's configuration fitted onto it, in one frame,
// both placed by method (Embed), and their Values Similarity. For 10×10
// value matrices the frame is turned (rotation or reflection only) so that
// the human configuration lies as close as it can to the idealised circle
// of values.Angle, and both are scaled so that the human points lie at
// root-mean-square distance 1 from the centre, the radius of that circle.
// Neither changes the similarity.
func MDSMapBy(method MDSMethod, model, human *mat.SymDense) (humanCfg, modelFitted *mat.Dense, sim float64, err error) {
	humanCfg, modelFitted, sim, err = mdsFit(method, model, human)
	if err != nil {
		return nil, nil, 0, err
	}
	p, _ := humanCfg.Dims()
	if p == values.N {
		ideal := mat.NewDense(p, 2, nil)
		for i, v := range values.All() {
			ideal.Set(i, 0, math.Cos(v.Angle()))
			ideal.Set(i, 1, math.Sin(v.Angle()))
		}
		q, _, err := orthogonal(ideal, humanCfg)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("mds map: orient: %w", err)
		}
		var h, m mat.Dense
		h.Mul(humanCfg, q)
		m.Mul(modelFitted, q)
		humanCfg, modelFitted = &h, &m
	}
	s := math.Sqrt(float64(p)) // unit Frobenius norm → unit RMS radius
	humanCfg.Scale(s, humanCfg)
	modelFitted.Scale(s, modelFitted)
	return humanCfg, modelFitted, sim, nil
}

// mdsFit returns the standardised human configuration, the model's fitted
// onto it and 1 − disparity.
func mdsFit(method MDSMethod, model, human *mat.SymDense) (humanCfg, modelFitted *mat.Dense, sim float64, err error) {
	if model == nil || human == nil {
		return nil, nil, 0, errors.New("values similarity: nil matrix")
	}
	if pm, ph := model.SymmetricDim(), human.SymmetricDim(); pm != ph {
		return nil, nil, 0, fmt.Errorf("values similarity: model matrix is %d×%d, human %d×%d", pm, pm, ph, ph)
	}
	h, err := Embed(method, human, 2)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("values similarity: human: %w", err)
	}
	m, err := Embed(method, model, 2)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("values similarity: model: %w", err)
	}
	fitted, disparity, err := Procrustes(h, m)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("values similarity: %w", err)
	}
	h, err = standardise(h)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("values similarity: human: %w", err)
	}
	return h, fitted, 1 - disparity, nil
}
