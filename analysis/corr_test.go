package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestCorrelationHandWorked(t *testing.T) {
	// Deviations from the means (2, 2, 2): x (-1,0,1), y (-1,1,0),
	// z (1,-1,0); each sum of squares is 2, Sxy = 1, Sxz = -1, Syz = -2,
	// so r = 0.5, -0.5 and -1. The NaN row must be ignored.
	rows := [][]float64{
		{1, 1, 3},
		{2, 3, 1},
		{math.NaN(), 100, -100},
		{3, 2, 2},
	}
	want := [][]float64{
		{1, 0.5, -0.5},
		{0.5, 1, -1},
		{-0.5, -1, 1},
	}
	acc := NewCorrAccumulator(3)
	for _, r := range rows {
		acc.Add(r)
	}
	for name, got := range map[string]*mat.SymDense{"Correlation": Correlation(rows), "CorrAccumulator": acc.Corr()} {
		t.Run(name, func(t *testing.T) {
			for i := range want {
				for j := range want[i] {
					if g := got.At(i, j); math.Abs(g-want[i][j]) > 1e-12 {
						t.Errorf("r[%d][%d]: got %v, want %v", i, j, g, want[i][j])
					}
				}
			}
		})
	}
	if got := acc.N(); got != 3 {
		t.Errorf("N: got %d, want 3", got)
	}
}

func TestCorrAccumulatorMatchesCorrelation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const p = 6
	// A large common offset makes naive sums of squares lose most digits;
	// the co-moment updates must not.
	const offset = 1e7
	rows := make([][]float64, 5000)
	for i := range rows {
		common := rng.NormFloat64()
		x := make([]float64, p)
		for j := range x {
			x[j] = offset + float64(j)*common + rng.NormFloat64()
		}
		rows[i] = x
	}
	want := Correlation(rows)
	acc := NewCorrAccumulator(p)
	for _, r := range rows {
		acc.Add(r)
	}
	if acc.N() != len(rows) {
		t.Errorf("N: got %d, want %d", acc.N(), len(rows))
	}
	got := acc.Corr()
	for i := range p {
		for j := range p {
			if d := math.Abs(got.At(i, j) - want.At(i, j)); d > 1e-9 {
				t.Errorf("r[%d][%d]: got %v, want %v", i, j, got.At(i, j), want.At(i, j))
			}
		}
	}
	// Sanity: the data are correlated as built (variable 0 has no common
	// part, variable 5 a large one).
	if r := want.At(4, 5); r < 0.9 {
		t.Errorf("r[4][5]: got %v, want > 0.9", r)
	}
}

func TestCorrNoVariance(t *testing.T) {
	rows := [][]float64{{0.1, 1}, {0.1, 2}, {0.1, 4}}
	acc := NewCorrAccumulator(2)
	for _, r := range rows {
		acc.Add(r)
	}
	for name, got := range map[string]*mat.SymDense{"Correlation": Correlation(rows), "CorrAccumulator": acc.Corr()} {
		t.Run(name, func(t *testing.T) {
			if v := got.At(0, 1); !math.IsNaN(v) {
				t.Errorf("r with a constant: got %v, want NaN", v)
			}
			if v := got.At(0, 0); !math.IsNaN(v) {
				t.Errorf("diagonal of a constant: got %v, want NaN", v)
			}
			if v := got.At(1, 1); v != 1 {
				t.Errorf("diagonal: got %v, want 1", v)
			}
		})
	}
	if Correlation(nil) != nil {
		t.Error("Correlation(nil): got a matrix, want nil")
	}
}

func TestCorrAccumulatorAddDoesNotAllocate(t *testing.T) {
	acc := NewCorrAccumulator(10)
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if n := testing.AllocsPerRun(100, func() { acc.Add(x) }); n != 0 {
		t.Errorf("allocations per Add: got %v, want 0", n)
	}
}

func BenchmarkCorrAccumulatorAdd(b *testing.B) {
	acc := NewCorrAccumulator(10)
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for b.Loop() {
		acc.Add(x)
	}
}
