package analysis

import (
	"math"
	"testing"
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

// TestPercentile: linear interpolation between order statistics, worked
// by hand over 2, 4, ..., 50: h = 0.025·24 = 0.6 gives 2 + 0.6·2 = 3.2, and
// h = 0.975·24 = 23.4 gives 48 + 0.4·2 = 48.8.
func TestPercentile(t *testing.T) {
	sorted := make([]float64, 25)
	for i := range sorted {
		sorted[i] = float64(2 * (i + 1))
	}
	for _, c := range []struct{ q, want float64 }{{0.025, 3.2}, {0.975, 48.8}, {0, 2}, {1, 50}, {0.5, 26}} {
		if got := percentile(sorted, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("percentile %v: got %v, want %v", c.q, got, c.want)
		}
	}
}
