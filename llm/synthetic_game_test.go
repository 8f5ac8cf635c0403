package llm

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func gameInstruments(t *testing.T) (probable, decision *questionnaires.Instrument) {
	t.Helper()
	p, err := questionnaires.Builtin("charity")
	if err != nil {
		t.Fatal(err)
	}
	d, err := questionnaires.Builtin("charity_decision")
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

func meanOf(d []float64, min int) float64 {
	m := 0.0
	for i, p := range d {
		m += p * float64(i+min)
	}
	return m
}

func askDist(t *testing.T, s *Synthetic, in *questionnaires.Instrument, v values.Value, r agent.Round) []float64 {
	t.Helper()
	reply, err := s.Ask(context.Background(), &agent.Question{Persona: agent.Persona{Value: v, Style: agent.StyleDescription},
		Instrument: in, Game: &r})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, p := range reply.Dist {
		sum += p
	}
	if len(reply.Dist) != in.Scale.Points() || math.Abs(sum-1) > 1e-9 {
		t.Fatalf("got distribution %v, want %d probabilities summing to 1", reply.Dist, in.Scale.Points())
	}
	return reply.Dist
}

func TestSyntheticGameFollowsValues(t *testing.T) {
	s := NewSynthetic(1, [values.N]float64{})
	probable, _ := gameInstruments(t)
	mean := func(v values.Value) float64 { return meanOf(askDist(t, s, probable, v, agent.Round{}), 1) }
	none := mean(values.None)
	for _, hi := range []values.Value{values.Universalism, values.Benevolence} {
		for _, lo := range []values.Value{values.Power, values.Achievement, values.Hedonism} {
			if mean(hi) <= mean(lo) {
				t.Errorf("got mean probable choice %.2f for %s and %.2f for %s, want %s higher", mean(hi), hi, mean(lo), lo, hi)
			}
		}
		if mean(hi) <= none {
			t.Errorf("got %.2f for %s and %.2f without a value, want %s higher", mean(hi), hi, none, hi)
		}
	}
	if math.Abs(none-4) > 0.05 {
		t.Errorf("without a value: got mean %.2f, want about 4 (can't decide)", none)
	}
}

func TestSyntheticGameConditionalCooperation(t *testing.T) {
	s := NewSynthetic(1, [values.N]float64{})
	probable, _ := gameInstruments(t)
	var afterC, afterK, satOut agent.Memory
	afterC = afterC.Push(agent.Kept, agent.Contributed)
	afterK = afterK.Push(agent.Kept, agent.Kept)
	satOut = satOut.Push(agent.NoChoice, agent.NoChoice)
	for _, v := range []values.Value{values.Power, values.None, values.Universalism} {
		c := meanOf(askDist(t, s, probable, v, agent.Round{Memory: afterC}), 1)
		k := meanOf(askDist(t, s, probable, v, agent.Round{Memory: afterK}), 1)
		o := meanOf(askDist(t, s, probable, v, agent.Round{Memory: satOut}), 1)
		first := meanOf(askDist(t, s, probable, v, agent.Round{}), 1)
		if !(c > o && o > k) {
			t.Errorf("%s: got means %.2f after a contribution, %.2f after sitting out, %.2f after a keep; want falling", v, c, o, k)
		}
		if math.Abs(o-first) > 1e-12 {
			t.Errorf("%s: sitting out moved the mean from %.3f to %.3f, want no change", v, first, o)
		}
	}
	// Older rounds weigh less than the last one.
	older := agent.Memory{}.Push(agent.Kept, agent.Contributed).Push(agent.Kept, agent.Kept)
	newer := agent.Memory{}.Push(agent.Kept, agent.Kept).Push(agent.Kept, agent.Contributed)
	if o, n := meanOf(askDist(t, s, probable, values.None, agent.Round{Memory: older}), 1),
		meanOf(askDist(t, s, probable, values.None, agent.Round{Memory: newer}), 1); n <= o {
		t.Errorf("got %.2f when the last partner contributed and %.2f when an earlier one did, want the first higher", n, o)
	}
	low := meanOf(askDist(t, s, probable, values.None, agent.Round{RateShown: true, Rate: 10}), 1)
	high := meanOf(askDist(t, s, probable, values.None, agent.Round{RateShown: true, Rate: 90}), 1)
	if high <= low {
		t.Errorf("got %.2f with 90%% contributing and %.2f with 10%%, want higher with more", high, low)
	}
}

func TestSyntheticGameDecisionFollowsProbableChoice(t *testing.T) {
	s := NewSynthetic(1, [values.N]float64{})
	probable, decision := gameInstruments(t)
	for p := 1; p <= 7; p++ {
		d := askDist(t, s, decision, values.Power, agent.Round{Probable: p})
		if want := float64(p-1) / 6; math.Abs(d[1]-want) > 1e-12 {
			t.Errorf("probable choice %d: got P(contribute) %.3f, want %.3f", p, d[1], want)
		}
	}
	// Without a stated probable choice: the rule averaged over the
	// probable-choice distribution.
	pd := askDist(t, s, probable, values.Benevolence, agent.Round{})
	d := askDist(t, s, decision, values.Benevolence, agent.Round{})
	if want := (meanOf(pd, 1) - 1) / 6; math.Abs(d[1]-want) > 1e-12 {
		t.Errorf("no probable choice: got P(contribute) %.3f, want %.3f", d[1], want)
	}
}

func TestSyntheticGameDeterministic(t *testing.T) {
	probable, _ := gameInstruments(t)
	m := agent.Memory{}.Push(agent.Contributed, agent.Kept)
	r := agent.Round{Memory: m, RateShown: true, Rate: 40}
	a := askDist(t, NewSynthetic(1, [values.N]float64{}), probable, values.Tradition, r)
	b := askDist(t, NewSynthetic(9, [values.N]float64{}), probable, values.Tradition, r)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same inputs: got %v and %v, want equal", a, b)
	}
}

// Outside a game round the game's instruments are plain questionnaire
// items, answered by the behaviour templates.
func TestSyntheticGameOnlyInRounds(t *testing.T) {
	s := NewSynthetic(1, [values.N]float64{})
	probable, _ := gameInstruments(t)
	if _, ok := s.askGame(&agent.Question{Persona: agent.Persona{Value: values.Power}, Instrument: probable}); ok {
		t.Error("plain charity item: answered as a game round, want the questionnaire path")
	}
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.askGame(&agent.Question{Persona: agent.Persona{Value: values.Power}, Instrument: pvq, Game: &agent.Round{}}); ok {
		t.Error("PVQ item with a game context: answered as a game round, want the questionnaire path")
	}
}
