package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm/llmtest"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func TestMemoryWindow(t *testing.T) {
	var m agent.Memory
	// Round r: own choice Kept on odd rounds, Contributed on even; the
	// partner the other way round.
	choice := func(r int) (agent.Choice, agent.Choice) {
		if r%2 == 1 {
			return agent.Kept, agent.Contributed
		}
		return agent.Contributed, agent.Kept
	}
	for r := 1; r <= agent.MaxMemory+5; r++ {
		own, partner := choice(r)
		m = m.Push(own, partner)
		if got, want := m.Len(), min(r, agent.MaxMemory); got != want {
			t.Fatalf("after %d rounds: got %d remembered, want %d", r, got, want)
		}
		for ago := 1; ago <= m.Len(); ago++ {
			o, p := m.At(ago)
			wo, wp := choice(r - ago + 1)
			if o != wo || p != wp {
				t.Fatalf("after %d rounds, %d ago: got %v/%v, want %v/%v", r, ago, o, p, wo, wp)
			}
		}
		if o, p := m.At(m.Len() + 1); o != agent.NoChoice || p != agent.NoChoice {
			t.Fatalf("beyond memory: got %v/%v, want nothing", o, p)
		}
	}
	for _, k := range []int{0, 1, 3, agent.MaxMemory} {
		w := m.Window(k)
		if w.Len() != k {
			t.Errorf("window %d: got %d rounds", k, w.Len())
		}
		for ago := 1; ago <= k; ago++ {
			o1, p1 := w.At(ago)
			o2, p2 := m.At(ago)
			if o1 != o2 || p1 != p2 {
				t.Errorf("window %d, %d ago: got %v/%v, want %v/%v", k, ago, o1, p1, o2, p2)
			}
		}
	}
	// Equal histories are equal memories, whatever came before the window.
	a := agent.Memory{}.Push(agent.Kept, agent.Kept).Push(agent.Contributed, agent.Kept)
	b := agent.Memory{}.Push(agent.Contributed, agent.Contributed).Push(agent.Contributed, agent.Kept)
	if a.Window(1) != b.Window(1) || a.Window(2) == b.Window(2) {
		t.Error("windows: got equality that does not follow the remembered rounds")
	}
}

func TestMemoriesWire(t *testing.T) {
	mems := []agent.Memory{{}, agent.Memory{}.Push(agent.Kept, agent.NoDecision)}
	full := agent.Memory{}
	for i := range agent.MaxMemory + 2 {
		full = full.Push(agent.Choice(i%4), agent.Choice((i+1)%4))
	}
	mems = append(mems, full, full.Window(5))
	b := agent.AppendMemories(nil, mems)
	got, err := agent.ParseMemories(b, len(mems))
	if err != nil {
		t.Fatal(err)
	}
	for i := range mems {
		if got[i] != mems[i] {
			t.Errorf("memory %d: got %+v, want %+v", i, got[i], mems[i])
		}
	}
	if _, err := agent.ParseMemories(b, len(mems)+1); err == nil {
		t.Error("wrong count: got no error, want one")
	}
	bad := append([]byte(nil), b...)
	bad[0] = agent.MaxMemory + 1
	if _, err := agent.ParseMemories(bad, len(mems)); err == nil {
		t.Error("too long a memory: got no error, want one")
	}
}

