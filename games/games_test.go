package games_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/values"
)

func personas(n int, seed uint64) []values.Value {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]values.Value, n)
	for i := range out {
		out[i] = values.Value(r.IntN(values.N+1) - 1) // includes None
	}
	return out
}

func config(p games.Pairing) games.Config {
	return games.Config{Rounds: 12, Endowment: 15, Pairing: p, Memory: 3, Neighbours: 4, Rewire: 0.2, Seed: 42}
}

// randomDecisions draws every agent's decision, with some invalid ones.
func randomDecisions(r *rand.Rand, n int) ([]agent.Choice, []int) {
	d := make([]agent.Choice, n)
	p := make([]int, n)
	for i := range d {
		switch x := r.IntN(10); {
		case x == 0:
			d[i] = agent.NoDecision
		case x < 5:
			d[i] = agent.Kept
		default:
			d[i] = agent.Contributed
		}
		p[i] = r.IntN(8) // 0 is an invalid probable choice
	}
	return d, p
}

func TestPairingCoversEveryPlayerOnce(t *testing.T) {
	for _, p := range games.Pairings() {
		for _, n := range []int{2, 3, 7, 10, 101, 500} {
			t.Run(fmt.Sprintf("%s/%d", p, n), func(t *testing.T) {
				cfg := config(p)
				pr, err := games.NewPairer(cfg, personas(n, 3))
				if err != nil {
					t.Fatal(err)
				}
				satOut := map[int32]int{}
				for r := 1; r <= 2*n+1; r++ {
					m, err := pr.Round(r)
					if err != nil {
						t.Fatal(err)
					}
					out := 0
					for i, q := range m.Partner {
						switch {
						case q < 0:
							out++
							if int32(i) != m.SitOut {
								t.Fatalf("round %d: player %d has no partner but %d sits out", r, i, m.SitOut)
							}
						case q == int32(i):
							t.Fatalf("round %d: player %d paired with itself", r, i)
						case m.Partner[q] != int32(i):
							t.Fatalf("round %d: %d→%d but %d→%d", r, i, q, q, m.Partner[q])
						}
					}
					if want := n % 2; out != want {
						t.Fatalf("round %d: got %d players sitting out, want %d", r, out, want)
					}
					if m.SitOut >= 0 {
						satOut[m.SitOut]++
						// Nobody sits out twice before everyone has once.
						if r <= n && satOut[m.SitOut] > 1 {
							t.Fatalf("round %d: player %d sits out a second time before everyone has", r, m.SitOut)
						}
					}
					if r == n && n%2 == 1 && len(satOut) != n {
						t.Fatalf("after %d rounds got %d players who sat out, want all %d", r, len(satOut), n)
					}
				}
			})
		}
	}
}

func TestNetworkPartnersAreNeighbours(t *testing.T) {
	for _, p := range []games.Pairing{games.Ring, games.SmallWorld} {
		for _, n := range []int{4, 9, 200, 1001} {
			t.Run(fmt.Sprintf("%s/%d", p, n), func(t *testing.T) {
				pr, err := games.NewPairer(config(p), personas(n, 5))
				if err != nil {
					t.Fatal(err)
				}
				off := 0
				for r := 1; r <= 10; r++ {
					m, _ := pr.Round(r)
					unlinked := 0
					for i, q := range m.Partner {
						if q >= 0 && !pr.Linked(int32(i), q) {
							unlinked++
						}
					}
					if got, want := unlinked, 2*m.OffNetwork; got != want {
						t.Errorf("round %d: got %d players with an unlinked partner, want %d (2 × %d off-network pairs)", r, got, want, m.OffNetwork)
					}
					if p == games.Ring && m.OffNetwork != 0 {
						t.Errorf("round %d: got %d off-network pairs on a ring, want 0", r, m.OffNetwork)
					}
					off += m.OffNetwork
				}
				// Off-network pairs are a mending of last resort.
				if off > 10*n/200+1 {
					t.Errorf("got %d off-network pairs in 10 rounds of %d players, want at most %d", off, n, 10*n/200+1)
				}
			})
		}
	}
}

