package questionnaires

import (
	"testing"

	"github.com/society-sim/society/values"
)

func TestRefinedToBasic(t *testing.T) {
	tests := []struct {
		code string
		want values.Value
		ok   bool
	}{
		{"SDT", values.SelfDirection, true},
		{"SDA", values.SelfDirection, true},
		{"ST", values.Stimulation, true},
		{"HE", values.Hedonism, true},
		{"AC", values.Achievement, true},
		{"POD", values.Power, true},
		{"POR", values.Power, true},
		{"FAC", values.Power, true},
		{"SEP", values.Security, true},
		{"SES", values.Security, true},
		{"TR", values.Tradition, true},
		{"COR", values.Conformity, true},
		{"COI", values.Conformity, true},
		{"HUM", values.Tradition, true},
		{"BEC", values.Benevolence, true},
		{"BED", values.Benevolence, true},
		{"UNN", values.Universalism, true},
		{"UNC", values.Universalism, true},
		{"UNT", values.Universalism, true},
		{"SD", values.None, false},
		{"sdt", values.None, false},
		{"", values.None, false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got, ok := RefinedToBasic(tt.code)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := len(refined); got != 19 {
		t.Errorf("got %d refined codes, want 19", got)
	}
	// Every basic value is refined by at least one refined value.
	seen := map[values.Value]bool{}
	for _, r := range refined {
		v, _ := RefinedToBasic(r.code)
		seen[v] = true
		if r.name == "" {
			t.Errorf("%s: got no name, want one", r.code)
		}
	}
	if len(seen) != values.N {
		t.Errorf("got %d basic values covered, want %d", len(seen), values.N)
	}
}
