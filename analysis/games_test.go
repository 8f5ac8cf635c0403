package analysis

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// gameStudy is a study of a small population that plays a game, with two
// strategies of which the second plays.
func gameStudy(t *testing.T, pairing games.Pairing) *Study {
	t.Helper()
	probable, decision, err := games.Instruments(15)
	if err != nil {
		t.Fatal(err)
	}
	var a, b [values.N + 1]int
	for i := range a {
		a[i], b[i] = 20, 30
	}
	b[values.N] = 5 // fewer unprimed players than the pool holds
	pool := population.NewPool([]population.Member{{Name: "uniform", Counts: a}, {Name: "custom", Counts: b}}, 3)
	member, ok := StrategyMember(pool, "custom", "m")
	if !ok {
		t.Fatal("no custom member")
	}
	g := CharityGame{Model: "m", Strategy: "custom", Member: member, Probable: probable, Decision: decision,
		Config: games.Config{Rounds: 6, Endowment: 15, Pairing: pairing, Memory: 2, Neighbours: 4, Rewire: 0.1, Seed: 9}}
	st := &Study{Name: "g", Seed: 9, Models: []ModelInfo{{Name: "m", Backend: "synthetic", Synthetic: true}}, Pool: pool,
		Games: []CharityGame{g}, BootstrapIterations: 10, BootstrapSize: 10}
	st.Plans = g.AllPlans()
	return st
}

// gameBatches answers every round of the study's game in shards of 37
// agents: contributions that depend on the persona, drawn from a seed.
func gameBatches(st *Study) []*agent.Batch {
	g := st.Games[0]
	n := st.Pool.Size()
	r := rand.New(rand.NewPCG(5, 5))
	var out []*agent.Batch
	for round := 1; round <= g.Config.Rounds; round++ {
		for shard, first := 0, 0; first < n; shard, first = shard+1, first+37 {
			size := min(37, n-first)
			p := &agent.Batch{Model: "m", Instrument: g.Probable.Name, Round: round, Shard: shard, First: first, Codes: make([]uint8, size)}
			d := &agent.Batch{Model: "m", Instrument: g.Decision.Name, Round: round, Shard: shard, First: first, Codes: make([]uint8, size)}
			for i := range size {
				v := st.Pool.Persona[first+i]
				bias := 0.3
				if v == values.Universalism || v == values.Benevolence {
					bias = 0.8
				}
				p.Codes[i] = uint8(1 + r.IntN(7))
				d.Codes[i] = 1
				if r.Float64() < bias {
					d.Codes[i] = 2
				}
				if r.IntN(50) == 0 {
					d.Codes[i] = 0
					d.Invalid = append(d.Invalid, agent.Invalid{Agent: first + i, Raw: "?", Reason: "unreadable"})
				}
			}
			out = append(out, p, d)
		}
	}
	return out
}

func gamesJSON(t *testing.T, st *Study, batches []*agent.Batch) string {
	t.Helper()
	c := NewCollector(st.Pool.Size(), st.Plans)
	for _, b := range batches {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.Compute(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(out.Results.Games)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A restarted analysis replays the stored answers: in another order, with
// redeliveries, into a fresh collector, it must compute the same game.
func TestGamesReplay(t *testing.T) {
	for _, p := range games.Pairings() {
		t.Run(string(p), func(t *testing.T) {
			st := gameStudy(t, p)
			batches := gameBatches(st)
			first := gamesJSON(t, st, batches)

			again := append([]*agent.Batch(nil), batches...)
			again = append(again, batches[:len(batches)/3]...) // redelivered
			rand.New(rand.NewPCG(1, 1)).Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
			if second := gamesJSON(t, st, again); second != first {
				t.Errorf("replay in another order: got\n%s\nwant\n%s", second, first)
			}
		})
	}
}

func TestGamesResults(t *testing.T) {
	st := gameStudy(t, games.Random)
	c := NewCollector(st.Pool.Size(), st.Plans)
	for _, b := range gameBatches(st) {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.Compute(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	gs := out.Results.Games
	if gs == nil || len(gs.PairedCharity) != 1 {
		t.Fatalf("got games %+v, want one Paired Charity Game", gs)
	}
	g := gs.PairedCharity[0]
	if g.Players != st.Pool.StrategySize(st.Games[0].Member) || g.Agents != st.Pool.Size() {
		t.Errorf("got %d players of %d agents, want %d of %d", g.Players, g.Agents, st.Pool.StrategySize(1), st.Pool.Size())
	}
	if len(g.PerRound) != 6 || !g.Conserved || !g.Synthetic {
		t.Errorf("got %d rounds, conserved %v, synthetic %v; want 6, true, true", len(g.PerRound), g.Conserved, g.Synthetic)
	}
	var charity int64
	for _, r := range g.PerRound {
		charity += r.Charity
		if r.Players+r.SatOut != g.Players {
			t.Errorf("round %d: got %d players and %d sitting out, want %d in all", r.Round, r.Players, r.SatOut, g.Players)
		}
		if r.Contributed+r.Kept+r.NoDecision != r.Players {
			t.Errorf("round %d: decisions %d+%d+%d do not add up to %d players", r.Round, r.Contributed, r.Kept, r.NoDecision, r.Players)
		}
		if len(r.ByValue) != values.N+1 || len(r.ByGroup) != values.NGroups {
			t.Errorf("round %d: got %d values and %d groups, want %d and %d", r.Round, len(r.ByValue), len(r.ByGroup), values.N+1, values.NGroups)
		}
		if r.DistinctPrompts < 1 || r.DistinctPrompts > g.Agents {
			t.Errorf("round %d: got %d distinct prompts", r.Round, r.DistinctPrompts)
		}
	}
	if charity != g.CharityTotal || charity%15 != 0 {
		t.Errorf("got charity total %d, want the rounds' %d, a multiple of 15", g.CharityTotal, charity)
	}
	// The batches favour UN and BE: the signs template must see it.
	if float64(g.Theory.RSigns) < 0.5 || g.Theory.ReferenceKind != "theory" || !strings.Contains(g.Theory.Citation, "2605.30036") {
		t.Errorf("got r = %v (%s), want a clearly positive fit to the theory template with its citation", g.Theory.RSigns, g.Theory.ReferenceKind)
	}
	players := 0
	for _, p := range g.Payoffs {
		players += p.Players
	}
	if players != g.Players {
		t.Errorf("payoff table: got %d players, want %d", players, g.Players)
	}
}

func TestGamesIncompleteRound(t *testing.T) {
	st := gameStudy(t, games.Random)
	c := NewCollector(st.Pool.Size(), st.Plans)
	batches := gameBatches(st)
	for _, b := range batches[:len(batches)-1] {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Compute(context.Background(), c); err == nil {
		t.Error("a round with a missing batch: got no error, want one")
	}
}
