package population

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/society-sim/society/values"
)

const tol = 1e-9

func near(a, b float64) bool { return math.Abs(a-b) < tol }

func checkWeights(t *testing.T, got, want Weights) {
	t.Helper()
	for i := range got {
		if !near(got[i], want[i]) {
			t.Errorf("weight of %s: got %.9f, want %.9f", Persona(i), got[i], want[i])
		}
	}
}

func TestHumanShares(t *testing.T) {
	for _, tc := range []struct {
		source     string
		n          int
		noDominant float64
		sd, un     float64
	}{
		{"pvq40_smacof", 151, 0.172, 0.258, 0.146},
		{"gss2012", 1255, 0.503, 0.098, 0.109},
		{"ess_sweden", 1441, 0.414, 0.113, 0.142},
	} {
		t.Run(tc.source, func(t *testing.T) {
			sh, err := HumanShares(tc.source)
			if err != nil {
				t.Fatal(err)
			}
			if sh.Source != tc.source || sh.N != tc.n {
				t.Errorf("got source %q n %d, want %q n %d", sh.Source, sh.N, tc.source, tc.n)
			}
			if !near(sh.NoDominant, tc.noDominant) {
				t.Errorf("no dominant: got %v, want %v", sh.NoDominant, tc.noDominant)
			}
			if !near(sh.Dominant[values.SelfDirection], tc.sd) || !near(sh.Dominant[values.Universalism], tc.un) {
				t.Errorf("SD, UN: got %v, %v, want %v, %v", sh.Dominant[values.SelfDirection], sh.Dominant[values.Universalism], tc.sd, tc.un)
			}
			total := sh.NoDominant
			for _, p := range sh.Dominant {
				total += p
			}
			if math.Abs(total-1) > 0.002 {
				t.Errorf("shares sum: got %v, want 1 up to the table's rounding", total)
			}
		})
	}
	if got, want := strings.Join(ShareSources(), ","), "pvq40_smacof,gss2012,ess_sweden"; got != want {
		t.Errorf("sources: got %s, want %s", got, want)
	}
	if _, err := HumanShares("nowhere"); err == nil {
		t.Error("unknown source: got nil error, want one")
	}
	if _, err := HumanShares(DefaultShares); err != nil {
		t.Errorf("default source: got %v, want nil", err)
	}
}

func TestHumanMeans(t *testing.T) {
	m, err := HumanMeans("gss2012")
	if err != nil {
		t.Fatal(err)
	}
	// value_means_6pt.csv, row gss2012: SD 4.77, PO 3.09, BE 5.07.
	for _, tc := range []struct {
		v    values.Value
		want float64
	}{{values.SelfDirection, 4.77}, {values.Power, 3.09}, {values.Benevolence, 5.07}} {
		if !near(m[tc.v], tc.want) {
			t.Errorf("%s: got %v, want %v", tc.v, m[tc.v], tc.want)
		}
	}
	if _, err := HumanMeans("nowhere"); err == nil {
		t.Error("unknown source: got nil error, want one")
	}
}

// The GSS 2012 row of dominant_value_unique_max.csv, in percent:
// SD 9.8, ST 2, HE 1.5, AC 1.5, PO 0.4, SE 5.5, CO 2.3, TR 3.3, BE 12.5,
// UN 10.9, no dominant 50.3. The ten dominant shares sum to 49.7.
var gssPercent = [values.N]float64{9.8, 2, 1.5, 1.5, 0.4, 5.5, 2.3, 3.3, 12.5, 10.9}

