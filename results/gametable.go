package results

import (
	"io"
	"strconv"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/games"
)

// sheetRef names one sheet of answers: a model's answers to an instrument
// in a round.
type sheetRef struct {
	model, instrument string
	round             int
}

// replayGame plays game g again from the collected answers and calls fn
// after each round with every agent's partner in it (-1: the agent sat the
// round out or does not play) and its payoff in the round (0 for those).
// The slices are reused from round to round.
func replayGame(o *analysis.Output, g *analysis.CharityGame, fn func(round int, partner []int32, payoff []int64) error) error {
	s, err := g.NewSession(o.Study.Pool)
	if err != nil {
		return err
	}
	n := o.Study.Pool.Size()
	partner, before, payoff := make([]int32, n), make([]int64, n), make([]int64, n)
	for !s.Done() {
		r := s.Next()
		for a := range n {
			partner[a], before[a] = int32(s.Partner(a)), s.TotalPayoff(a)
		}
		if _, err := g.Record(s, o.Collector); err != nil {
			return err
		}
		for a := range n {
			payoff[a] = s.TotalPayoff(a) - before[a]
		}
		if err := fn(r, partner, payoff); err != nil {
			return err
		}
	}
	return nil
}

// gamePlays gives each game sheet (both instruments of every round) a bit
// per agent, set when the agent played that round: agents of other
// strategies are asked too, and one player sits out each round of an odd
// number of players, but their answers enter no statistic.
func gamePlays(o *analysis.Output) (map[sheetRef][]uint64, error) {
	out := map[sheetRef][]uint64{}
	n := o.Study.Pool.Size()
	for i := range o.Study.Games {
		g := &o.Study.Games[i]
		err := replayGame(o, g, func(r int, partner []int32, _ []int64) error {
			bits := make([]uint64, (n+63)/64)
			for a, p := range partner {
				if p >= 0 {
					bits[a/64] |= 1 << (a % 64)
				}
			}
			out[sheetRef{g.Model, g.Probable.Name, r}] = bits
			out[sheetRef{g.Model, g.Decision.Name, r}] = bits
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// gamesHeader is the first line of games.csv.
const gamesHeader = "game,model,strategy,round,agent,persona,player,played,partner,probable,choice,payoff"

// writeGameDecisions writes games.csv: every agent asked in every round of
// every game, with its partner, probable choice, final decision and the
// payoff the round gave it. player says whether the agent belongs to the
// playing strategy, played whether it played this round (a player sits
// out each round when their number is odd); partner and payoff are empty
// when it did not play.
func writeGameDecisions(w io.Writer, o *analysis.Output) error {
	t := newCSVTable(w, gamesHeader)
	pool := o.Study.Pool
	for i := range o.Study.Games {
		g := &o.Study.Games[i]
		player := make([]bool, pool.Size())
		for _, a := range games.Players(pool, g.Member) {
			player[a] = true
		}
		err := replayGame(o, g, func(r int, partner []int32, payoff []int64) error {
			sheets := o.Collector.Sheets(g.Plans(r))
			probable, decision := sheets[0], sheets[1]
			pn, dn := len(probable.Instrument.Items), len(decision.Instrument.Items)
			round := strconv.Itoa(r)
			for a := range partner {
				prob := ""
				if code := probable.Codes[a*pn]; code != 0 {
					prob = strconv.Itoa(int(code) - 1 + probable.Instrument.Scale.Min)
				}
				choice := "no_decision"
				switch games.Decision(decision.Codes[a*dn]) {
				case agent.Kept:
					choice = "kept"
				case agent.Contributed:
					choice = "contributed"
				}
				played, mate, pay := "false", "", ""
				if partner[a] >= 0 {
					played, mate, pay = "true", strconv.Itoa(int(partner[a])), strconv.FormatInt(payoff[a], 10)
				}
				t.row("paired_charity", g.Model, g.Strategy, round, strconv.Itoa(a), pool.Persona[a].Code(),
					strconv.FormatBool(player[a]), played, mate, prob, choice, pay)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return t.close()
}
