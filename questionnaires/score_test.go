package questionnaires

import (
	"math"
	"slices"
	"testing"
)

// small is a hand-made instrument: two keys, one reverse-keyed item, two
// facets and an item without a facet, on a 1..5 scale.
func small(t *testing.T) *Instrument {
	t.Helper()
	in, err := Parse([]byte(`name = "small"
kind = "traits"
instruction = "Agree?"
[scale]
min = 1
max = 5
labels = ["1", "2", "3", "4", "5"]
[[items]]
id = 1
text = "a"
key = "A"
facet = "a1"
[[items]]
id = 2
text = "b"
key = "B"
facet = "b1"
[[items]]
id = 3
text = "c"
key = "A"
facet = "a2"
reverse = true
[[items]]
id = 4
text = "d"
key = "B"
`), "small.toml")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func equalNaN(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool {
		return x == y || math.IsNaN(x) && math.IsNaN(y)
	})
}

func TestScore(t *testing.T) {
	in := small(t)
	nan := math.NaN()
	tests := []struct {
		name       string
		answers    []int
		want       []float64 // A, B
		wantFacets []float64 // a1, b1, a2
		wantMean   float64
	}{
		{"all valid", []int{5, 2, 1, 4}, []float64{5, 3}, []float64{5, 2, 5}, 3},
		{"reverse recoded", []int{1, 1, 5, 1}, []float64{1, 1}, []float64{1, 1, 1}, 2},
		{"zero is missing", []int{4, 0, 2, 0}, []float64{4, nan}, []float64{4, nan, 4}, 3},
		{"off the scale is missing", []int{6, -1, Missing, 3}, []float64{nan, 3}, []float64{nan, nan, nan}, 3},
		{"short slice", []int{2}, []float64{2, nan}, []float64{2, nan, nan}, 2},
		{"none", nil, []float64{nan, nan}, []float64{nan, nan, nan}, nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := in.Score(tt.answers); !equalNaN(got, tt.want) {
				t.Errorf("Score: got %v, want %v", got, tt.want)
			}
			if got := in.ScoreInto(make([]float64, 0, 8), tt.answers); !equalNaN(got, tt.want) {
				t.Errorf("ScoreInto: got %v, want %v", got, tt.want)
			}
			if got := in.ScoreFacets(tt.answers); !equalNaN(got, tt.wantFacets) {
				t.Errorf("ScoreFacets: got %v, want %v", got, tt.wantFacets)
			}
			if got := in.Mean(tt.answers); !equalNaN([]float64{got}, []float64{tt.wantMean}) {
				t.Errorf("Mean: got %v, want %v", got, tt.wantMean)
			}
		})
	}
}

func TestScoreZeroBasedScale(t *testing.T) {
	in, err := Builtin("ebq")
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]int, len(in.Items))
	for i := range answers {
		answers[i] = Missing
	}
	answers[0] = 0 // "never" is an answer on the EBQ
	got := in.Score(answers)
	if k := in.KeyIndex(0); got[k] != 0 {
		t.Errorf("%s: got %v, want 0", in.Keys()[k], got[k])
	}
	if k := in.KeyIndex(1); !math.IsNaN(got[k]) {
		t.Errorf("%s: got %v, want NaN", in.Keys()[k], got[k])
	}
}

func TestScoreTooManyAnswers(t *testing.T) {
	in := small(t)
	defer func() {
		if recover() == nil {
			t.Errorf("got no panic, want one for 5 answers to 4 items")
		}
	}()
	in.Score([]int{1, 1, 1, 1, 1})
}

func TestTables(t *testing.T) {
	in := small(t)
	if got, want := in.Keys(), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("Keys: got %v, want %v", got, want)
	}
	if got, want := in.Facets(), []string{"a1", "b1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("Facets: got %v, want %v", got, want)
	}
	for i, want := range []int{0, 1, 0, 1} {
		if got := in.KeyIndex(i); got != want {
			t.Errorf("KeyIndex(%d): got %d, want %d", i, got, want)
		}
	}
	for i, want := range []int{0, 1, 2, -1} {
		if got := in.FacetIndex(i); got != want {
			t.Errorf("FacetIndex(%d): got %d, want %d", i, got, want)
		}
	}
	if got, want := in.ValueKeys(), []int{-1, -1, -1, -1}; !slices.Equal(got, want) {
		t.Errorf("ValueKeys: got %v, want %v", got, want)
	}
	if got, want := in.Recode(2, 2), 4; got != want {
		t.Errorf("Recode reverse: got %d, want %d", got, want)
	}
	if got, want := in.Recode(0, 2), 2; got != want {
		t.Errorf("Recode forward: got %d, want %d", got, want)
	}
}

// An instrument built in code without Validate still scores correctly.
func TestUnindexed(t *testing.T) {
	in := &Instrument{
		Scale: Scale{Min: 1, Max: 3},
		Items: []Item{{ID: 1, Key: "x"}, {ID: 2, Key: "SE", Reverse: true}},
	}
	if got, want := in.Score([]int{2, 3}), []float64{2, 1}; !slices.Equal(got, want) {
		t.Errorf("Score: got %v, want %v", got, want)
	}
	if got, want := in.ValueKeys(), []int{-1, 5}; !slices.Equal(got, want) {
		t.Errorf("ValueKeys: got %v, want %v", got, want)
	}
}

func TestClone(t *testing.T) {
	in, err := Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	c := in.Clone()
	c.Items[0].Text = "changed"
	c.Scale.Labels[0] = "changed"
	if in.Items[0].Text == "changed" || in.Scale.Labels[0] == "changed" {
		t.Errorf("got the shared instrument changed through its clone, want it untouched")
	}
	if got, want := c.Keys(), in.Keys(); !slices.Equal(got, want) {
		t.Errorf("clone keys: got %v, want %v", got, want)
	}
}

func TestScoreIntoAllocations(t *testing.T) {
	in, err := Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]int, 40)
	for i := range answers {
		answers[i] = 1 + i%6
	}
	dst := make([]float64, 10)
	if n := testing.AllocsPerRun(100, func() { dst = in.ScoreInto(dst, answers) }); n != 0 {
		t.Errorf("got %v allocations per ScoreInto, want 0", n)
	}
}

func BenchmarkScore(b *testing.B) {
	in, err := Builtin("pvq40")
	if err != nil {
		b.Fatal(err)
	}
	answers := make([]int, 40)
	for i := range answers {
		answers[i] = 1 + i%6
	}
	dst := make([]float64, 10)
	for b.Loop() {
		dst = in.ScoreInto(dst, answers)
	}
}
