package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// gameScenario writes a small scenario with a Paired Charity Game, after
// the first twelve items of a questionnaire (pvq40: the fewest that score
// every value).
func gameScenario(t testing.TB, size, rounds int, game, questionnaire string) string {
	t.Helper()
	src := fmt.Sprintf(`name = "charity-small"
seed = 3

[population]
size = %d
strategy = "h-np"

[[questionnaires]]
name = %q
items = 12

[games.paired_charity]
rounds = %d
%s

[analysis]
bootstrap = "paper"
bootstrap_iterations = 5
bootstrap_size = 100
null_iterations = 19
references = ["pvq40_smacof_mrat"]
`, size, questionnaire, rounds, game)
	path := filepath.Join(t.TempDir(), "charity-small.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func rawGames(t *testing.T, dir string) (map[string]any, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	var g map[string]any
	if err := json.Unmarshal(top["games"], &g); err != nil {
		t.Fatalf("games: %v in %s", err, top["games"])
	}
	return g, top["games"]
}

// TestCharityRoundsEndToEnd plays a small society over the embedded NATS
// server, as `society run` does, and checks what results.json and the
// report say about the game, and that the same seed gives the same game.
func TestCharityRoundsEndToEnd(t *testing.T) {
	file := gameScenario(t, 501, 5, `pairing = "random"
memory = 3
show_rate = true`, "pvq40")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, out := range []string{a, b} {
		stdout, stderr, code := runCLI(t, "run", file, "--out", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "Paired Charity Game, synthetic (synthetic respondents): 501 players, 5 rounds") {
			t.Errorf("summary lacks the game:\n%s", stdout)
		}
	}
	g, rawA := rawGames(t, a)
	_, rawB := rawGames(t, b)
	if !bytes.Equal(rawA, rawB) {
		t.Error("same scenario and seed: got different games, want identical results")
	}
	list, _ := g["paired_charity"].([]any)
	if len(list) != 1 {
		t.Fatalf("got games %v, want one paired_charity entry", g)
	}
	game := list[0].(map[string]any)
	for _, k := range []string{"model", "strategy", "synthetic", "players", "rounds", "per_round", "cooperation", "charity_total",
		"gini", "conserved", "conditional_cooperation", "theory", "payoffs"} {
		if _, ok := game[k]; !ok {
			t.Errorf("games.paired_charity[0] lacks %q", k)
		}
	}
	rounds := game["per_round"].([]any)
	if len(rounds) != 5 {
		t.Fatalf("got %d rounds, want 5", len(rounds))
	}
	for i, x := range rounds {
		r := x.(map[string]any)
		for _, k := range []string{"cooperation", "by_value", "by_group", "charity", "gini", "distinct_prompts", "distinct_decision_prompts"} {
			if _, ok := r[k]; !ok {
				t.Errorf("round %d lacks %q", i+1, k)
			}
		}
		if r["sat_out"].(float64) != 1 || r["players"].(float64) != 500 || r["conserved"] != true {
			t.Errorf("round %d: got %v players, %v sitting out, conserved %v; want 500, 1, true", i+1, r["players"], r["sat_out"], r["conserved"])
		}
	}
	if p := rounds[0].(map[string]any)["distinct_prompts"].(float64); p < 1 || p > 11 {
		t.Errorf("round 1: got %v distinct prompts, want one per persona at most (11)", p)
	}

	var res analysis.Results
	data, _ := os.ReadFile(filepath.Join(a, "results.json"))
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	cr := res.Games.PairedCharity[0]
	if !cr.Synthetic || !cr.Conserved {
		t.Errorf("got synthetic %v conserved %v, want both", cr.Synthetic, cr.Conserved)
	}
	// The synthetic respondents are built to contribute more with UN and
	// BE and after a contributing partner: the measures must see both.
	if cr.Theory.RSigns < 0.5 || cr.Conditional.Difference <= 0 {
		t.Errorf("got r = %v with the theory signs and a conditional difference of %v, want both clearly positive",
			cr.Theory.RSigns, cr.Conditional.Difference)
	}
	report, _ := os.ReadFile(filepath.Join(a, "report.md"))
	for _, want := range []string{"## Paired Charity Game", "synthetic respondents", "charity_cooperation_synthetic.png", "| persona | players |"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, f := range []string{"charity_cooperation_synthetic.png", "charity_cooperation_synthetic.svg", "charity_rounds.csv", "charity_payoffs.csv"} {
		if st, err := os.Stat(filepath.Join(a, f)); err != nil || st.Size() == 0 {
			t.Errorf("results lack %s: %v", f, err)
		}
	}
	answers, _ := os.ReadFile(filepath.Join(a, "answers.csv"))
	if n := strings.Count(string(answers), ",charity_decision,"); n != 501*5 {
		t.Errorf("answers.csv: got %d final decisions, want %d (every agent, every round)", n, 501*5)
	}
}

// A game of one strategy among several: the other agents are asked as
// bystanders and count in no statistic; on a ring every partner is a
// neighbour.
func TestCharityRoundsPairings(t *testing.T) {
	for _, p := range games.Pairings() {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			file := gameScenario(t, 151, 3, fmt.Sprintf("pairing = %q\nstrategy = \"h-np\"", p), "pvq40")
			sc, err := scenarios.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			sc.Population.Strategies = append(sc.Population.Strategies, "uniform")
			res, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			cr := res.Outcome.Results.Games.PairedCharity[0]
			hnp := res.Outcome.Results.Population[0]
			if cr.Strategy != "h-np" || cr.Players != hnp.Size || cr.Agents <= cr.Players {
				t.Errorf("got %d players of %d agents for %s, want the %d of h-np among more agents", cr.Players, cr.Agents, cr.Strategy, hnp.Size)
			}
			for _, r := range cr.PerRound {
				if r.Players+r.SatOut != cr.Players || !r.Conserved {
					t.Errorf("round %d: got %d players and %d sitting out (conserved %v), want %d in all", r.Round, r.Players, r.SatOut, r.Conserved, cr.Players)
				}
				if p != games.SmallWorld && r.OffNetwork != 0 {
					t.Errorf("round %d: got %d off-network pairs, want 0", r.Round, r.OffNetwork)
				}
			}
		})
	}
}