func TestStrategyWeights(t *testing.T) {
	sh, err := HumanShares("gss2012")
	if err != nil {
		t.Fatal(err)
	}
	var uniform, hnorm, heven, hnp Weights
	for i, p := range gssPercent {
		uniform[i] = 0.1
		// H-Norm: p / 49.7, e.g. SD 9.8/49.7 = 0.197183.
		hnorm[i] = p / 49.7
		// H-NP with 53% unprimed: 0.47 * p/49.7, e.g. SD 0.092676.
		hnp[i] = 0.47 * p / 49.7
		// H-Even: H-NP's share plus 0.53/10, e.g. SD 0.092676+0.053 = 0.145676.
		heven[i] = 0.47*p/49.7 + 0.053
	}
	hnp[values.N] = 0.53
	// Spot checks of the arithmetic above, rounded to six places.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"h-norm SD", hnorm[0], 0.197183}, {"h-norm BE", hnorm[8], 0.251509},
		{"h-np SD", hnp[0], 0.092676}, {"h-np PO", hnp[4], 0.003783},
		{"h-even SD", heven[0], 0.145676}, {"h-even UN", heven[9], 0.156078},
	} {
		if math.Abs(c.got-c.want) > 5e-7 {
			t.Fatalf("test arithmetic %s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, tc := range []struct {
		s    Strategy
		want Weights
	}{
		{Uniform, uniform}, {HNorm, hnorm}, {HEven, heven}, {HNP, hnp},
	} {
		t.Run(string(tc.s), func(t *testing.T) {
			w, err := StrategyWeights(tc.s, sh, DefaultNoDominant)
			if err != nil {
				t.Fatal(err)
			}
			checkWeights(t, w, tc.want)
			var sum float64
			for _, x := range w {
				sum += x
			}
			if !near(sum, 1) {
				t.Errorf("sum: got %v, want 1", sum)
			}
		})
	}
	for _, s := range []Strategy{Custom, ModelSpecific, "h-whatever"} {
		t.Run("error "+string(s), func(t *testing.T) {
			if _, err := StrategyWeights(s, sh, DefaultNoDominant); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
	if _, err := StrategyWeights(HNP, sh, 1.5); err == nil {
		t.Error("no-dominant 1.5: got nil error, want one")
	}
	if _, err := StrategyWeights(HNorm, Shares{Source: "empty"}, 0.5); err == nil {
		t.Error("no dominant shares: got nil error, want one")
	}
}

func TestWeightsOf(t *testing.T) {
	var w Weights
	w[values.Power] = 0.25
	w[values.N] = 0.75
	if got := w.Of(values.Power); got != 0.25 {
		t.Errorf("power: got %v, want 0.25", got)
	}
	if got := w.Of(values.None); got != 0.75 {
		t.Errorf("none: got %v, want 0.75", got)
	}
}

func TestParseStrategy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Strategy
		ok   bool
	}{
		{"uniform", Uniform, true}, {"H-NP", HNP, true}, {" h-even ", HEven, true},
		{"h-norm", HNorm, true}, {"model-specific", ModelSpecific, true}, {"custom", Custom, true},
		{"hnp", "", false}, {"", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseStrategy(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %q, %v, want %q, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestCustomWeights(t *testing.T) {
	w, err := CustomWeights(map[string]float64{"SD": 1, "power": 1, "none": 2})
	if err != nil {
		t.Fatal(err)
	}
	var want Weights
	want[values.SelfDirection], want[values.Power], want[values.N] = 0.25, 0.25, 0.5
	checkWeights(t, w, want)

	for _, tc := range []struct {
		name string
		in   map[string]float64
		want []string // every message expected, in order
	}{
		{"negative", map[string]float64{"SD": -0.1, "BE": 1}, []string{`weight "SD": must not be negative, got -0.1`}},
		{"zero sum", map[string]float64{"SD": 0, "none": 0}, []string{"weights: must sum to more than 0, got 0"}},
		{"empty", map[string]float64{}, []string{"weights: must sum to more than 0, got 0"}},
		{"unknown key", map[string]float64{"XX": 1}, []string{`weight "XX": unknown persona (want a value code or name, or none)`}},
		{"nan", map[string]float64{"UN": math.NaN()}, []string{`weight "UN": must be a finite number, got NaN`}},
		{"duplicate", map[string]float64{"SD": 1, "self-direction": 1}, []string{`weight "self-direction": same persona as "SD"`}},
		{"several", map[string]float64{"AC": -1, "QQ": 1, "PO": math.Inf(1)}, []string{
			`weight "AC": must not be negative, got -1`,
			`weight "PO": must be a finite number, got +Inf`,
			`weight "QQ": unknown persona (want a value code or name, or none)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CustomWeights(tc.in)
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			var we *WeightError
			if !errors.As(err, &we) {
				t.Errorf("got %T, want a *WeightError inside", err)
			}
		})
	}
}

func TestModelSpecificWeights(t *testing.T) {
	var sim [values.N]float64
	sim[values.SelfDirection] = 0.8
	sim[values.Power] = -0.3 // counts as 0
	sim[values.Benevolence] = 0.2
	w, err := ModelSpecificWeights(sim)
	if err != nil {
		t.Fatal(err)
	}
	var want Weights
	want[values.SelfDirection], want[values.Benevolence] = 0.8, 0.2
	checkWeights(t, w, want)
	var none [values.N]float64
	none[values.Power] = -1
	if _, err := ModelSpecificWeights(none); err == nil {
		t.Error("no positive similarity: got nil error, want one")
	}
}

func TestCounts(t *testing.T) {
	sh, err := HumanShares("gss2012")
	if err != nil {
		t.Fatal(err)
	}
	hnp, err := StrategyWeights(HNP, sh, DefaultNoDominant)
	if err != nil {
		t.Fatal(err)
	}
	uniform, _ := StrategyWeights(Uniform, sh, 0)
	var single Weights
	single[values.Tradition] = 3
	for _, tc := range []struct {
		name string
		w    Weights
		size int
		want [values.N + 1]int
	}{
		// Quotas 92.676 18.913 14.185 14.185 3.783 52.012 21.751 31.207
		// 118.209 103.078 530: the floors sum to 996 and the four largest
		// remainders (ST .913, PO .783, CO .751, SD .676) take one more each.
		{"h-np 1000", hnp, 1000, [values.N + 1]int{93, 19, 14, 14, 4, 52, 22, 31, 118, 103, 530}},
		// 100.5 each: five left over, ties go to the lower index.
		{"uniform 1005", uniform, 1005, [values.N + 1]int{101, 101, 101, 101, 101, 100, 100, 100, 100, 100, 0}},
		{"uniform 7", uniform, 7, [values.N + 1]int{1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}},
		{"unnormalised", single, 12, [values.N + 1]int{7: 12}},
		{"size 0", hnp, 0, [values.N + 1]int{}},
		{"zero weights", Weights{}, 10, [values.N + 1]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Counts(tc.w, tc.size); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	for _, size := range []int{1, 2, 3, 11, 999, 12345, 50_000_000} {
		for _, s := range []Strategy{Uniform, HNorm, HEven, HNP} {
			w, _ := StrategyWeights(s, sh, DefaultNoDominant)
			c := Counts(w, size)
			total := 0
			for i, n := range c {
				total += n
				if q := w[i] * float64(size); math.Abs(float64(n)-q) >= 1 {
					t.Errorf("%s size %d persona %s: got %d, want within 1 of %v", s, size, Persona(i), n, q)
				}
			}
			if total != size {
				t.Errorf("%s size %d: got total %d, want %d", s, size, total, size)
			}
		}
	}
}

func TestDraw(t *testing.T) {
	sh, _ := HumanShares("gss2012")
	w, err := StrategyWeights(HNP, sh, DefaultNoDominant)
	if err != nil {
		t.Fatal(err)
	}
	const size = 20000
	a := Draw(w, size, rand.New(rand.NewPCG(7, 1)))
	b := Draw(w, size, rand.New(rand.NewPCG(7, 1)))
	c := Draw(w, size, rand.New(rand.NewPCG(8, 1)))
	if a != b {
		t.Errorf("same seed: got %v and %v, want equal", a, b)
	}
	if a == c {
		t.Errorf("different seeds: got %v twice, want different draws", a)
	}
	total := 0
	for i, n := range a {
		total += n
		mean := w[i] * size
		sd := math.Sqrt(size * w[i] * (1 - w[i]))
		if math.Abs(float64(n)-mean) > 5*sd+1 {
			t.Errorf("persona %s: got %d, want about %.0f (sd %.1f)", Persona(i), n, mean, sd)
		}
		if w[i] == 0 && n != 0 {
			t.Errorf("persona %s has weight 0: got %d agents, want 0", Persona(i), n)
		}
	}
	if total != size {
		t.Errorf("total: got %d, want %d", total, size)
	}
	var only Weights
	only[values.N] = 1
	if got := Draw(only, 50, rand.New(rand.NewPCG(1, 1))); got[values.N] != 50 {
		t.Errorf("all unprimed: got %v, want 50 at none", got)
	}
}

func TestPool(t *testing.T) {
	sh, _ := HumanShares("gss2012")
	var members []Member
	for _, s := range []Strategy{Uniform, HNorm, HEven, HNP} {
		w, err := StrategyWeights(s, sh, DefaultNoDominant)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, Member{Name: string(s), Counts: Counts(w, 2000)})
	}
	p := NewPool(members, 42)

	wantSize := 0
	for i := range values.N + 1 {
		m := 0
		for _, mb := range members {
			m = max(m, mb.Counts[i])
		}
		if got := p.Count(Persona(i)); got != m {
			t.Errorf("count of %s: got %d, want %d", Persona(i), got, m)
		}
		wantSize += m
	}
	if p.Size() != wantSize || len(p.Rank) != wantSize {
		t.Errorf("size: got %d (ranks %d), want %d", p.Size(), len(p.Rank), wantSize)
	}
	for si, mb := range members {
		t.Run(mb.Name, func(t *testing.T) {
			var got [values.N + 1]int
			for id := range p.Size() {
				if p.In(si, id) {
					got[Index(p.Persona[id])]++
				}
			}
			if got != mb.Counts {
				t.Errorf("members: got %v, want %v", got, mb.Counts)
			}
			if p.StrategySize(si) != 2000 {
				t.Errorf("strategy size: got %d, want 2000", p.StrategySize(si))
			}
		})
	}
	// Ranks within a persona run 0, 1, 2, ... in id order.
	var next [values.N + 1]int32
	for id, v := range p.Persona {
		if p.Rank[id] != next[Index(v)] {
			t.Fatalf("agent %d: got rank %d, want %d", id, p.Rank[id], next[Index(v)])
		}
		next[Index(v)]++
	}

	q := NewPool(members, 42)
	r := NewPool(members, 43)
	same, differ := true, false
	for id := range p.Persona {
		same = same && p.Persona[id] == q.Persona[id] && p.Rank[id] == q.Rank[id]
		differ = differ || p.Persona[id] != r.Persona[id]
	}
	if !same {
		t.Error("same seed: got different pools, want equal")
	}
	if !differ {
		t.Error("different seeds: got identical order, want a different shuffle")
	}
	// The shuffle spreads personas over ids: the unprimed agents (the
	// largest group) must not all sit in one half.
	half := 0
	for id := range p.Size() / 2 {
		if p.Persona[id] == values.None {
			half++
		}
	}
	if n := p.Count(values.None); half < n/4 || half > 3*n/4 {
		t.Errorf("unprimed agents in the first half: got %d of %d, want about half", half, n)
	}
}
