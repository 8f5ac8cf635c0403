package analysis

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// readCSVMatrix reads a square matrix written by R's write.csv (a header
// row and a first column of names).
func readCSVMatrix(t *testing.T, path string) *mat.SymDense {
	t.Helper()
	recs := readCSV(t, path)
	p := len(recs) - 1
	m := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			m.SetSym(i, j, parseFloat(t, recs[i+1][j+1]))
		}
	}
	return m
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestSMACOFAgainstR compares MetricSMACOF with an independent
// implementation in R of the same published algorithm (testdata/smacof/
// smacof.R, output committed beside it), started from R's own classical
// scaling (stats::cmdscale): raw stress at the classical start and at
// convergence, the iterations, the Pearson correlation of the lower
// triangles (App. E's fit) and the inter-point distances of the final
// configuration. The two starts may differ by a reflection, which SMACOF
// carries through unchanged, so configurations are compared by distances.
func TestSMACOFAgainstR(t *testing.T) {
	dir := filepath.Join("testdata", "smacof")
	cases := readCSV(t, filepath.Join(dir, "cases.csv"))
	configs := readCSV(t, filepath.Join(dir, "configs.csv"))
	human := readCSVMatrix(t, filepath.Join("reference", "gss2012_mrat_r.csv"))
	if len(cases) < 8 {
		t.Fatalf("got %d reference cases, want 7", len(cases)-1)
	}
	for _, c := range cases[1:] {
		name := c[0]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("reference", name+".csv")
			if _, err := os.Stat(path); err != nil {
				path = filepath.Join(dir, name+".csv")
			}
			r := readCSVMatrix(t, path)
			delta, err := dissimilarities(r)
			if err != nil {
				t.Fatal(err)
			}
			start, err := MDS(r, 2)
			if err != nil {
				t.Fatal(err)
			}
			close := func(what string, got, want, tol float64) {
				t.Helper()
				if math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
					t.Errorf("%s: got %.12g, want %.12g (R)", what, got, want)
				}
			}
			close("classical stress", rawStress(delta, start), parseFloat(t, c[1]), 1e-9)
			x, stress, iters, err := MetricSMACOF(delta, start)
			if err != nil {
				t.Fatal(err)
			}
			close("smacof stress", stress, parseFloat(t, c[2]), 1e-9)
			if want := int(parseFloat(t, c[3])); iters < want-2 || iters > want+2 {
				t.Errorf("iterations: got %d, want %d ± 2 (R)", iters, want)
			}
			lr, err := LowerTriangleCorrelation(r, human)
			if err != nil {
				t.Fatal(err)
			}
			close("lower-triangle r", lr, parseFloat(t, c[4]), 1e-12)

			var ref [][2]float64
			for _, row := range configs[1:] {
				if row[0] == name {
					ref = append(ref, [2]float64{parseFloat(t, row[2]), parseFloat(t, row[3])})
				}
			}
			if len(ref) != r.SymmetricDim() {
				t.Fatalf("got %d R points, want %d", len(ref), r.SymmetricDim())
			}
			var worst float64
			for i := range ref {
				for j := range i {
					want := math.Hypot(ref[i][0]-ref[j][0], ref[i][1]-ref[j][1])
					worst = math.Max(worst, math.Abs(dist(x, i, j)-want))
				}
			}
			t.Logf("stress %.12g, %d iterations; distances within %.2g of R's", stress, iters, worst)
			if worst > 1e-6 {
				t.Errorf("inter-point distances differ from R's by up to %g, want ≤ 1e-6", worst)
			}
		})
	}
}

// TestSMACOFStationary checks what any SMACOF solution must satisfy,
// whatever its implementation: stress no higher than at the classical
// start, the configuration a fixed point of the Guttman transform, and the
// result unchanged (up to rotation) by a rotated start.
func TestSMACOFStationary(t *testing.T) {
	r := readCSVMatrix(t, filepath.Join("reference", "ess_sweden_raw_r.csv"))
	delta, _ := dissimilarities(r)
	start, err := MDS(r, 2)
	if err != nil {
		t.Fatal(err)
	}
	x, stress, _, err := MetricSMACOF(delta, start)
	if err != nil {
		t.Fatal(err)
	}
	if s0 := rawStress(delta, start); !(stress < s0) {
		t.Errorf("stress %v, not below the classical start's %v", stress, s0)
	}
	again, _, iters, err := MetricSMACOF(delta, x)
	if err != nil || iters != 1 {
		t.Errorf("restarted at the solution: %d iterations, %v; want 1", iters, err)
	}
	var diff mat.Dense
	diff.Sub(again, x)
	if d := mat.Norm(&diff, 2); d > 1e-5 {
		t.Errorf("Guttman transform moves the solution by %g, want a fixed point", d)
	}
	th := 0.7
	rot := mat.NewDense(2, 2, []float64{math.Cos(th), -math.Sin(th), math.Sin(th), math.Cos(th)})
	var turned mat.Dense
	turned.Mul(start, rot)
	y, s2, _, err := MetricSMACOF(delta, &turned)
	if err != nil || math.Abs(s2-stress) > 1e-9 {
		t.Errorf("rotated start: stress %v, %v; want %v", s2, err, stress)
	}
	if _, d, _ := Procrustes(x, y); d > 1e-9 {
		t.Errorf("rotated start: disparity %g from the first solution, want 0", d)
	}
}

// TestEmbedMethods: the similarity of a matrix to itself is 1 by either
// method, and an unknown method is an error.
func TestEmbedMethods(t *testing.T) {
	r := readCSVMatrix(t, filepath.Join("reference", "gss2012_raw_r.csv"))
	for _, m := range []MDSMethod{Classical, SMACOF} {
		s, err := ValuesSimilarityBy(m, r, r)
		if err != nil || math.Abs(s-1) > 1e-9 {
			t.Errorf("%s: self-similarity %v, %v; want 1", m, s, err)
		}
	}
	if _, err := Embed("isomap", r, 2); err == nil {
		t.Error("unknown method: got nil error, want one")
	}
}
