package sim_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/society-sim/society/results"
	"github.com/society-sim/society/sim"
)

// A run whose agents asked their models elsewhere rebuilds from its plan
// and answers the prompts.csv rows a run in one process records as its
// agents ask: the questionnaires', the game rounds' with the memories and
// probable choices in their contexts, in distribution and sample mode
// and with several models, a test-primed model's with the tests its
// model filled in (FilledTests, as agent hosts report them); without
// them, as its filled-in test is not among the answers, it is left out.
func TestRebuildPromptsMatchesRecorded(t *testing.T) {
	models := `
[[models]]
name = "a"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
mode = "sample"
samples = 5
style = "name"

[[models]]
name = "b"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
endpoint = "completions"

[[models]]
name = "primed"
backend = "synthetic"
priming = "test"
style = "name"
`
	for _, tc := range []struct {
		name, src string
		primed    bool
	}{
		{"game", gameScenario, false},
		{"models", strings.Replace(gameScenario, "[population]", models+"\n[population]", 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &sim.Engine{Backends: func() sim.Backends { return fakeBackends{&flat{contexts: map[string][]string{}}} }, Open: sim.OpenLocal}
			dir := t.TempDir() + "/out"
			res, err := e.Run(t.Context(), parse(t, tc.src), dir)
			if err != nil {
				t.Fatal(err)
			}
			recorded, err := results.ReadPrompts(dir)
			if err != nil {
				t.Fatal(err)
			}
			tests := sim.FilledTests(res.Plan)
			if tc.primed != (len(tests["primed"]) > 0) {
				t.Fatalf("got filled-in tests %v", tests)
			}
			rebuilt, err := sim.RebuildPrompts(res.Plan, res.Collector, tests)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rebuilt, recorded) {
				for i := range min(len(rebuilt), len(recorded)) {
					if rebuilt[i] != recorded[i] {
						t.Fatalf("row %d: got %+v\nwant %+v", i, rebuilt[i], recorded[i])
					}
				}
				t.Fatalf("got %d rows, want %d", len(rebuilt), len(recorded))
			}
			if rebuilt, err = sim.RebuildPrompts(res.Plan, res.Collector, nil); err != nil {
				t.Fatal(err)
			}
			var want = recorded[:0:0]
			games := 0
			for _, r := range recorded {
				if r.Model != "primed" {
					want = append(want, r)
				}
				if r.Round > 0 {
					games++
				}
			}
			if games == 0 || tc.primed && len(want) == len(recorded) {
				t.Fatalf("the run recorded %d game-round rows and %d test-primed ones: the test shows nothing", games, len(recorded)-len(want))
			}
			if !reflect.DeepEqual(rebuilt, want) {
				for i := range min(len(rebuilt), len(want)) {
					if rebuilt[i] != want[i] {
						t.Fatalf("row %d: got %+v\nwant %+v", i, rebuilt[i], want[i])
					}
				}
				t.Fatalf("got %d rows, want %d", len(rebuilt), len(want))
			}
		})
	}
}
