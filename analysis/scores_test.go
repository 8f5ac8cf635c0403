package analysis

import (
	"math"
	"testing"
)

func TestValueScores(t *testing.T) {
	// Two items per value (0..9 twice), then one item that measures no
	// value.
	keyOf := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1}
	tests := []struct {
		name    string
		answers []uint8
		ok      bool
		raw     []float64
		mrat    []float64
	}{
		{
			// SD (6+4)/2 = 5, ST (5+5)/2 = 5, HE..TR have only their
			// first item (1..6), BE (6+2)/2 = 4, UN (2+2)/2 = 2. The
			// unkeyed last item is ignored even though it is valid.
			name: "hand worked",
			//          SD ST HE AC PO SE CO TR BE UN  SD ST HE AC PO SE CO TR BE UN  none
			answers: []uint8{6, 5, 1, 2, 3, 4, 5, 6, 6, 2, 4, 5, 0, 0, 0, 0, 0, 0, 2, 2, 6},
			ok:      true,
			// MRAT subtracts the mean of the valid value items:
			// 6+5+1+2+3+4+5+6+6+2 + 4+5+2+2 = 53 over 14 items.
			raw: []float64{5, 5, 1, 2, 3, 4, 5, 6, 4, 2},
		},
		{
			name:    "a value with no valid item",
			answers: []uint8{6, 5, 1, 2, 3, 4, 5, 6, 6, 0, 4, 5, 0, 0, 0, 0, 0, 0, 2, 0, 6},
			ok:      false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, mrat := make([]float64, 10), make([]float64, 10)
			if got := ValueScores(keyOf, tt.answers, raw, mrat); got != tt.ok {
				t.Fatalf("ok: got %v, want %v", got, tt.ok)
			}
			if !tt.ok {
				return
			}
			mean := 53.0 / 14
			for v := range 10 {
				if raw[v] != tt.raw[v] {
					t.Errorf("raw[%d]: got %v, want %v", v, raw[v], tt.raw[v])
				}
				if want := tt.raw[v] - mean; math.Abs(mrat[v]-want) > 1e-12 {
					t.Errorf("mrat[%d]: got %v, want %v", v, mrat[v], want)
				}
			}
		})
	}
}

func TestValueScoresDoesNotAllocate(t *testing.T) {
	keyOf := make([]int, 40)
	answers := make([]uint8, 40)
	for i := range keyOf {
		keyOf[i] = i % 10
		answers[i] = uint8(1 + i%6)
	}
	raw, mrat := make([]float64, 10), make([]float64, 10)
	if n := testing.AllocsPerRun(100, func() { ValueScores(keyOf, answers, raw, mrat) }); n != 0 {
		t.Errorf("allocations: got %v, want 0", n)
	}
}

func BenchmarkValueScores(b *testing.B) {
	keyOf := make([]int, 40)
	answers := make([]uint8, 40)
	for i := range keyOf {
		keyOf[i] = i % 10
		answers[i] = uint8(1 + i%6)
	}
	raw, mrat := make([]float64, 10), make([]float64, 10)
	for b.Loop() {
		ValueScores(keyOf, answers, raw, mrat)
	}
}
