package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/society-sim/society/values"
)

func TestTTestOneSample(t *testing.T) {
	// Each case puts mu so that t equals a tabled critical value of
	// Student's t, whose two-sided p is then the table's level. Critical
	// values from the NIST/SEMATECH e-Handbook of Statistical Methods,
	// §1.3.6.7.2 "Critical Values of the Student's t Distribution":
	// t(0.975; 4 df) = 2.776, t(0.995; 9 df) = 3.250.
	//
	// 1..5: mean 3, s² = 10/4 = 2.5, s/√n = √(2.5/5).
	// 1..10: mean 5.5, s² = 82.5/9, s/√n = √(82.5/9/10).
	tests := []struct {
		name  string
		xs    []float64
		mu    float64
		wantT float64
		wantP float64
	}{
		{"4 df at 5%", []float64{1, 2, 3, 4, 5}, 3 - 2.776*math.Sqrt(2.5/5), 2.776, 0.05},
		{"9 df at 1%, negative t", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 5.5 + 3.250*math.Sqrt(82.5/9/10), -3.250, 0.01},
		{"mean equals mu", []float64{1, 2, 3, 4, 5}, 3, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotT, gotP := TTestOneSample(tt.xs, tt.mu)
			if math.Abs(gotT-tt.wantT) > 1e-9 {
				t.Errorf("t: got %v, want %v", gotT, tt.wantT)
			}
			// The table has three decimals; 2e-4 covers that rounding.
			if math.Abs(gotP-tt.wantP) > 2e-4 {
				t.Errorf("p: got %v, want %v", gotP, tt.wantP)
			}
		})
	}
	t.Run("degenerate", func(t *testing.T) {
		if tv, p := TTestOneSample([]float64{1}, 0); !math.IsNaN(tv) || !math.IsNaN(p) {
			t.Errorf("one value: got t=%v p=%v, want NaN NaN", tv, p)
		}
		if tv, p := TTestOneSample([]float64{2, 2, 2}, 0); !math.IsInf(tv, 1) || p != 0 {
			t.Errorf("constant above mu: got t=%v p=%v, want +Inf 0", tv, p)
		}
	})
}

func TestBootstrapCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const reps, n = 200, 100
	covered := 0
	data := make([]float64, n)
	for range reps {
		for i := range data {
			data[i] = rng.NormFloat64()
		}
		res := Bootstrap(n, 200, n, rng, func(idx []int) (float64, bool) {
			var s float64
			for _, i := range idx {
				s += data[i]
			}
			return s / float64(len(idx)), true
		})
		if len(res.Samples) != 200 {
			t.Fatalf("samples: got %d, want 200", len(res.Samples))
		}
		if res.CI95[0] > res.CI95[1] || res.Mean < res.CI95[0] || res.Mean > res.CI95[1] {
			t.Fatalf("CI %v does not bracket the mean %v", res.CI95, res.Mean)
		}
		if res.CI95[0] <= 0 && 0 <= res.CI95[1] {
			covered++
		}
	}
	rate := float64(covered) / reps
	t.Logf("coverage %v", rate)
	if rate < 0.88 || rate > 0.99 {
		t.Errorf("coverage of the true mean: got %v, want 0.88..0.99", rate)
	}
}

func TestBootstrapSkipsFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	calls := 0
	res := Bootstrap(10, 50, 5, rng, func(idx []int) (float64, bool) {
		calls++
		for _, i := range idx {
			if i < 0 || i >= 10 {
				t.Fatalf("index %d outside [0, 10)", i)
			}
		}
		// Every other iteration fails; the rest return 1, 2, 3, ...
		return float64(calls), calls%2 == 0
	})
	if calls != 50 {
		t.Errorf("calls: got %d, want 50", calls)
	}
	if len(res.Samples) != 25 {
		t.Fatalf("samples: got %d, want 25", len(res.Samples))
	}
	// Samples 2, 4, ..., 50: mean 26; percentiles by linear interpolation
	// over 25 order statistics: h = 0.025·24 = 0.6 → 2 + 0.6·2 = 3.2, and
	// h = 0.975·24 = 23.4 → 48 + 0.4·2 = 48.8.
	if res.Mean != 26 {
		t.Errorf("mean: got %v, want 26", res.Mean)
	}
	if math.Abs(res.CI95[0]-3.2) > 1e-12 || math.Abs(res.CI95[1]-48.8) > 1e-12 {
		t.Errorf("CI95: got %v, want [3.2 48.8]", res.CI95)
	}
	if res.P >= 1e-6 {
		t.Errorf("p: got %v, want tiny (samples far from 0)", res.P)
	}
	none := Bootstrap(10, 5, 5, rng, func([]int) (float64, bool) { return 0, false })
	if !math.IsNaN(none.Mean) || !math.IsNaN(none.P) || len(none.Samples) != 0 {
		t.Errorf("all failed: got %+v, want NaN figures and no samples", none)
	}
}

// circumplexScores draws agents whose ten value scores lie on the circle
// around a random direction, plus noise.
func circumplexScores(rng *rand.Rand, n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		a := 2 * math.Pi * rng.Float64()
		row := make([]float64, values.N)
		for j, v := range values.All() {
			row[j] = math.Cos(a-v.Angle()) + 0.7*rng.NormFloat64()
		}
		out[i] = row
	}
	return out
}

func TestBootstrapValuesSimilarity(t *testing.T) {
	human, _ := LookupReference(DefaultReference)
	rng := rand.New(rand.NewPCG(17, 18))
	scores := circumplexScores(rng, 2000)
	res := BootstrapValuesSimilarity(scores, human.R, 20, 500, rng)
	if len(res.Samples) != 20 {
		t.Fatalf("samples: got %d, want 20", len(res.Samples))
	}
	if res.Mean < 0.8 || res.CI95[0] < 0.7 || res.CI95[1] > 1 {
		t.Errorf("circumplex population: got mean %v CI %v, want mean > 0.8 within [0.7, 1]", res.Mean, res.CI95)
	}
	if res.P > 1e-6 {
		t.Errorf("p: got %v, want tiny", res.P)
	}

	noise := make([][]float64, 2000)
	for i := range noise {
		noise[i] = make([]float64, values.N)
		for j := range noise[i] {
			noise[i][j] = rng.NormFloat64()
		}
	}
	if r := BootstrapValuesSimilarity(noise, human.R, 20, 500, rng); r.Mean > res.Mean-0.2 {
		t.Errorf("noise population: got mean %v, want below %v", r.Mean, res.Mean-0.2)
	}

	// A value without variance makes every resample degenerate.
	flat := circumplexScores(rng, 100)
	for _, row := range flat {
		row[3] = 4
	}
	if r := BootstrapValuesSimilarity(flat, human.R, 5, 50, rng); len(r.Samples) != 0 {
		t.Errorf("constant value: got %d samples, want 0", len(r.Samples))
	}
}
