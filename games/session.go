package games

import (
	"fmt"
	"math"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// Rate is a share of valid decisions that were contributions.
type Rate struct {
	Contributed int
	Decided     int // valid decisions: contributed or kept
}

// Value is the rate, NaN without decisions.
func (r Rate) Value() float64 {
	if r.Decided == 0 {
		return math.NaN()
	}
	return float64(r.Contributed) / float64(r.Decided)
}

func (r *Rate) add(c agent.Choice) {
	switch c {
	case agent.Contributed:
		r.Contributed++
		r.Decided++
	case agent.Kept:
		r.Decided++
	}
}

// Round is what happened in one round.
type Round struct {
	Round int
	// Players counts the paired players; SatOut is 1 when one sat out.
	Players, SatOut int
	// OffNetwork counts small-world pairs made off the network.
	OffNetwork                       int
	Contributed, Kept, NoDecision    int
	Cooperation                      Rate
	ByValue                          [values.N + 1]Rate // by persona index (population.Index order: the ten values, then none)
	ByGroup                          [values.NGroups]Rate
	Charity                          int64 // to the causes
	Payoffs                          int64 // sum of the players' payoffs
	Gini                             float64
	DistinctPrompts, DecisionPrompts int
	// MeanProbable is the mean probable choice (1–7) of the paired players
	// who gave a valid one; NaN when none did.
	MeanProbable float64
}

// Conserved checks the round's accounts against the rules: every paired
// player brings E, and every contribution is matched once more, so the
// payoffs and the charity add up to E·(players + contributors).
func (r *Round) Conserved(endowment int) bool {
	return r.Payoffs+r.Charity == int64(endowment)*int64(r.Players+r.Contributed) &&
		r.Charity == int64(endowment)*int64(r.Contributed) &&
		r.Contributed+r.Kept+r.NoDecision == r.Players
}

// Session plays a game forward from recorded decisions: it knows every
// player's history, what each remembers, every payoff, and the statistics
// so far. The orchestrator uses one to prepare each round's prompts and the
// analysis another to recompute the game from the stored answers; both see
// the same decisions and so the same game.
type Session struct {
	cfg     Config
	pairer  *Pairer
	persona []values.Value // by agent
	player  []int32        // agent of each player
	index   []int32        // player of each agent, -1 for agents who do not play

	round   int // rounds recorded
	next    Match
	mem     []agent.Memory // full memory after the recorded rounds, by agent
	rate    int            // last round's rate in whole percent
	hasRate bool

	payoff      []int64 // cumulative, by agent
	contributed []int32 // contributions, by agent
	kept        []int32 // keeps, by agent
	cond        [2]Rate // [0] after the partner kept, [1] after it contributed
	rounds      []Round
}

// NewSession starts a game in a population of agents with the given
// personas (by agent id) among the listed players (agent ids, ascending;
// nil: every agent plays). Agents who do not play are asked like the
// player who sits out: they remember each round as one they sat out.
func NewSession(cfg Config, personas []values.Value, players []int32) (*Session, error) {
	n := len(personas)
	if players == nil {
		players = make([]int32, n)
		for i := range players {
			players[i] = int32(i)
		}
	}
	index := make([]int32, n)
	for i := range index {
		index[i] = -1
	}
	pp := make([]values.Value, len(players))
	for i, a := range players {
		if a < 0 || int(a) >= n || (i > 0 && a <= players[i-1]) {
			return nil, fmt.Errorf("players must be ascending agent ids below %d", n)
		}
		index[a] = int32(i)
		pp[i] = personas[a]
	}
	p, err := NewPairer(cfg, pp)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, pairer: p, persona: personas, player: players, index: index, mem: make([]agent.Memory, n),
		payoff: make([]int64, n), contributed: make([]int32, n), kept: make([]int32, n)}
	s.next, err = p.Round(1)
	return s, err
}

// Partner is agent a's partner in the next round, or -1 when it sits out
// or does not play.
func (s *Session) Partner(a int) int {
	i := s.index[a]
	if i < 0 {
		return -1
	}
	q := s.next.Partner[i]
	if q < 0 {
		return -1
	}
	return int(s.player[q])
}

// Agents is the population size.
func (s *Session) Agents() int { return len(s.persona) }

// Players lists the agents who play.
func (s *Session) Players() []int32 { return s.player }

// Config is the session's game.
func (s *Session) Config() Config { return s.cfg }

// Next is the number of the round to be played next (from 1).
func (s *Session) Next() int { return s.round + 1 }

// Done reports whether every round has been recorded.
func (s *Session) Done() bool { return s.round >= s.cfg.Rounds }

// Memory is what agent a sees of its past in the next round: its last
// Config.Memory rounds.
func (s *Session) Memory(a int) agent.Memory { return s.mem[a].Window(s.cfg.Memory) }

// RateShown returns the rate shown in the next round's prompts, and whether
// one is shown (never in the first round).
func (s *Session) RateShown() (int, bool) { return s.rate, s.cfg.ShowRate && s.hasRate }

