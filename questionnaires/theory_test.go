package questionnaires

import (
	"math"
	"slices"
	"testing"

	"github.com/society-sim/society/values"
)

func TestTheoryTemplates(t *testing.T) {
	load := func(name, key string) [values.N]float64 {
		t.Helper()
		in, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		tpl, ok := TheoryTemplate(in, key)
		if !ok {
			t.Fatalf("%s/%s: no template", name, key)
		}
		return tpl.Loadings()
	}
	argmax := func(l [values.N]float64) values.Value {
		best := 0
		for i, x := range l {
			if x > l[best] {
				best = i
			}
		}
		return values.Value(best)
	}
	pos := func(l [values.N]float64, codes ...string) bool {
		for _, c := range codes {
			v, _ := values.Parse(c)
			if l[v] <= 0 {
				return false
			}
		}
		return true
	}
	neg := func(l [values.N]float64, codes ...string) bool {
		for _, c := range codes {
			v, _ := values.Parse(c)
			if l[v] >= 0 {
				return false
			}
		}
		return true
	}
	nLoad := load("bfi2", "N")
	checks := []struct {
		name string
		ok   bool
	}{
		{"A with BE and TR", pos(load("bfi2", "A"), "BE", "TR") && neg(load("bfi2", "A"), "PO", "HE", "ST")},
		{"O with SD and UN", pos(load("bfi2", "O"), "SD", "UN") && neg(load("bfi2", "O"), "SE", "CO", "TR")},
		{"E with AC and ST", pos(load("bfi2", "E"), "AC", "ST") && argmax(load("bfi2", "E")) == values.Hedonism},
		{"C with AC and CO", pos(load("bfi2", "C"), "AC", "CO")},
		{"N weak", slices.Max(nLoad[:]) <= 0.25},
		{"prosocial +BE/UN −PO/AC", pos(load("prosocial", "prosocial"), "BE", "UN") && neg(load("prosocial", "prosocial"), "PO", "AC")},
		{"charity rises with UN, BE, falls with PO, AC, HE", pos(load("charity", "charity"), "UN", "BE") && neg(load("charity", "charity"), "PO", "AC", "HE")},
		{"religion → TR", argmax(load("donation", "religion")) == values.Tradition},
		{"environment → UN", argmax(load("donation", "environment")) == values.Universalism},
		{"community → BE", argmax(load("donation", "community")) == values.Benevolence},
		{"sports → ST/HE/AC", pos(load("donation", "sports"), "ST", "HE", "AC")},
		{"EBQ Face → PO", argmax(load("ebq", "FAC")) == values.Power},
		{"EBQ Humility → TR", argmax(load("ebq", "HUM")) == values.Tradition},
		{"EBQ SDT → SD", argmax(load("ebq", "SDT")) == values.SelfDirection},
		{"EBQ falls around the circle", load("ebq", "UNN")[values.Universalism] == 1 && load("ebq", "UNN")[values.Power] < -0.9},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("template %s: does not hold", c.name)
		}
	}
	pvq, _ := Builtin("pvq40")
	if _, ok := TheoryTemplate(pvq, "SD"); ok {
		t.Error("a value instrument got a behaviour template")
	}
}

// TestTemplateDirections holds every theory template to a direction on the
// circle that the anchors set, not rounding: a mean resultant length of at
// least minResultant, so that anchors span at most three steps (108°,
// resultant cos 54° ≈ 0.59). Two opposite anchors (resultant 0) put the
// centre wherever atan2 of rounding noise lands.
func TestTemplateDirections(t *testing.T) {
	const minResultant = 0.5
	for in, m := range theoryTemplates {
		for key, tpl := range m {
			if r := resultant(tpl); !(r >= minResultant) {
				t.Errorf("template %s/%s anchored on %v: resultant %.3g, want ≥ %v (direction undefined or nearly so)", in, key, tpl.Anchors, r, minResultant)
			}
		}
	}
}

// resultant is the mean resultant length of a template's anchors' unit
// vectors on the circle (Mardia & Jupp 2000, Directional Statistics,
// §2.3.1): 1 for a single anchor, cos(18°·k) for two anchors k steps
// apart, 0 for opposite anchors, whose centre is then set by rounding
// alone.
func resultant(t Template) float64 {
	if len(t.Anchors) == 0 {
		return 0
	}
	var x, y float64
	for _, v := range t.Anchors {
		x += math.Cos(v.Angle())
		y += math.Sin(v.Angle())
	}
	return math.Hypot(x, y) / float64(len(t.Anchors))
}
