package questionnaires

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/society-sim/society/values"
)

func TestBuiltins(t *testing.T) {
	want := []string{"bfi2", "charity", "charity_decision", "donation", "ebq", "prosocial", "pvq40"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names: got %v, want %v", got, want)
	}
	tests := []struct {
		name   string
		kind   Kind
		items  int
		min    int
		points int
	}{
		{"pvq40", KindValues, 40, 1, 6},
		{"bfi2", KindTraits, 60, 1, 5},
		{"prosocial", KindBehaviour, 16, 1, 5},
		{"donation", KindBehaviour, 9, 1, 6},
		{"charity", KindGame, 1, 1, 7},
		{"charity_decision", KindGame, 1, 1, 2},
		{"ebq", KindBehaviour, 85, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Builtin(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if in.Name != tt.name {
				t.Errorf("name: got %q, want %q (the file's name)", in.Name, tt.name)
			}
			if in.Kind != tt.kind {
				t.Errorf("kind: got %q, want %q", in.Kind, tt.kind)
			}
			if len(in.Items) != tt.items {
				t.Errorf("items: got %d, want %d", len(in.Items), tt.items)
			}
			if in.Scale.Min != tt.min || in.Scale.Points() != tt.points {
				t.Errorf("scale: got %d points from %d, want %d from %d", in.Scale.Points(), in.Scale.Min, tt.points, tt.min)
			}
			if !in.Adapted || in.Citation == "" || in.Title == "" {
				t.Errorf("got adapted=%v citation=%q title=%q, want adapted wording with a citation and title", in.Adapted, in.Citation, in.Title)
			}
			seen := map[string]int{}
			for i, it := range in.Items {
				if j, dup := seen[it.Text]; dup {
					t.Errorf("item %d repeats the text of item %d", it.ID, in.Items[j].ID)
				}
				seen[it.Text] = i
			}
			again, _ := Builtin(tt.name)
			if again != in {
				t.Errorf("got a new instrument on the second call, want the shared one")
			}
		})
	}
	if _, err := Builtin("pvq41"); err == nil || !strings.Contains(err.Error(), `unknown instrument "pvq41"`) {
		t.Errorf("got %v, want an unknown instrument error", err)
	}
	if b, err := BuiltinFile("pvq40"); err != nil || !strings.Contains(string(b), `name = "pvq40"`) {
		t.Errorf("BuiltinFile: got %d bytes, %v; want the pvq40 source", len(b), err)
	}
}

// The published PVQ-40 key, written out independently of the data file.
var pvq40Key = map[string][]int{
	"SD": {1, 11, 22, 34},
	"PO": {2, 17, 39},
	"UN": {3, 8, 19, 23, 29, 40},
	"AC": {4, 13, 24, 32},
	"SE": {5, 14, 21, 31, 35},
	"ST": {6, 15, 30},
	"CO": {7, 16, 28, 36},
	"TR": {9, 20, 25, 38},
	"HE": {10, 26, 37},
	"BE": {12, 18, 27, 33},
}

func TestPVQ40Key(t *testing.T) {
	in, err := Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	for code, ids := range pvq40Key {
		for _, id := range ids {
			want[id] = code
		}
	}
	if len(want) != 40 {
		t.Fatalf("key table covers %d items, want 40", len(want))
	}
	for i, it := range in.Items {
		if it.ID != i+1 {
			t.Errorf("Items[%d].ID: got %d, want %d", i, it.ID, i+1)
		}
		if it.Key != want[it.ID] {
			t.Errorf("item %d: got key %s, want %s", it.ID, it.Key, want[it.ID])
		}
		if it.Reverse {
			t.Errorf("item %d: got reverse-keyed, want no reverse keys", it.ID)
		}
		if v := in.ValueKeys()[i]; v < 0 || values.Value(v).Code() != it.Key {
			t.Errorf("item %d: got value index %d, want that of %s", it.ID, v, it.Key)
		}
	}
	counts := map[string]int{}
	for _, it := range in.Items {
		counts[it.Key]++
	}
	for _, v := range values.All() {
		if got, want := counts[v.Code()], len(pvq40Key[v.Code()]); got != want {
			t.Errorf("%s: got %d items, want %d", v.Code(), got, want)
		}
	}
	wantLabels := []string{"Not like me at all", "Not like me", "A little like me", "Somewhat like me", "Like me", "Very much like me"}
	if !slices.Equal(in.Scale.Labels, wantLabels) {
		t.Errorf("labels: got %q, want %q", in.Scale.Labels, wantLabels)
	}
}

