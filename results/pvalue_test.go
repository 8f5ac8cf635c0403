package results

import "testing"

// TestPValueText: a p-value at the resolution of its permutations is shown
// as a bound, not as an exact value.
func TestPValueText(t *testing.T) {
	if got := fmtPText(1.0/200, 1.0/200); got != "≤ 0.005" {
		t.Errorf("got %q, want \"≤ 0.005\"", got)
	}
}
