package llmbench

import (
	"testing"

	"github.com/society-sim/society/population"
)

func TestModelCalls(t *testing.T) {
	tests := []struct {
		name          string
		counts        []int
		items, n      int
		pa, ns, distr int64
	}{
		{"one persona, one request of n", []int{3}, 10, 5, 30, 10, 10},
		{"a persona needs two requests", []int{6, 0, 5}, 2, 5, 22, 6, 4},
		{"n of one is per answer", []int{4, 7}, 3, 1, 33, 33, 6},
		{"nobody", []int{0, 0}, 100, 50, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pa, ns, di := ModelCalls(tc.counts, tc.items, tc.n)
			if pa != tc.pa || ns != tc.ns || di != tc.distr {
				t.Errorf("got %d per answer, %d n-sampling, %d distribution; want %d, %d, %d", pa, ns, di, tc.pa, tc.ns, tc.distr)
			}
		})
	}
}

func TestStudyDesign(t *testing.T) {
	d, err := StudyDesign(1000, 50)
	if err != nil {
		t.Fatal(err)
	}
	// PVQ-40, BFI-2, prosocialness, donation causes, the charity game's two
	// questions, the everyday behaviour questionnaire, persona statements.
	if want := 40 + 60 + 16 + 9 + 2 + 85 + 1000*135; d.Items != want {
		t.Errorf("items: got %d, want %d", d.Items, want)
	}
	rows, err := DesignCalls(d, []int{10_000, 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want the study and two populations", len(rows))
	}
	items := int64(d.Items)
	study := rows[0]
	if study.PerAnswer != 11*50*items || study.NSampling != 11*items || study.Distribution != 11*items {
		t.Errorf("study: got %+v, want %d per answer, %d n-sampling and distribution", study, 11*50*items, 11*items)
	}
	for _, r := range rows[1:] {
		if r.PerAnswer != r.Agents*items {
			t.Errorf("%s: per answer: got %d, want agents × items = %d", r.Label, r.PerAnswer, r.Agents*items)
		}
		if lo, hi := r.Agents*items/50, r.Agents*items/50+11*items; r.NSampling < lo || r.NSampling > hi {
			t.Errorf("%s: n-sampling: got %d, want between %d and %d", r.Label, r.NSampling, lo, hi)
		}
		if r.Distribution != 11*items {
			t.Errorf("%s: distribution: got %d, want %d", r.Label, r.Distribution, 11*items)
		}
	}
}

// TestCallCountsMatchTheModelServer checks the call arithmetic against the
// requests a real client makes of the model server.
func TestCallCountsMatchTheModelServer(t *testing.T) {
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	checks, err := CheckCalls(t.Context(), 22, 3, []string{"donation", "charity"}, means)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 3 {
		t.Fatalf("got %d checks, want one per mode", len(checks))
	}
	for _, c := range checks {
		if !c.Match || c.Predicted == 0 {
			t.Errorf("%s: predicted %d, client %d, server %d: want all equal and non-zero", c.Mode, c.Predicted, c.ClientCalls, c.ServerRequests)
		}
	}
	if checks[0].Predicted <= checks[1].Predicted || checks[1].Predicted <= checks[2].Predicted {
		t.Errorf("got %d, %d, %d calls, want per-answer > n-sampling > distribution",
			checks[0].Predicted, checks[1].Predicted, checks[2].Predicted)
	}
}