// On the ring, players sit by value: most neighbours share a persona.
func TestRingSeatsValueClusters(t *testing.T) {
	ps := personas(1100, 9)
	pr, err := games.NewPairer(config(games.Ring), ps)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range ps {
		for _, q := range pr.Neighbours(i) {
			if ps[q] == ps[i] {
				same++
			}
		}
	}
	if frac := float64(same) / float64(2*len(ps)); frac < 0.95 {
		t.Errorf("got %.2f of ring neighbours sharing a persona, want >= 0.95", frac)
	}
}

func TestFixedPartnersStay(t *testing.T) {
	for _, n := range []int{10, 11} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pr, _ := games.NewPairer(config(games.Fixed), personas(n, 1))
			first, _ := pr.Round(1)
			for r := 2; r <= 3*n; r++ {
				m, _ := pr.Round(r)
				changed := 0
				for i, q := range m.Partner {
					if q != first.Partner[i] {
						changed++
					}
				}
				// With an odd count, the one who sits out, its partner and
				// the spare (and the first round's counterparts) move.
				if limit := map[bool]int{true: 0, false: 6}[n%2 == 0]; changed > limit {
					t.Errorf("round %d: got %d players with a new partner, want at most %d", r, changed, limit)
				}
			}
		})
	}
}

func TestSameSeedSameRounds(t *testing.T) {
	for _, p := range games.Pairings() {
		t.Run(string(p), func(t *testing.T) {
			ps := personas(301, 2)
			play := func(seed uint64) []games.Round {
				cfg := config(p)
				cfg.Seed = seed
				s, err := games.NewSession(cfg, ps, nil)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(7, 7))
				for !s.Done() {
					d, pr := randomDecisions(r, len(ps))
					if _, err := s.Record(d, pr); err != nil {
						t.Fatal(err)
					}
				}
				return s.Rounds()
			}
			a, b := play(42), play(42)
			if !reflect.DeepEqual(fmt.Sprint(a), fmt.Sprint(b)) {
				t.Error("same seed: got different rounds, want the same")
			}
			if p != games.Ring && fmt.Sprint(a) == fmt.Sprint(play(43)) {
				t.Error("other seed: got the same rounds, want different pairings")
			}
		})
	}
}

func TestPayoffsConserved(t *testing.T) {
	for _, p := range games.Pairings() {
		t.Run(string(p), func(t *testing.T) {
			ps := personas(257, 4)
			players := []int32{}
			for a := range ps {
				if a%5 != 0 { // every fifth agent does not play
					players = append(players, int32(a))
				}
			}
			cfg := config(p)
			s, err := games.NewSession(cfg, ps, players)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(11, 3))
			var total int64
			want := make([]int64, len(ps))
			for !s.Done() {
				d, pr := randomDecisions(r, len(ps))
				// Independent account of the rules.
				partner := make([]int, len(ps))
				for a := range ps {
					partner[a] = s.Partner(a)
				}
				round, err := s.Record(d, pr)
				if err != nil {
					t.Fatal(err)
				}
				if !round.Conserved(cfg.Endowment) {
					t.Errorf("round %d: payoffs %d + charity %d do not add up for %d players and %d contributors",
						round.Round, round.Payoffs, round.Charity, round.Players, round.Contributed)
				}
				if got, wantN := round.Players+round.SatOut, len(players); got != wantN {
					t.Errorf("round %d: got %d players and sit-outs, want %d", round.Round, got, wantN)
				}
				var pay, charity int64
				for a := range ps {
					q := partner[a]
					if q < 0 {
						continue
					}
					if d[a] == agent.Contributed {
						charity += 15
					} else {
						pay += 15
						want[a] += 15
					}
					if d[q] == agent.Contributed {
						pay += 15
						want[a] += 15
					}
				}
				if pay != round.Payoffs || charity != round.Charity {
					t.Errorf("round %d: got payoffs %d charity %d, want %d and %d", round.Round, round.Payoffs, round.Charity, pay, charity)
				}
				total += round.Payoffs
			}
			var sum int64
			for a := range ps {
				if s.TotalPayoff(a) != want[a] {
					t.Fatalf("agent %d: got total payoff %d, want %d", a, s.TotalPayoff(a), want[a])
				}
				sum += s.TotalPayoff(a)
			}
			if sum != total {
				t.Errorf("got %d in players' totals, want the rounds' %d", sum, total)
			}
			rows, gini := s.Payoffs()
			n := 0
			for _, row := range rows {
				n += row.Players
			}
			if n != len(players) || !(gini >= 0 && gini < 1) {
				t.Errorf("payoff table: got %d players and Gini %v, want %d and a Gini in [0,1)", n, gini, len(players))
			}
		})
	}
}

