package results

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/values"
)

func TestPlotMDS(t *testing.T) {
	human, _ := analysis.LookupReference(analysis.DefaultReference)
	h, m, _, err := analysis.MDSMapBy(analysis.Classical, circumplex(0.5), human.R)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "map")
	if err := PlotMDS(h, m, values.Codes(), "values map", base); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".png", ".svg"} {
		fi, err := os.Stat(base + ext)
		if err != nil {
			t.Fatalf("stat %s: %v", ext, err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s: got 0 bytes, want an image", ext)
		}
	}
}

func TestPlotMDSErrors(t *testing.T) {
	cfg := mat.NewDense(3, 2, []float64{0, 1, 1, 0, -1, 0})
	tests := []struct {
		name   string
		h, m   *mat.Dense
		labels []string
	}{
		{"labels", cfg, cfg, []string{"a", "b"}},
		{"shape", cfg, mat.NewDense(3, 3, nil), []string{"a", "b", "c"}},
		{"nil", nil, cfg, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "map")
			if err := PlotMDS(tt.h, tt.m, tt.labels, "x", base); err == nil {
				t.Error("got nil error, want one")
			}
			if _, err := os.Stat(base + ".png"); err == nil {
				t.Error("got a file, want none after an error")
			}
		})
	}
}

// circumplex is a 10×10 correlation matrix of a perfect circumplex: the
// correlation of two values is a times the cosine of their angle apart.
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
