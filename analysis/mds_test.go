package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/values"
)

func randomConfig(rng *rand.Rand, p, k int) *mat.Dense {
	m := mat.NewDense(p, k, nil)
	for i := range p {
		for j := range k {
			m.Set(i, j, rng.NormFloat64())
		}
	}
	return m
}

func TestProcrustesRecoversTransform(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ref := randomConfig(rng, 10, 2)
	tests := []struct {
		name    string
		angle   float64
		reflect bool
		scale   float64
		shift   [2]float64
	}{
		{"identity", 0, false, 1, [2]float64{}},
		{"rotated", 1.1, false, 1, [2]float64{}},
		{"rotated scaled reflected translated", 2.3, true, 3.7, [2]float64{-5, 12}},
		{"shrunk", -0.4, true, 0.01, [2]float64{0.3, 0.2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := math.Cos(tt.angle), math.Sin(tt.angle)
			rot := mat.NewDense(2, 2, []float64{c, -s, s, c})
			if tt.reflect {
				rot.Mul(rot, mat.NewDense(2, 2, []float64{1, 0, 0, -1}))
			}
			var x mat.Dense
			x.Mul(ref, rot)
			x.Scale(tt.scale, &x)
			for i := range 10 {
				x.Set(i, 0, x.At(i, 0)+tt.shift[0])
				x.Set(i, 1, x.At(i, 1)+tt.shift[1])
			}
			fitted, d, err := Procrustes(ref, &x)
			if err != nil {
				t.Fatal(err)
			}
			if d > 1e-12 || d < 0 {
				t.Errorf("disparity: got %g, want < 1e-12", d)
			}
			// fitted lives in ref's standardised frame.
			std, _ := standardise(ref)
			if !mat.EqualApprox(fitted, std, 1e-10) {
				t.Errorf("fitted: got %v, want %v", mat.Formatted(fitted), mat.Formatted(std))
			}
		})
	}
}

func TestProcrustesRandomIsFar(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var sum float64
	const reps = 20
	for range reps {
		ref, x := randomConfig(rng, 10, 2), randomConfig(rng, 10, 2)
		_, d, err := Procrustes(ref, x)
		if err != nil {
			t.Fatal(err)
		}
		if d < 0 || d > 1 {
			t.Fatalf("disparity: got %v, want in [0, 1]", d)
		}
		sum += d
	}
	// Unrelated configurations of ten points leave most of the variance
	// unexplained.
	if mean := sum / reps; mean < 0.5 {
		t.Errorf("mean disparity of random configurations: got %v, want >= 0.5", mean)
	}
}

func TestProcrustesErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		name   string
		ref, x *mat.Dense
	}{
		{"shape", randomConfig(rng, 10, 2), randomConfig(rng, 9, 2)},
		{"coincident", randomConfig(rng, 4, 2), mat.NewDense(4, 2, []float64{1, 1, 1, 1, 1, 1, 1, 1})},
		{"nil", nil, randomConfig(rng, 4, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Procrustes(tt.ref, tt.x); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}

// corrFromPoints builds the matrix whose MDS dissimilarities
// sqrt(2(1 − r)) are the Euclidean distances between pts.
func corrFromPoints(pts [][2]float64) *mat.SymDense {
	r := mat.NewSymDense(len(pts), nil)
	for i := range pts {
		for j := i; j < len(pts); j++ {
			dx, dy := pts[i][0]-pts[j][0], pts[i][1]-pts[j][1]
			r.SetSym(i, j, 1-(dx*dx+dy*dy)/2)
		}
	}
	return r
}

func TestMDSRecoversDistances(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	pts := make([][2]float64, 10)
	for i := range pts {
		// Inside a disc of radius 0.9, so that every distance is below 2
		// and every r is in [-1, 1].
		a, rad := 2*math.Pi*rng.Float64(), 0.9*math.Sqrt(rng.Float64())
		pts[i] = [2]float64{rad * math.Cos(a), rad * math.Sin(a)}
	}
	cfg, err := MDS(corrFromPoints(pts), 2)
	if err != nil {
		t.Fatal(err)
	}
	if r, c := cfg.Dims(); r != 10 || c != 2 {
		t.Fatalf("dims: got %d×%d, want 10×2", r, c)
	}
	for i := range pts {
		for j := i + 1; j < len(pts); j++ {
			want := math.Hypot(pts[i][0]-pts[j][0], pts[i][1]-pts[j][1])
			got := math.Hypot(cfg.At(i, 0)-cfg.At(j, 0), cfg.At(i, 1)-cfg.At(j, 1))
			if math.Abs(got-want) > 1e-9 {
				t.Errorf("distance %d-%d: got %v, want %v", i, j, got, want)
			}
		}
	}
	// The points are planar: a third dimension does not exist.
	if _, err := MDS(corrFromPoints(pts), 3); err == nil {
		t.Error("MDS of planar points in 3-D: got nil error, want one")
	}
}

func TestMDSErrors(t *testing.T) {
	ones := mat.NewSymDense(3, []float64{1, 1, 1, 1, 1, 1, 1, 1, 1})
	bad := mat.NewSymDense(2, []float64{1, math.NaN(), math.NaN(), 1})
	tests := []struct {
		name string
		r    *mat.SymDense
		k    int
	}{
		{"identical variables", ones, 1},
		{"NaN", bad, 1},
		{"k too large", mat.NewSymDense(2, []float64{1, 0, 0, 1}), 3},
		{"k zero", mat.NewSymDense(2, []float64{1, 0, 0, 1}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MDS(tt.r, tt.k); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}

// circumplex is the correlation matrix of ten variables lying on a circle
// in circular value order, with common variance a.
func circumplex(a float64) *mat.SymDense {
	r := mat.NewSymDense(values.N, nil)
	for i, vi := range values.All() {
		for j, vj := range values.All() {
			if j < i {
				continue
			}
			v := a * math.Cos(vi.Angle()-vj.Angle())
			if i == j {
				v = 1
			}
			r.SetSym(i, j, v)
		}
	}
	return r
}

// randomCorr is the sample correlation of n rows of independent noise.
func randomCorr(rng *rand.Rand, n int) *mat.SymDense {
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, values.N)
		for j := range rows[i] {
			rows[i][j] = rng.NormFloat64()
		}
	}
	return Correlation(rows)
}

func TestValuesSimilarity(t *testing.T) {
	human, err := LookupReference(DefaultReference)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("self", func(t *testing.T) {
		for _, ref := range References() {
			sim, err := ValuesSimilarity(ref.R, ref.R)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(sim-1) > 1e-12 {
				t.Errorf("%s against itself: got %v, want 1", ref.Name, sim)
			}
		}
	})
	circ, err := ValuesSimilarity(circumplex(0.5), human.R)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("circumplex", func(t *testing.T) {
		if circ <= 0.8 {
			t.Errorf("idealised circumplex: got %v, want > 0.8", circ)
		}
	})
	t.Run("random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		var sum float64
		const reps = 30
		for range reps {
			sim, err := ValuesSimilarity(randomCorr(rng, 200), human.R)
			if err != nil {
				t.Fatal(err)
			}
			sum += sim
		}
		mean := sum / reps
		t.Logf("circumplex %.3f, random mean %.3f", circ, mean)
		if mean > circ-0.2 {
			t.Errorf("random matrices: got mean %v, want below %v", mean, circ-0.2)
		}
	})
	t.Run("size mismatch", func(t *testing.T) {
		if _, err := ValuesSimilarity(circumplex(0.5), mat.NewSymDense(3, nil)); err == nil {
			t.Error("got nil error, want one")
		}
	})
}

func TestMDSMap(t *testing.T) {
	human, _ := LookupReference(DefaultReference)
	model := circumplex(0.5)
	h, m, sim, err := MDSMap(model, human.R)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ValuesSimilarity(model, human.R)
	if sim != want {
		t.Errorf("similarity: got %v, want %v", sim, want)
	}
	// The disparity is the standardised squared distance; the map is
	// scaled by sqrt(10) per coordinate, so by 10 in squared distance.
	var diff mat.Dense
	diff.Sub(h, m)
	if d := mat.Norm(&diff, 2); math.Abs(d*d/values.N-(1-sim)) > 1e-9 {
		t.Errorf("map disparity: got %v, want %v", d*d/values.N, 1-sim)
	}
	var rms float64
	for i := range values.N {
		rms += h.At(i, 0)*h.At(i, 0) + h.At(i, 1)*h.At(i, 1)
	}
	if rms = math.Sqrt(rms / values.N); math.Abs(rms-1) > 1e-9 {
		t.Errorf("human RMS radius: got %v, want 1", rms)
	}
	// Oriented to the idealised circle, Self-Direction and Universalism sit
	// on the right, Security and Power on the left.
	for _, v := range []values.Value{values.SelfDirection, values.Universalism} {
		if x := h.At(int(v), 0); x <= 0 {
			t.Errorf("%s x: got %v, want > 0", v, x)
		}
	}
	for _, v := range []values.Value{values.Security, values.Power} {
		if x := h.At(int(v), 0); x >= 0 {
			t.Errorf("%s x: got %v, want < 0", v, x)
		}
	}
}