// TestCharityRoundsReplay restarts the analysis: the answers a run stored,
// fed to a fresh collector in another order and with redeliveries, give the
// same game.
func TestCharityRoundsReplay(t *testing.T) {
	file := gameScenario(t, 150, 3, `pairing = "small-world"
memory = 2`, "pvq40")
	sc, err := scenarios.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var batches []*agent.Batch
	res, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: t.TempDir(), Observer: batchObserver(func(b *agent.Batch) {
		c := *b
		c.Codes = append([]uint8(nil), b.Codes...)
		mu.Lock()
		batches = append(batches, &c)
		mu.Unlock()
	})})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(res.Outcome.Results.Games)
	for i := range 2 {
		p, err := buildPlan(t, sc)
		if err != nil {
			t.Fatal(err)
		}
		again := append([]*agent.Batch(nil), batches...)
		again = append(again, batches[:len(batches)/2]...)
		rand.New(rand.NewPCG(uint64(i), 9)).Shuffle(len(again), func(a, b int) { again[a], again[b] = again[b], again[a] })
		col := analysis.NewCollector(p.Study.Pool.Size(), p.Study.Plans)
		for _, b := range again {
			if err := col.Add(b); err != nil {
				t.Fatal(err)
			}
		}
		out, err := p.Study.Compute(context.Background(), col)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(out.Results.Games); !bytes.Equal(got, want) {
			t.Errorf("replay %d: got\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestCharityRoundsBuiltin(t *testing.T) {
	sc, err := scenarios.Builtin("charity-rounds")
	if err != nil {
		t.Fatal(err)
	}
	g := sc.Games.PairedCharity
	if sc.Population.Size != 10000 || g == nil || g.Rounds != 20 || g.Pairing != games.Random || g.Memory != 3 ||
		sc.Models[0].Backend != scenarios.Synthetic {
		t.Fatalf("got size %d game %+v backend %s, want 10000 agents, 20 random rounds, memory 3, synthetic", sc.Population.Size, g, sc.Models[0].Backend)
	}
	if _, err := buildPlan(t, sc); err != nil {
		t.Fatal(err)
	}
}

func TestCharityRoundsBadInput(t *testing.T) {
	file := gameScenario(t, 100, 3, `pairing = "grid"
memory = 40`, "pvq40")
	_, stderr, code := runCLI(t, "validate", file)
	if code != 2 {
		t.Fatalf("got exit %d, want 2", code)
	}
	for _, want := range []string{"charity-small.toml:14: games.paired_charity.pairing", "charity-small.toml:15: games.paired_charity.memory"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// The wire form of a game round reaches a shard's agents intact, and a
// round that does not fit the shard is refused as a bad message.
func TestGameTaskMessage(t *testing.T) {
	probable, decision, err := games.Instruments(15)
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(name string) (*questionnaires.Instrument, bool) {
		switch name {
		case probable.Name:
			return probable, true
		case decision.Name:
			return decision, true
		}
		return nil, false
	}
	agents := make([]agent.Agent, 3)
	sh := agent.NewShard(2, 30, agents, nil)
	mems := []agent.Memory{{}, agent.Memory{}.Push(agent.Kept, agent.Contributed), agent.Memory{}.Push(agent.NoChoice, agent.NoChoice)}
	msg := bus.TaskMsg{Model: "m", Instrument: probable.Name, Items: []int{0}, Round: 3, Shard: 2,
		Game: &bus.GameMsg{Decision: decision.Name, First: 30, Memories: agent.AppendMemories(nil, mems), RateShown: true, Rate: 61}}
	got, err := bus.DecodeTask(bus.EncodeTask(msg))
	if err != nil {
		t.Fatal(err)
	}
	gt, err := bus.GameTask(got, sh, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if gt.Decision != decision || !gt.RateShown || gt.Rate != 61 || len(gt.Memory) != 3 || gt.Memory[1] != mems[1] || gt.Memory[2] != mems[2] {
		t.Errorf("got %+v, want the round sent", gt)
	}
	plain, err := bus.DecodeTask(bus.EncodeTask(bus.TaskMsg{Model: "m", Instrument: "pvq40", Items: []int{1}}))
	if err != nil {
		t.Fatal(err)
	}
	if gt, err := bus.GameTask(plain, sh, resolve); gt != nil || err != nil {
		t.Errorf("plain task: got %+v, %v, want no game", gt, err)
	}
	bad := map[string]func(m *bus.TaskMsg){
		"other shard's agents": func(m *bus.TaskMsg) { m.Game.First = 0 },
		"too few memories":     func(m *bus.TaskMsg) { m.Game.Memories = m.Game.Memories[:9] },
		"unknown decision":     func(m *bus.TaskMsg) { m.Game.Decision = "chess" },
	}
	for name, edit := range bad {
		t.Run(name, func(t *testing.T) {
			m := msg
			g := *msg.Game
			m.Game = &g
			edit(&m)
			d, err := bus.DecodeTask(bus.EncodeTask(m))
			if err == nil {
				_, err = bus.GameTask(d, sh, resolve)
			}
			if !errors.Is(err, bus.ErrBadMessage) {
				t.Errorf("got %v, want ErrBadMessage", err)
			}
		})
	}
	// A host that reads only plain tasks must refuse a game round rather
	// than answer it as a questionnaire: game tasks carry their own version.
	var v struct{ V int }
	if err := json.Unmarshal(bus.EncodeTask(msg), &v); err != nil || v.V < 2 {
		t.Errorf("game task version: got %d, want a version above plain tasks'", v.V)
	}
}

// BenchmarkCharityRounds measures rounds per second of the whole
// distributed loop (orchestrator, NATS, agent goroutines, synthetic
// respondents, collector) from the end of round 1 to the end of the last
// round, so that setup and writing results are left out.
func BenchmarkCharityRounds(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			const rounds = 6
			file := gameScenario(b, n, rounds, `pairing = "random"`, "pvq40")
			sc, err := scenarios.Load(file)
			if err != nil {
				b.Fatal(err)
			}
			sc.Questionnaires[0].Items = 1
			var total time.Duration
			runs := 0
			for b.Loop() {
				runs++
				var mu sync.Mutex
				last := map[int]time.Time{}
				obs := batchObserver(func(bt *agent.Batch) {
					mu.Lock()
					last[bt.Round] = time.Now()
					mu.Unlock()
				})
				if _, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: b.TempDir(), Observer: obs}); err != nil {
					b.Fatal(err)
				}
				total += last[rounds].Sub(last[1])
			}
			b.ReportMetric(float64(rounds-1)*float64(runs)/total.Seconds(), "rounds/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestCharityRoundsModelServer plays the game through the OpenAI-compatible
// client against the model server (the synthetic respondents served over
// HTTP on loopback): the probable choice and the final decision are two
// questions per round, equal prompts are asked once, and a rerun with the
// same response cache asks nothing and plays the same game.
func TestCharityRoundsModelServer(t *testing.T) {
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{}))
	t.Cleanup(hs.Close)
	src := fmt.Sprintf(`name = "charity-served"
seed = 4

[population]
size = 61

[[models]]
name = "served"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
concurrency = 16
timeout = "10s"

[[questionnaires]]
name = "pvq40"
items = 12

[games.paired_charity]
rounds = 3
memory = 2
show_rate = true

[analysis]
bootstrap_iterations = 5
references = ["pvq40_smacof_mrat"]
`, hs.URL+"/v1")
	dir := t.TempDir()
	file := filepath.Join(dir, "served.toml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	var played [2][]byte
	for i, out := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")} {
		if _, stderr, code := runCLI(t, "run", file, "--out", out, "--cache", cache, "--quiet"); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		_, played[i] = rawGames(t, out)
		res := readResults(t, out)
		if res.Answers.Invalid != 0 || res.Answers.Valid != res.Answers.Expected || res.Answers.Expected != 61*(12+2*3) {
			t.Errorf("run %d: got answers %+v, want %d, all valid", i, res.Answers, 61*(12+2*3))
		}
		g := res.Games.PairedCharity[0]
		if !g.Synthetic || !g.Conserved || len(g.PerRound) != 3 || g.PerRound[0].SatOut != 1 {
			t.Errorf("run %d: got synthetic %v conserved %v rounds %d, want a served game labelled synthetic (the model server says so), conserved, of 3 rounds with one sitting out",
				i, g.Synthetic, g.Conserved, len(g.PerRound))
		}
		prompts := int64(12 * (values.N + 1)) // the questionnaire items, once per persona
		for _, r := range g.PerRound {
			prompts += int64(r.DistinctPrompts + r.DecisionPrompts)
		}
		t.Logf("run %d: %d model calls, %d cache hits, %d distinct prompts", i, res.LLM.Calls, res.LLM.CacheHits, prompts)
		switch {
		case i == 0 && (res.LLM.Calls == 0 || res.LLM.Calls > prompts):
			t.Errorf("first run: got %d model calls, want between 1 and the %d distinct prompts", res.LLM.Calls, prompts)
		case i == 1 && res.LLM.Calls != 0:
			t.Errorf("rerun with the cache: got %d model calls, want 0", res.LLM.Calls)
		}
	}
	if !bytes.Equal(played[0], played[1]) {
		t.Error("rerun from the cache: got a different game, want the same")
	}
}