// The portraits describe a person without gender.
func TestPVQ40GenderNeutral(t *testing.T) {
	in, err := Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	gendered := regexp.MustCompile(`(?i)\b(he|she|him|his|her|hers|himself|herself|man|woman)\b`)
	for _, it := range in.Items {
		if w := gendered.FindString(it.Text); w != "" {
			t.Errorf("item %d: got %q, want gender-neutral wording", it.ID, w)
		}
		if !strings.HasPrefix(it.Text, "This person") && !strings.HasPrefix(it.Text, "They") && !strings.Contains(it.Text, "this person") {
			t.Errorf("item %d: got %q, want a third-person portrait", it.ID, it.Text)
		}
	}
}

// The BFI-2 key from the published scoring table, written out independently
// of the data file: domain, facet and reverse-keyed items.
var bfi2Facets = []struct {
	domain, facet string
	items         []int // negative = reverse-keyed
}{
	{"E", "Sociability", []int{1, -16, -31, 46}},
	{"E", "Assertiveness", []int{6, 21, -36, -51}},
	{"E", "Energy", []int{-11, -26, 41, 56}},
	{"A", "Compassion", []int{2, -17, 32, -47}},
	{"A", "Respectfulness", []int{7, -22, -37, 52}},
	{"A", "Trust", []int{-12, 27, -42, 57}},
	{"C", "Organization", []int{-3, 18, 33, -48}},
	{"C", "Productiveness", []int{-8, -23, 38, 53}},
	{"C", "Responsibility", []int{13, -28, 43, -58}},
	{"N", "Anxiety", []int{-4, 19, 34, -49}},
	{"N", "Depression", []int{-9, -24, 39, 54}},
	{"N", "Emotional Volatility", []int{14, -29, -44, 59}},
	{"O", "Intellectual Curiosity", []int{10, -25, 40, -55}},
	{"O", "Aesthetic Sensitivity", []int{-5, 20, 35, -50}},
	{"O", "Creative Imagination", []int{15, -30, -45, 60}},
}

// The domain lists of the published key, to cross-check the facet table.
var bfi2Domains = map[string][]int{
	"E": {1, 6, -11, -16, 21, -26, -31, -36, 41, 46, -51, 56},
	"A": {2, 7, -12, -17, -22, 27, 32, -37, -42, -47, 52, 57},
	"C": {-3, -8, 13, 18, -23, -28, 33, 38, 43, -48, 53, -58},
	"N": {-4, -9, 14, 19, -24, -29, 34, 39, -44, -49, 54, 59},
	"O": {-5, 10, 15, 20, -25, -30, 35, 40, -45, -50, -55, 60},
}

func TestBFI2Key(t *testing.T) {
	in, err := Builtin("bfi2")
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		domain, facet string
		reverse       bool
	}
	want := map[int]key{}
	for _, f := range bfi2Facets {
		for _, s := range f.items {
			id := max(s, -s)
			want[id] = key{f.domain, f.facet, s < 0}
		}
	}
	for domain, items := range bfi2Domains {
		for _, s := range items {
			id := max(s, -s)
			if k := want[id]; k.domain != domain || k.reverse != (s < 0) {
				t.Fatalf("key tables disagree on item %d", id)
			}
		}
	}
	if len(want) != 60 {
		t.Fatalf("key table covers %d items, want 60", len(want))
	}
	reversed := 0
	for _, it := range in.Items {
		got := key{it.Key, it.Facet, it.Reverse}
		if got != want[it.ID] {
			t.Errorf("item %d: got %+v, want %+v", it.ID, got, want[it.ID])
		}
		if !strings.HasPrefix(it.Text, "Is someone who") && !strings.HasPrefix(it.Text, "Is someone whose") {
			t.Errorf("item %d: got %q, want an \"Is someone who\" item", it.ID, it.Text)
		}
		if it.Reverse {
			reversed++
		}
	}
	if reversed != 30 {
		t.Errorf("got %d reverse-keyed items, want 30", reversed)
	}
	if got, want := strings.Join(in.Keys(), ","), "E,A,C,N,O"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	if got := len(in.Facets()); got != 15 {
		t.Errorf("got %d facets, want 15", got)
	}
}

