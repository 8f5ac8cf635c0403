package analysis

import (
	"math"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func TestAgreeWithPersonas(t *testing.T) {
	in := &questionnaires.Instrument{
		Name: questionnaires.PersonaName, Kind: questionnaires.KindBehaviour, Instruction: "Answer as yourself.",
		Scale: questionnaires.Scale{Min: 0, Max: 1, Labels: []string{"No", "Yes"}},
		Items: []questionnaires.Item{
			{ID: 1, Text: "q1", Key: "politically-liberal"},
			{ID: 2, Text: "q2", Key: "politically-liberal", Reverse: true},
			{ID: 3, Text: "q3", Key: "believes-in-gun-rights"},
			{ID: 4, Text: "q4", Key: "believes-in-gun-rights", Reverse: true},
		},
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	// Agents: 0 UN, 1 UN, 2 SE, 3 none, 4 HE.
	personas := []values.Value{values.Universalism, values.Universalism, values.Security, values.None, values.Hedonism}
	// Answers per agent, items 1..4, as codes (1 = No, 2 = Yes, 0 = invalid).
	answers := [][]uint8{
		{2, 1, 1, 2}, // liberal 2/2, guns 0/2
		{2, 2, 0, 2}, // liberal 1/2, guns 0/1 (item 3 invalid)
		{1, 2, 2, 1}, // liberal 0/2, guns 2/2
		{2, 2, 2, 2}, // yes to all: 1/2 each
		{1, 1, 1, 1}, // no to all: 1/2 each
	}
	plan := Plan{Model: "m", Instrument: in, Items: []int{0, 1, 2, 3}}
	col := NewCollector(len(personas), []Plan{plan})
	for item := range 4 {
		codes := make([]uint8, len(personas))
		for a := range personas {
			codes[a] = answers[a][item]
		}
		if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: item, Codes: codes}); err != nil {
			t.Fatal(err)
		}
	}
	pa := AgreeWithPersonas(col.Sheets([]Plan{plan})[0], personas)
	lib, gun := 0, 1
	check := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("UN liberal", pa.Value[lib][values.Universalism], 3.0/4)
	check("UN guns", pa.Value[gun][values.Universalism], 0.0/3)
	check("SE liberal", pa.Value[lib][values.Security], 0)
	check("SE guns", pa.Value[gun][values.Security], 1)
	check("none liberal", pa.Value[lib][values.N], 0.5)
	check("PO (no agents)", pa.Value[lib][values.Power], math.NaN())
	if pa.ValueAnswers[gun][values.Universalism] != 3 {
		t.Errorf("UN guns answers: got %d, want 3", pa.ValueAnswers[gun][values.Universalism])
	}
	// Higher order: Self-Transcendence = UN only here; Conservation = SE;
	// Openness to Change and Self-Enhancement both hold the HE agent.
	check("STR liberal", pa.Higher[lib][values.SelfTranscendence], 3.0/4)
	check("CON guns", pa.Higher[gun][values.Conservation], 1)
	check("OC liberal", pa.Higher[lib][values.OpennessToChange], 0.5)
	check("SEN liberal", pa.Higher[lib][values.SelfEnhancement], 0.5)

	names, rows := pa.Politics()
	if len(names) != 2 || names[0] != "politically-liberal" || rows[1][values.Security] != 1 {
		t.Errorf("politics panel: got %v %v", names, rows)
	}
	if got := len(pa.Rows()); got != 2*(values.N+1+values.NGroups) {
		t.Errorf("got %d result rows, want %d", got, 2*(values.N+1+values.NGroups))
	}
}

// TestHigherOrderIndependentOfStrategies: the higher-order agreement must
// not move when another strategy joins the run. Every agent of a value
// prompt answers alike here, so each prompt's own agreement is fixed; a
// lopsided second strategy adds agents of some prompts only, which moved
// the figures when answers were pooled over agents.
func TestHigherOrderIndependentOfStrategies(t *testing.T) {
	in := &questionnaires.Instrument{
		Name: questionnaires.PersonaName, Kind: questionnaires.KindBehaviour, Instruction: "Answer as yourself.",
		Scale: questionnaires.Scale{Min: 0, Max: 1, Labels: []string{"No", "Yes"}},
		Items: []questionnaires.Item{{ID: 1, Text: "q1", Key: "politically-liberal"}},
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	yes := map[values.Value]bool{values.SelfDirection: true, values.Power: true, values.Security: true, values.Benevolence: true}
	higher := func(members []population.Member) []float64 {
		t.Helper()
		pool := population.NewPool(members, 7)
		plan := Plan{Model: "m", Instrument: in, Items: []int{0}}
		col := NewCollector(len(pool.Persona), []Plan{plan})
		codes := make([]uint8, len(pool.Persona))
		for a, v := range pool.Persona {
			codes[a] = 1
			if yes[v] {
				codes[a] = 2
			}
		}
		if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: 0, Codes: codes}); err != nil {
			t.Fatal(err)
		}
		return AgreeWithPersonas(col.Sheets([]Plan{plan})[0], pool.Persona).Higher[0]
	}
	var even, lopsided population.Member
	even.Name, lopsided.Name = "uniform", "lopsided"
	for i := range values.N {
		even.Counts[i] = 2
	}
	lopsided.Counts[values.SelfDirection], lopsided.Counts[values.Power], lopsided.Counts[values.Conformity] = 8, 8, 8
	alone := higher([]population.Member{even})
	shared := higher([]population.Member{even, lopsided})
	// Each group's mean of its prompts' agreements (0 or 1 each).
	want := map[values.Group]float64{
		values.OpennessToChange:  1.0 / 3, // SD yes; ST, HE no
		values.SelfEnhancement:   1.0 / 3, // PO yes; HE, AC no
		values.Conservation:      1.0 / 3, // SE yes; CO, TR no
		values.SelfTranscendence: 1.0 / 2, // BE yes; UN no
	}
	for gi, g := range values.Groups() {
		if math.Abs(alone[gi]-want[g]) > 1e-12 {
			t.Errorf("%s with one strategy: got %v, want %v", g.Code(), alone[gi], want[g])
		}
		if math.Abs(shared[gi]-alone[gi]) > 1e-12 {
			t.Errorf("%s: got %v with a second strategy in the run, %v without; want the same", g.Code(), shared[gi], alone[gi])
		}
	}
}