// Record plays the next round with the agents' final decisions and
// probable choices (by agent id; a probable choice of 0 is invalid; what
// agents who sit out or do not play answered is ignored) and returns the
// round.
func (s *Session) Record(decisions []agent.Choice, probable []int) (Round, error) {
	n := len(s.persona)
	if len(decisions) != n || (probable != nil && len(probable) != n) {
		return Round{}, fmt.Errorf("round %d: got %d decisions and %d probable choices for %d agents", s.Next(), len(decisions), len(probable), n)
	}
	if s.Done() {
		return Round{}, fmt.Errorf("round %d: the game has only %d rounds", s.Next(), s.cfg.Rounds)
	}
	e := int64(s.cfg.Endowment)
	m := s.next
	r := Round{Round: s.Next(), OffNetwork: m.OffNetwork}
	pay := make([]int64, 0, n)
	var probSum float64
	var probN int
	for i := range n {
		partner := s.Partner(i)
		if partner < 0 {
			if s.index[i] >= 0 {
				r.SatOut++
			}
			continue
		}
		r.Players++
		d, pd := decisions[i], decisions[partner]
		var p int64
		switch d {
		case agent.Contributed:
			r.Contributed++
			r.Charity += e
			s.contributed[i]++
		case agent.Kept:
			r.Kept++
			p += e
			s.kept[i]++
		default:
			// No valid decision: nothing was contributed, so the
			// endowment stays with the player.
			r.NoDecision++
			d = agent.NoDecision
			p += e
		}
		if pd == agent.Contributed {
			p += e
		}
		pay = append(pay, p)
		s.payoff[i] += p
		r.Payoffs += p
		r.Cooperation.add(d)
		v := s.persona[i]
		r.ByValue[personaIndex(v)].add(d)
		for _, g := range v.Groups() {
			r.ByGroup[g].add(d)
		}
		// Conditional cooperation: what the player does after seeing its
		// last partner contribute or keep.
		if own, last := s.mem[i].At(1); own != agent.NoChoice {
			switch last {
			case agent.Kept:
				s.cond[0].add(d)
			case agent.Contributed:
				s.cond[1].add(d)
			}
		}
		if probable != nil && probable[i] >= 1 && probable[i] <= 7 {
			probSum += float64(probable[i])
			probN++
		}
	}
	r.MeanProbable = math.NaN()
	if probN > 0 {
		r.MeanProbable = probSum / float64(probN)
	}
	r.Gini = Gini(pay)

	// Prompts of the round, from the memories every agent asked saw.
	type pk struct {
		v values.Value
		m agent.Memory
	}
	type dk struct {
		pk
		p int
	}
	prompts, dprompts := map[pk]struct{}{}, map[dk]struct{}{}
	for i := range n {
		k := pk{s.persona[i], s.Memory(i)}
		prompts[k] = struct{}{}
		p := 0
		if probable != nil {
			p = probable[i]
		}
		dprompts[dk{k, p}] = struct{}{}
	}
	r.DistinctPrompts, r.DecisionPrompts = len(prompts), len(dprompts)

	// Remember the round.
	for i := range n {
		partner := s.Partner(i)
		if partner < 0 {
			s.mem[i] = s.mem[i].Push(agent.NoChoice, agent.NoChoice)
			continue
		}
		s.mem[i] = s.mem[i].Push(normal(decisions[i]), normal(decisions[partner]))
	}
	s.rate, s.hasRate = 0, false
	if v := r.Cooperation.Value(); !math.IsNaN(v) {
		s.rate, s.hasRate = int(math.Round(100*v)), true
	}
	s.rounds = append(s.rounds, r)
	s.round++
	if !s.Done() {
		var err error
		if s.next, err = s.pairer.Round(s.Next()); err != nil {
			return r, err
		}
	}
	return r, nil
}

func normal(c agent.Choice) agent.Choice {
	if c == agent.Kept || c == agent.Contributed {
		return c
	}
	return agent.NoDecision
}

func personaIndex(v values.Value) int {
	if !v.Valid() {
		return values.N
	}
	return int(v)
}

// TotalPayoff is agent a's payoff summed over the rounds recorded (0 for
// an agent who does not play); results' games.csv takes each round's from
// it.
func (s *Session) TotalPayoff(a int) int64 { return s.payoff[a] }

// Rounds returns the rounds recorded so far.
func (s *Session) Rounds() []Round { return s.rounds }

// Conditional returns the cooperation of players after their last partner
// kept and after it contributed.
func (s *Session) Conditional() (afterKept, afterContributed Rate) { return s.cond[0], s.cond[1] }

// PersonaRow is one line of the payoff table: the players of one persona
// over the whole game.
type PersonaRow struct {
	Persona     values.Value
	Players     int
	Cooperation Rate
	// MeanPayoff is the mean of the players' total payoffs; Given is
	// what they gave to causes in all.
	MeanPayoff float64
	Given      int64
}

// Payoffs returns the payoff table by persona (the ten values in circular
// order, then none; personas without players are left out) and the Gini
// coefficient of the players' total payoffs.
func (s *Session) Payoffs() ([]PersonaRow, float64) {
	var rows [values.N + 1]PersonaRow
	for i := range rows {
		rows[i].Persona = values.Value(i)
		if i == values.N {
			rows[i].Persona = values.None
		}
	}
	var sum [values.N + 1]int64
	pay := make([]int64, 0, len(s.player))
	for _, a := range s.player {
		i, v := int(a), s.persona[a]
		pay = append(pay, s.payoff[i])
		row := &rows[personaIndex(v)]
		row.Players++
		row.Cooperation.Contributed += int(s.contributed[i])
		row.Cooperation.Decided += int(s.contributed[i] + s.kept[i])
		row.Given += int64(s.contributed[i]) * int64(s.cfg.Endowment)
		sum[personaIndex(v)] += s.payoff[i]
	}
	var out []PersonaRow
	for i := range rows {
		if rows[i].Players == 0 {
			continue
		}
		rows[i].MeanPayoff = float64(sum[i]) / float64(rows[i].Players)
		out = append(out, rows[i])
	}
	return out, Gini(pay)
}
