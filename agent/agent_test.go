package agent_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm/llmtest"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func pvq(t *testing.T) *questionnaires.Instrument {
	t.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// startShard runs a shard until the test ends.
func startShard(t *testing.T, sh *agent.Shard) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sh.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func TestShardDeliversEveryItemToEveryAgent(t *testing.T) {
	in := pvq(t)
	m := &llmtest.Model{}
	var agents []agent.Agent
	for i := range 25 {
		v := values.Value(i%11 - 1) // includes None
		agents = append(agents, agent.New(100+i, agent.Persona{Value: v}, i, 7))
	}
	sh := agent.NewShard(3, 100, agents, map[string]agent.Model{"m": m})
	startShard(t, sh)
	items := []int{0, 5, 39}
	for round := range 2 {
		batches, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: items, Round: round})
		if err != nil {
			t.Fatal(err)
		}
		if len(batches) != len(items) {
			t.Fatalf("got %d batches, want %d", len(batches), len(items))
		}
		for k, b := range batches {
			if b.Item != items[k] || b.Shard != 3 || b.First != 100 || b.Round != round || len(b.Codes) != 25 {
				t.Fatalf("batch %d: got item %d shard %d first %d round %d codes %d", k, b.Item, b.Shard, b.First, b.Round, len(b.Codes))
			}
			for i, c := range b.Codes {
				want := llmtest.PersonaAnswer(&agent.Question{Persona: agents[i].Persona, Instrument: in})
				if got := int(c) - 1 + in.Scale.Min; got != want.Value {
					t.Errorf("agent %d item %d: got answer %d, want %d", 100+i, b.Item, got, want.Value)
				}
			}
		}
	}
	if got, want := m.Calls(), int64(2*25*len(items)); got != want {
		t.Errorf("got %d model calls, want %d", got, want)
	}
}

func TestShardRecordsInvalidAnswers(t *testing.T) {
	in := pvq(t)
	m := &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
		if q.Persona.Value == values.Power {
			return agent.Reply{Answer: agent.Answer{Raw: "I cannot answer that", Reason: "refusal"}}, nil
		}
		return agent.Reply{Answer: agent.Answer{Value: 4, Valid: true}}, nil
	}}
	agents := []agent.Agent{
		agent.New(0, agent.Persona{Value: values.Power}, 0, 1),
		agent.New(1, agent.Persona{Value: values.Benevolence}, 0, 1),
	}
	sh := agent.NewShard(0, 0, agents, map[string]agent.Model{"m": m})
	startShard(t, sh)
	bs, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	b := bs[0]
	if b.Codes[0] != 0 || b.Codes[1] != 4 {
		t.Errorf("got codes %v, want [0 4]", b.Codes)
	}
	if len(b.Invalid) != 1 || b.Invalid[0].Agent != 0 || b.Invalid[0].Raw != "I cannot answer that" || b.Invalid[0].Reason != "refusal" {
		t.Errorf("got invalid %+v, want agent 0's refusal with its raw text", b.Invalid)
	}
	if got := b.Valid(); got != 1 {
		t.Errorf("got %d valid, want 1", got)
	}
}

func TestShardReportsModelFailure(t *testing.T) {
	in := pvq(t)
	boom := errors.New("endpoint down")
	m := &llmtest.Model{Reply: func(*agent.Question) (agent.Reply, error) { return agent.Reply{}, boom }}
	sh := agent.NewShard(0, 0, []agent.Agent{agent.New(0, agent.Persona{Value: values.None}, 0, 1)}, map[string]agent.Model{"m": m})
	startShard(t, sh)
	if _, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: []int{0}}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if _, err := sh.Do(context.Background(), &agent.Task{Model: "other", Instrument: in, Items: []int{0}}); err == nil {
		t.Fatal("unknown model: got nil error")
	}
}

func TestDrawIsDeterministicAndFollowsTheDistribution(t *testing.T) {
	dist := []float64{0.1, 0.2, 0.3, 0.4}
	counts := make([]int, len(dist))
	const n = 200000
	for i := range n {
		seed := uint64(i)
		a := agent.Draw(dist, seed, 11, 3, 0)
		if b := agent.Draw(dist, seed, 11, 3, 0); a != b {
			t.Fatalf("draw %d: got %d then %d for the same keys", i, a, b)
		}
		counts[a]++
	}
	for i, p := range dist {
		got := float64(counts[i]) / n
		se := math.Sqrt(p * (1 - p) / n)
		if math.Abs(got-p) > 5*se {
			t.Errorf("option %d: got frequency %.4f, want %.4f ± %.4f", i, got, p, 5*se)
		}
	}
	same := 0
	for i := range 1000 {
		if agent.Draw(dist, uint64(i), 11, 3, 0) == agent.Draw(dist, uint64(i), 11, 4, 0) {
			same++
		}
	}
	// Independent draws from dist agree with probability Σp² = 0.30.
	if same > 400 {
		t.Errorf("draws for different items agree %d/1000 times; want about 300", same)
	}
}

func TestPrefix(t *testing.T) {
	cases := []struct {
		p    agent.Persona
		want []string
	}{
		{agent.Persona{Value: values.Power, Style: agent.StyleDescription}, []string{"power", "social status and prestige"}},
		{agent.Persona{Value: values.Universalism, Style: agent.StyleName}, []string{"universalism"}},
		{agent.Persona{Value: values.Universalism, Style: agent.StyleNone}, nil},
		{agent.Persona{Value: values.None, Style: agent.StyleDescription}, nil},
	}
	for _, c := range cases {
		t.Run(c.p.Value.Code()+"/"+string(c.p.Style), func(t *testing.T) {
			got := agent.Prefix(c.p)
			if c.want == nil && got != "" {
				t.Fatalf("got %q, want no prefix", got)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q, want it to contain %q", got, w)
				}
			}
			if c.p.Style == agent.StyleName && strings.Contains(got, c.p.Value.Description()) {
				t.Errorf("value-name prompt %q contains the description", got)
			}
		})
	}
}

func TestRenderPutsThePrefixFirstAndNamesTheScale(t *testing.T) {
	in := pvq(t)
	q := &agent.Question{Persona: agent.Persona{Value: values.Security}, Instrument: in, Item: 4}
	p := agent.Render(q)
	if p.System != agent.Prefix(q.Persona) {
		t.Errorf("got system %q, want the value prefix", p.System)
	}
	if !strings.Contains(p.User, in.Items[4].Text) {
		t.Errorf("user prompt lacks the item text")
	}
	for x := in.Scale.Min; x <= in.Scale.Max; x++ {
		if !strings.Contains(p.User, in.Scale.Label(x)) {
			t.Errorf("user prompt lacks scale label %q", in.Scale.Label(x))
		}
	}
}
