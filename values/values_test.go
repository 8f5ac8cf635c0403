package values_test

import (
	"math"
	"testing"

	"github.com/society-sim/society/values"
)

func TestCircularOrder(t *testing.T) {
	want := []string{"SD", "ST", "HE", "AC", "PO", "SE", "CO", "TR", "BE", "UN"}
	got := values.Codes()
	if len(got) != len(want) {
		t.Fatalf("got %d codes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("position %d: got %s, want %s", i, got[i], want[i])
		}
		if a := values.Value(i).Angle(); math.Abs(a-float64(i)*math.Pi/5) > 1e-12 {
			t.Errorf("%s: got angle %v, want %v", want[i], a, float64(i)*math.Pi/5)
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want values.Value
	}{
		{"SD", values.SelfDirection}, {"sd", values.SelfDirection}, {"Self-Direction", values.SelfDirection},
		{"self direction", values.SelfDirection}, {"UN", values.Universalism}, {"power", values.Power},
		{"none", values.None}, {" TR ", values.Tradition},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := values.Parse(c.in)
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
	for _, bad := range []string{"", "XX", "SDT", "powerful"} {
		if _, err := values.Parse(bad); err == nil {
			t.Errorf("Parse(%q): got nil error", bad)
		}
	}
}

func TestHigherOrderGroups(t *testing.T) {
	want := map[values.Value][]values.Group{
		values.SelfDirection: {values.OpennessToChange},
		values.Stimulation:   {values.OpennessToChange},
		values.Hedonism:      {values.OpennessToChange, values.SelfEnhancement},
		values.Achievement:   {values.SelfEnhancement},
		values.Power:         {values.SelfEnhancement},
		values.Security:      {values.Conservation},
		values.Conformity:    {values.Conservation},
		values.Tradition:     {values.Conservation},
		values.Benevolence:   {values.SelfTranscendence},
		values.Universalism:  {values.SelfTranscendence},
	}
	for v, groups := range want {
		got := v.Groups()
		if len(got) != len(groups) {
			t.Errorf("%s: got groups %v, want %v", v, got, groups)
			continue
		}
		for i := range groups {
			if got[i] != groups[i] {
				t.Errorf("%s: got groups %v, want %v", v, got, groups)
			}
		}
	}
	if values.None.Valid() || values.None.Code() != "none" || values.None.Groups() != nil {
		t.Error("None must be invalid, coded none, and in no group")
	}
	for _, v := range values.All() {
		if v.Goal() == "" || v.Description() == "" || v.Name() == "" {
			t.Errorf("%s lacks a name, goal or description", v)
		}
	}
}