func TestMemoryWindowAndConditionalCooperation(t *testing.T) {
	// Two fixed pairs; agent 0 contributes every round, its partner
	// alternates; agents 2 and 3 always keep.
	ps := []values.Value{values.Universalism, values.Power, values.Benevolence, values.Hedonism}
	cfg := games.Config{Rounds: 6, Endowment: 10, Pairing: games.Fixed, Memory: 2, ShowRate: true, Seed: 1}
	s, err := games.NewSession(cfg, ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Find who is paired with whom and script accordingly.
	a := 0
	b := s.Partner(a)
	var others []int
	for i := range 4 {
		if i != a && i != b {
			others = append(others, i)
		}
	}
	for r := 1; r <= 6; r++ {
		d := make([]agent.Choice, 4)
		d[a] = agent.Contributed
		d[b] = agent.Kept
		if r%2 == 0 {
			d[b] = agent.Contributed
		}
		d[others[0]], d[others[1]] = agent.Kept, agent.Kept
		view := s.View(a)
		if got, want := view.Memory.Len(), min(r-1, 2); got != want {
			t.Fatalf("round %d: agent remembers %d rounds, want %d", r, got, want)
		}
		if r > 1 {
			own, partner := view.Memory.At(1)
			wantPartner := agent.Kept
			if (r-1)%2 == 0 {
				wantPartner = agent.Contributed
			}
			if own != agent.Contributed || partner != wantPartner {
				t.Errorf("round %d: last round remembered as %v/%v, want contributed/%v", r, own, partner, wantPartner)
			}
			rate, shown := s.RateShown()
			wantRate := map[bool]int{true: 50, false: 25}[(r-1)%2 == 0]
			if !shown || rate != wantRate {
				t.Errorf("round %d: got rate %d shown %v, want %d shown", r, rate, shown, wantRate)
			}
		} else if _, shown := s.RateShown(); shown {
			t.Error("round 1: a rate is shown before any round was played")
		}
		if _, err := s.Record(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	// After round 1: agent a saw its partner keep in rounds 1,3,5 and
	// contribute in 2,4; b always saw a contribute; the others saw keeps.
	afterKept, afterContributed := s.Conditional()
	// After a keep: a in rounds 2,4,6 (contributed 3 times) and the two
	// keepers in rounds 2..6 (kept 10 times).
	if afterKept.Decided != 13 || afterKept.Contributed != 3 {
		t.Errorf("after a kept partner: got %d/%d contributed, want 3/13", afterKept.Contributed, afterKept.Decided)
	}
	// After a contribution: a in rounds 3,5 (2 contributions) and b in
	// rounds 2..6 (contributed in 2,4,6: 3 of 5).
	if afterContributed.Decided != 7 || afterContributed.Contributed != 5 {
		t.Errorf("after a contributing partner: got %d/%d contributed, want 5/7", afterContributed.Contributed, afterContributed.Decided)
	}
	if _, err := s.Record(make([]agent.Choice, 4), nil); err == nil {
		t.Error("a seventh round of a six-round game: got no error, want one")
	}
}

// The distinct prompts a round reports are the distinct (persona, context)
// pairs of the agents' rendered prompts.
func TestDistinctPrompts(t *testing.T) {
	for _, memory := range []int{0, 1, 3} {
		t.Run(fmt.Sprint(memory), func(t *testing.T) {
			ps := personas(400, 8)
			cfg := config(games.Random)
			cfg.Memory, cfg.ShowRate = memory, true
			s, _ := games.NewSession(cfg, ps, nil)
			r := rand.New(rand.NewPCG(1, 2))
			for !s.Done() {
				seen := map[string]bool{}
				for a := range ps {
					seen[ps[a].Code()+"\x00"+s.View(a).Context(nil)] = true
				}
				d, pr := randomDecisions(r, len(ps))
				round, err := s.Record(d, pr)
				if err != nil {
					t.Fatal(err)
				}
				if round.DistinctPrompts != len(seen) {
					t.Fatalf("round %d: got %d distinct prompts, want %d", round.Round, round.DistinctPrompts, len(seen))
				}
				if round.Round == 1 && round.DistinctPrompts > values.N+1 {
					t.Errorf("round 1: got %d distinct prompts, want at most one per persona", round.DistinctPrompts)
				}
				if memory == 0 && round.DistinctPrompts > values.N+1 {
					t.Errorf("without memory: got %d distinct prompts, want at most one per persona", round.DistinctPrompts)
				}
			}
		})
	}
}

func TestGini(t *testing.T) {
	cases := []struct {
		xs   []int64
		want float64
	}{
		{[]int64{5, 5, 5, 5}, 0},
		{[]int64{0, 0, 0, 10}, 0.75},
		{[]int64{1, 2, 3, 4}, 0.25},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.xs), func(t *testing.T) {
			if got := games.Gini(c.xs); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	if !math.IsNaN(games.Gini(nil)) {
		t.Error("Gini of nothing: got a number, want NaN")
	}
}

func TestTemplates(t *testing.T) {
	signs, cosine := games.TheorySigns(), games.TheoryCosine()
	if got := games.TemplateCorrelation(signs, signs); math.Abs(got-1) > 1e-12 {
		t.Errorf("signs with themselves: got %v, want 1", got)
	}
	var neg [values.N]float64
	for i := range cosine {
		neg[i] = -cosine[i]
	}
	if got := games.TemplateCorrelation(neg, cosine); math.Abs(got+1) > 1e-12 {
		t.Errorf("reversed cosine: got %v, want -1", got)
	}
	for _, v := range []values.Value{values.Universalism, values.Benevolence} {
		if signs[v] != 1 || cosine[v] < 0.9 {
			t.Errorf("%s: got sign %v cosine %.2f, want +1 and near 1", v, signs[v], cosine[v])
		}
	}
	for _, v := range []values.Value{values.Power, values.Achievement, values.Hedonism} {
		if signs[v] != -1 || cosine[v] > -0.5 {
			t.Errorf("%s: got sign %v cosine %.2f, want -1 and clearly negative", v, signs[v], cosine[v])
		}
	}
	if got := games.TemplateCorrelation(signs, cosine); got < 0.8 {
		t.Errorf("the two templates: got r = %.2f, want them to agree (>= 0.8)", got)
	}
	var few [values.N]float64
	for i := range few {
		few[i] = math.NaN()
	}
	few[0], few[1] = 0.2, 0.4
	if !math.IsNaN(games.TemplateCorrelation(few, signs)) {
		t.Error("two rates: got a correlation, want NaN")
	}
}

func TestInstruments(t *testing.T) {
	probable, decision, err := games.Instruments(20)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{probable.Instruction, probable.Items[0].Text, decision.Instruction, decision.Items[0].Text} {
		if !strings.Contains(in, "20 points") || strings.Contains(in, "15") {
			t.Errorf("got %q, want the endowment of 20 points", in)
		}
	}
	if _, _, err := games.Instruments(15); err != nil {
		t.Fatal(err)
	}
}

func TestConfigCheck(t *testing.T) {
	bad := []games.Config{
		{Rounds: 0, Endowment: 15, Pairing: games.Random},
		{Rounds: 1, Endowment: 0, Pairing: games.Random},
		{Rounds: 1, Endowment: 15, Pairing: "grid"},
		{Rounds: 1, Endowment: 15, Pairing: games.Random, Memory: agent.MaxMemory + 1},
		{Rounds: 1, Endowment: 15, Pairing: games.SmallWorld, Neighbours: 3},
	}
	for i, c := range bad {
		if c.Check() == nil {
			t.Errorf("config %d %+v: got no error, want one", i, c)
		}
	}
	if _, err := games.NewPairer(config(games.Random), personas(1, 1)); err == nil {
		t.Error("one player: got no error, want one")
	}
}
