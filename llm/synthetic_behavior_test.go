package llm

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func newTestSynthetic(t *testing.T) *Synthetic {
	t.Helper()
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	return NewSynthetic(1, means)
}

func expected(dist []float64, min int) float64 {
	var e float64
	for k, p := range dist {
		e += float64(min+k) * p
	}
	return e
}

// TestSyntheticPVQUnchanged pins the value items' answer distributions:
// behaviour items must not change what the PVQ gives (and so every value
// result). The digest was taken from the respondents as they were before
// behaviour items loaded on values; distributions are rounded to 1e-9 so
// that the last bits of math functions on other machines do not matter.
func TestSyntheticPVQUnchanged(t *testing.T) {
	s := newTestSynthetic(t)
	in, _ := questionnaires.Builtin("pvq40")
	h := sha256.New()
	for i := range in.Items {
		for _, p := range allPersonas(agent.StyleDescription) {
			for _, x := range s.Distribution(in, i, p) {
				fmt.Fprintf(h, "%.9f,", math.Round(x*1e9)/1e9)
			}
		}
	}
	const want = "2155c542ee3b292fad5b8179aa0d7240043db97092b97311c51fece2edb5db3a"
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
		t.Errorf("PVQ-40 distributions changed: digest %s, want %s", got, want)
	}
}

func TestSyntheticBehaviorItems(t *testing.T) {
	s := newTestSynthetic(t)
	mean := func(name string, item int, v values.Value, style agent.Style) float64 {
		t.Helper()
		in, err := questionnaires.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Ask(context.Background(), &agent.Question{Persona: agent.Persona{Value: v, Style: style}, Instrument: in, Item: item})
		if err != nil {
			t.Fatal(err)
		}
		return expected(r.Dist, in.Scale.Min)
	}
	find := func(name, key string, reverse bool) int {
		t.Helper()
		in, _ := questionnaires.Builtin(name)
		for i, it := range in.Items {
			if it.Key == key && it.Reverse == reverse {
				return i
			}
		}
		t.Fatalf("%s has no item keyed %s (reverse %v)", name, key, reverse)
		return -1
	}
	d := agent.StyleDescription
	aFwd, aRev := find("bfi2", "A", false), find("bfi2", "A", true)
	checks := []struct {
		name string
		ok   bool
	}{
		{"BFI-2 A forward: BE above PO", mean("bfi2", aFwd, values.Benevolence, d) > mean("bfi2", aFwd, values.Power, d)+1},
		{"BFI-2 A reverse-keyed: BE below PO", mean("bfi2", aRev, values.Benevolence, d) < mean("bfi2", aRev, values.Power, d)-1},
		{"BFI-2 N weak", math.Abs(mean("bfi2", find("bfi2", "N", false), values.Security, d)-mean("bfi2", find("bfi2", "N", false), values.Stimulation, d)) < 0.6},
		{"prosocial: UN above AC", mean("prosocial", 0, values.Universalism, d) > mean("prosocial", 0, values.Achievement, d)+1},
		{"charity: BE above PO", mean("charity", 0, values.Benevolence, d) > mean("charity", 0, values.Power, d)+1.5},
		{"donation religion: TR above HE", mean("donation", find("donation", "religion", false), values.Tradition, d) > mean("donation", find("donation", "religion", false), values.Hedonism, d)+1},
		{"EBQ Face: PO above UN", mean("ebq", find("ebq", "FAC", false), values.Power, d) > mean("ebq", find("ebq", "FAC", false), values.Universalism, d)+1},
		{"EBQ Humility: TR above HE", mean("ebq", find("ebq", "HUM", false), values.Tradition, d) > mean("ebq", find("ebq", "HUM", false), values.Hedonism, d)+1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: does not hold", c.name)
		}
	}
	// The unprimed respondent answers around the scale's middle.
	if m := mean("ebq", 0, values.None, d); math.Abs(m-2) > 0.6 {
		t.Errorf("unprimed EBQ answer: got mean %.2f, want about 2 (the middle of 0..4)", m)
	}
}

func TestSyntheticPersonaStatements(t *testing.T) {
	s := newTestSynthetic(t)
	in, err := questionnaires.LoadPersona(questionnaires.PersonaOptions{Dir: "../questionnaires/testdata/persona-fixture", Statements: 10})
	if err != nil {
		t.Fatal(err)
	}
	agree := func(key string, v values.Value) float64 {
		var sum float64
		n := 0
		for i, it := range in.Items {
			if it.Key != key {
				continue
			}
			r, _ := s.Ask(context.Background(), &agent.Question{Persona: agent.Persona{Value: v, Style: agent.StyleDescription}, Instrument: in, Item: i})
			pYes := r.Dist[1]
			if it.Reverse {
				pYes = r.Dist[0] // the matching answer is No
			}
			sum += pYes
			n++
		}
		return sum / float64(n)
	}
	if lib, sec := agree("politically-liberal", values.Universalism), agree("politically-liberal", values.Security); lib < 0.75 || sec > 0.35 {
		t.Errorf("politically-liberal agreement: UN %.2f, SE %.2f; want UN above 0.75 and SE below 0.35", lib, sec)
	}
	if po, be := agree("desire-for-acquiring-power", values.Power), agree("desire-for-acquiring-power", values.Benevolence); po < 0.75 || be > 0.35 {
		t.Errorf("desire-for-acquiring-power agreement: PO %.2f, BE %.2f", po, be)
	}
}

func TestSyntheticTestPriming(t *testing.T) {
	s := newTestSynthetic(t)
	in, _ := questionnaires.Builtin("charity")
	ask := func(v values.Value, style agent.Style) float64 {
		r, err := s.Ask(context.Background(), &agent.Question{Persona: agent.Persona{Value: v, Style: style}, Instrument: in, Context: "a filled-in test"})
		if err != nil {
			t.Fatal(err)
		}
		return expected(r.Dist, in.Scale.Min)
	}
	base := ask(values.None, agent.StyleDescription)
	primed := ask(values.Benevolence, agent.StyleDescription) - base
	tested := ask(values.Benevolence, agent.StyleTest) - base
	if !(tested > 0 && tested < primed) {
		t.Errorf("pull of a BE persona on the charity choice: primed %.2f, test-primed %.2f; want the test's smaller and of the same sign", primed, tested)
	}
	if got := ask(values.None, agent.StyleTest); got != base {
		t.Errorf("an unprimed agent under test priming: got %.3f, want the unprimed %.3f", got, base)
	}
}