func charity(t *testing.T) (*questionnaires.Instrument, *questionnaires.Instrument) {
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

func TestRoundContext(t *testing.T) {
	probable, _ := charity(t)
	if got := (agent.Round{}).Context(probable); got != "" {
		t.Errorf("first round: got %q, want no context", got)
	}
	m := agent.Memory{}.Push(agent.Contributed, agent.Kept).Push(agent.NoChoice, agent.NoChoice).Push(agent.Kept, agent.Contributed)
	r := agent.Round{Memory: m, RateShown: true, Rate: 37, Probable: 6}
	got := r.Context(probable)
	want := []string{
		"- 3 rounds ago: you contributed your points; your partner kept theirs.",
		"- 2 rounds ago: you sat out and had no partner.",
		"- Last round: you kept your points; your partner contributed theirs.",
		"In the last round, 37% of the players contributed.",
		`you answered: "Very probably donate".`,
	}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Errorf("context lacks %q in order:\n%s", w, got)
		}
		last = i
	}
	if r.Context(probable) != got {
		t.Error("context is not canonical: two renderings differ")
	}
	// Relative round names: the same history renders the same in any round.
	other := agent.Memory{}.Push(agent.Kept, agent.Kept).Push(agent.Contributed, agent.Kept).Push(agent.NoChoice, agent.NoChoice).Push(agent.Kept, agent.Contributed)
	if (agent.Round{Memory: other.Window(3)}).Context(nil) != (agent.Round{Memory: m}).Context(nil) {
		t.Error("same remembered rounds later in the game: got different contexts, want the same")
	}
}

// A game round asks every agent its probable choice with its own memory in
// view, then the final decision with that probable choice in view.
func TestShardPlaysAGameRound(t *testing.T) {
	probable, decision := charity(t)
	var agents []agent.Agent
	mems := make([]agent.Memory, 12)
	for i := range 12 {
		agents = append(agents, agent.New(50+i, agent.Persona{Value: values.Value(i % 10)}, i, 3))
		for range i % 4 {
			mems[i] = mems[i].Push(agent.Kept, agent.Contributed)
		}
	}
	// The fake answers the probable choice with 1 + rounds remembered
	// and the decision with 2 ("contribute") iff the stated probable
	// choice is above 2; it checks what each question shows.
	m := &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
		if q.Game == nil {
			return agent.Reply{}, fmt.Errorf("question without a game round")
		}
		if want := q.Game.Context(probable); q.Context != want {
			return agent.Reply{}, fmt.Errorf("context %q, want %q", q.Context, want)
		}
		switch q.Instrument.Name {
		case "charity":
			if q.Game.Probable != 0 {
				return agent.Reply{}, fmt.Errorf("probable choice shown before it was given")
			}
			return agent.Reply{Answer: agent.Answer{Value: 1 + q.Game.Memory.Len(), Valid: true}}, nil
		case "charity_decision":
			v := 1
			if q.Game.Probable > 2 {
				v = 2
			}
			return agent.Reply{Answer: agent.Answer{Value: v, Valid: true}}, nil
		}
		return agent.Reply{}, fmt.Errorf("unexpected instrument %s", q.Instrument.Name)
	}}
	sh := agent.NewShard(1, 50, agents, map[string]agent.Model{"m": m})
	startShard(t, sh)
	batches, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: probable, Items: []int{0}, Round: 4,
		Game: &agent.GameTask{Decision: decision, Memory: mems, RateShown: true, Rate: 55}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 || batches[0].Instrument != "charity" || batches[1].Instrument != "charity_decision" {
		t.Fatalf("got %d batches, want the probable choice and the decision", len(batches))
	}
	for i := range agents {
		p := int(batches[0].Codes[i])
		d := int(batches[1].Codes[i])
		if want := 1 + i%4; p != want {
			t.Errorf("agent %d: got probable choice %d, want %d", i, p, want)
		}
		if want := map[bool]int{true: 2, false: 1}[p > 2]; d != want {
			t.Errorf("agent %d: got decision %d after probable %d, want %d", i, d, p, want)
		}
		if batches[1].Round != 4 || batches[1].Item != 0 {
			t.Errorf("decision batch: got round %d item %d, want 4 and 0", batches[1].Round, batches[1].Item)
		}
	}
	if got, want := m.Calls(), int64(2*len(agents)); got != want {
		t.Errorf("got %d model calls, want %d", got, want)
	}
	// A task whose memories do not fit the shard is refused.
	if _, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: probable, Items: []int{0}, Round: 5,
		Game: &agent.GameTask{Decision: decision, Memory: mems[:3]}}); err == nil {
		t.Error("memories for 3 of 12 agents: got no error, want one")
	}
}