// A hand-scored BFI-2 respondent: agrees strongly (5) with every
// Extraversion item, so the reverse-keyed half scores 1 and the domain mean
// is 3; Sociability has two reversed items, 1 and 5 twice, so also 3. A
// respondent answering 5 to the forward and 1 to the reverse items scores 5.
func TestBFI2ReverseScoring(t *testing.T) {
	in, err := Builtin("bfi2")
	if err != nil {
		t.Fatal(err)
	}
	all5 := make([]int, 60)
	consistent := make([]int, 60)
	for i, it := range in.Items {
		if it.Key != "E" {
			continue
		}
		all5[i] = 5
		consistent[i] = 5
		if it.Reverse {
			consistent[i] = 1
		}
	}
	e := slices.Index(in.Keys(), "E")
	soc := slices.Index(in.Facets(), "Sociability")
	tests := []struct {
		name      string
		answers   []int
		wantE     float64
		wantSocia float64
	}{
		{"agree with all", all5, 3, 3},
		{"consistent", consistent, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := in.Score(tt.answers)[e]; got != tt.wantE {
				t.Errorf("E: got %v, want %v", got, tt.wantE)
			}
			if got := in.ScoreFacets(tt.answers)[soc]; got != tt.wantSocia {
				t.Errorf("Sociability: got %v, want %v", got, tt.wantSocia)
			}
		})
	}
}

func TestOtherInstrumentKeys(t *testing.T) {
	tests := []struct {
		name string
		keys string
	}{
		{"prosocial", "prosocial"},
		{"donation", "environment,animals,intl_aid,religion,arts,community,education,health,sports"},
		{"charity", "charity"},
		{"charity_decision", "charity_decision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Builtin(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(in.Keys(), ","); got != tt.keys {
				t.Errorf("keys: got %s, want %s", got, tt.keys)
			}
		})
	}
	charity, _ := Builtin("charity")
	for x, want := range map[int]string{1: "Definitely keep", 4: "Can't decide", 7: "Definitely donate"} {
		if got := charity.Scale.Label(x); got != want {
			t.Errorf("charity label %d: got %q, want %q", x, got, want)
		}
	}
	if !strings.Contains(charity.Instruction, "15 points") {
		t.Errorf("charity instruction: got %q, want the 15-point scenario", charity.Instruction)
	}
	ebq, _ := Builtin("ebq")
	if got, want := ebq.Scale.Labels[0], "Never"; got != want {
		t.Errorf("ebq label 0: got %q, want %q", got, want)
	}
}

func TestEBQ(t *testing.T) {
	in, err := Builtin("ebq")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i, it := range in.Items {
		counts[it.Key]++
		v, ok := RefinedToBasic(it.Key)
		if !ok {
			t.Errorf("item %d: got key %q, want a refined value code", it.ID, it.Key)
		}
		if got := in.ValueKeys()[i]; got != int(v) {
			t.Errorf("item %d: got value index %d, want %d", it.ID, got, v)
		}
	}
	if len(counts) != 19 {
		t.Errorf("got %d refined values, want 19", len(counts))
	}
	for _, r := range refined {
		if n := counts[r.code]; n < 3 || n > 6 {
			t.Errorf("%s: got %d items, want 3 to 6", r.code, n)
		}
	}
}
