package scenarios

import (
	"testing"

	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

func TestMembers(t *testing.T) {
	s, err := Builtin("strategies")
	if err != nil {
		t.Fatal(err)
	}
	members, err := s.Population.Members(s.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 4 {
		t.Fatalf("members: got %d, want 4", len(members))
	}
	sh, _ := population.HumanShares("gss2012")
	for i, m := range members {
		t.Run(m.Name, func(t *testing.T) {
			w, err := population.StrategyWeights(s.Population.Strategies[i], sh, 0.53)
			if err != nil {
				t.Fatal(err)
			}
			if want := population.Counts(w, 2000); m.Counts != want {
				t.Errorf("counts: got %v, want %v", m.Counts, want)
			}
		})
	}

	c, err := Load("testdata/good/compare.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Population.Members(c.Seed, nil); err == nil {
		t.Error("model-specific without weights: got nil error, want one")
	}
	var ms population.Weights
	ms[values.Benevolence] = 1
	a, err := c.Population.Members(c.Seed, &ms)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Population.Members(c.Seed, &ms)
	for i := range a {
		total := 0
		for _, n := range a[i].Counts {
			total += n
		}
		if total != c.Population.Size {
			t.Errorf("%s: got %d agents, want %d", a[i].Name, total, c.Population.Size)
		}
		if a[i].Counts != b[i].Counts {
			t.Errorf("%s: same seed gave %v and %v, want equal", a[i].Name, a[i].Counts, b[i].Counts)
		}
	}
	if got := a[4].Counts[values.Benevolence]; got != c.Population.Size {
		t.Errorf("model-specific: got %d benevolence agents, want all %d", got, c.Population.Size)
	}

	u, err := Load("testdata/good/custom.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := u.Population.Members(u.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SD 0.1, BE 0.2, UN 0.2, none 0.5 of 500 agents.
	want := [values.N + 1]int{0: 50, 8: 100, 9: 100, 10: 250}
	if m[0].Counts != want {
		t.Errorf("custom: got %v, want %v", m[0].Counts, want)
	}
}
