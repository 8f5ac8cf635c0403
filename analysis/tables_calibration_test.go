package analysis

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestLowerTriangleCorrelation(t *testing.T) {
	sym := func(lower ...float64) *mat.SymDense {
		m := mat.NewSymDense(3, nil)
		for i := range 3 {
			m.SetSym(i, i, 1)
		}
		m.SetSym(1, 0, lower[0])
		m.SetSym(2, 0, lower[1])
		m.SetSym(2, 1, lower[2])
		return m
	}
	// Worked by hand: (0.1, 0.2, 0.4) and (0.5, 0.1, 0.3) have deviations
	// from their means, times 30, of (−4, −1, 5) and (6, −6, 0): r =
	// −18/√(42·72) ≈ −0.327. The diagonal, left out, would add three (1, 1)
	// points and make r positive.
	want := -18 / math.Sqrt(42*72)
	got, err := LowerTriangleCorrelation(sym(0.1, 0.2, 0.4), sym(0.5, 0.1, 0.3))
	if err != nil || math.Abs(got-want) > 1e-15 {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if got, _ := LowerTriangleCorrelation(sym(0.1, 0.2, 0.3), sym(0.6, 0.4, 0.2)); math.Abs(got+1) > 1e-12 {
		t.Errorf("reversed entries: got %v, want −1", got)
	}
	if _, err := LowerTriangleCorrelation(sym(0.1, 0.2, 0.3), sym(0.5, 0.5, 0.5)); err == nil {
		t.Error("constant lower triangle: got nil error, want one")
	}
	if _, err := LowerTriangleCorrelation(sym(0.1, 0.2, 0.3), mat.NewSymDense(4, nil)); err == nil {
		t.Error("shapes 3 and 4: got nil error, want one")
	}
}
