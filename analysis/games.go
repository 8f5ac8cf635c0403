package analysis

import (
	"fmt"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// CharityGame is one model's Paired Charity Game in a run: the agents of
// one strategy play Config.Rounds rounds, numbered 1…Rounds in the answers
// (questionnaires are round 0). Each round is two sheets: the probable
// choice and the final decision.
type CharityGame struct {
	Model string
	// Strategy names the playing strategy; Member is its index in the
	// pool's strategies.
	Strategy string
	Member   int
	Config   games.Config
	Probable *questionnaires.Instrument
	Decision *questionnaires.Instrument
}

// StrategyMember finds the pool member that serves strategy for model.
func StrategyMember(pool *population.Pool, strategy, model string) (int, bool) {
	for i, m := range pool.Strategies {
		if name, ok := ScopedStrategy(m.Name, model); ok && name == strategy {
			return i, true
		}
	}
	return 0, false
}

// Plans are the answers a round expects: every agent's probable choice and
// final decision.
func (g *CharityGame) Plans(round int) []Plan {
	return []Plan{
		{Model: g.Model, Instrument: g.Probable, Items: []int{0}, Round: round},
		{Model: g.Model, Instrument: g.Decision, Items: []int{0}, Round: round},
	}
}

// AllPlans are the plans of every round.
func (g *CharityGame) AllPlans() []Plan {
	var out []Plan
	for r := 1; r <= g.Config.Rounds; r++ {
		out = append(out, g.Plans(r)...)
	}
	return out
}

// NewSession starts the game's session over the pool.
func (g *CharityGame) NewSession(pool *population.Pool) (*games.Session, error) {
	s, err := games.NewSession(g.Config, pool.Persona, games.Players(pool, g.Member))
	if err != nil {
		return nil, fmt.Errorf("game of %s: %w", g.Model, err)
	}
	return s, nil
}

// Record plays the session's next round from the answers collected for it,
// which must be complete.
func (g *CharityGame) Record(s *games.Session, c *Collector) (games.Round, error) {
	r := s.Next()
	sheets := c.Sheets(g.Plans(r))
	if len(sheets) != 2 || !c.Complete(g.Plans(r)[0]) || !c.Complete(g.Plans(r)[1]) {
		return games.Round{}, fmt.Errorf("game of %s: round %d: answers incomplete", g.Model, r)
	}
	probable, decision := sheets[0], sheets[1]
	n := c.Agents()
	d := make([]agent.Choice, n)
	p := make([]int, n)
	pn, dn := len(probable.Instrument.Items), len(decision.Instrument.Items)
	for a := range n {
		d[a] = games.Decision(decision.Codes[a*dn])
		if code := probable.Codes[a*pn]; code != 0 {
			p[a] = int(code) - 1 + probable.Instrument.Scale.Min
		}
	}
	return s.Record(d, p)
}

// Replay plays the whole game again from the collected answers: the same
// answers give the same game, whatever order they arrived in.
func (g *CharityGame) Replay(pool *population.Pool, c *Collector) (*games.Session, error) {
	s, err := g.NewSession(pool)
	if err != nil {
		return nil, err
	}
	for !s.Done() {
		if _, err := g.Record(s, c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Games is the "games" object of results.json.
type Games struct {
	PairedCharity []CharityResult `json:"paired_charity"`
}

// CharityResult is one model's Paired Charity Game.
type CharityResult struct {
	Model     string `json:"model"`
	Strategy  string `json:"strategy"`
	Synthetic bool   `json:"synthetic"`
	Agents    int    `json:"agents"`
	Players   int    `json:"players"`
	Rounds    int    `json:"rounds"`
	Endowment int    `json:"endowment"`
	Pairing   string `json:"pairing"`
	Memory    int    `json:"memory"`
	ShowRate  bool   `json:"show_rate"`

	PerRound []CharityRound `json:"per_round"`
	// Cooperation is the share of valid decisions that were contributions
	// over all rounds; Conserved says every round's accounts add up.
	Cooperation  Num                    `json:"cooperation"`
	CharityTotal int64                  `json:"charity_total"`
	PayoffTotal  int64                  `json:"payoff_total"`
	Gini         Num                    `json:"gini"`
	Conserved    bool                   `json:"conserved"`
	Conditional  ConditionalCooperation `json:"conditional_cooperation"`
	Theory       TheoryFit              `json:"theory"`
	Payoffs      []PayoffRow            `json:"payoffs"`
}

// CharityRound is one round of the game.
type CharityRound struct {
	Round       int            `json:"round"`
	Players     int            `json:"players"`
	SatOut      int            `json:"sat_out"`
	OffNetwork  int            `json:"off_network"`
	Contributed int            `json:"contributed"`
	Kept        int            `json:"kept"`
	NoDecision  int            `json:"no_decision"`
	Cooperation Num            `json:"cooperation"`
	ByValue     map[string]Num `json:"by_value"`
	ByGroup     map[string]Num `json:"by_group"`
	Charity     int64          `json:"charity"`
	Payoffs     int64          `json:"payoffs"`
	Gini        Num            `json:"gini"`
	// MeanProbable is the players' mean probable choice (1 keep … 7 donate).
	MeanProbable Num `json:"mean_probable"`
	// DistinctPrompts counts the distinct (persona, context) prompts of
	// the probable choice among every agent asked; DecisionPrompts those
	// of the final decision, whose context adds the probable choice.
	DistinctPrompts int  `json:"distinct_prompts"`
	DecisionPrompts int  `json:"distinct_decision_prompts"`
	Conserved       bool `json:"conserved"`
}

// ConditionalCooperation compares contributing after the last partner
// contributed with contributing after it kept.
type ConditionalCooperation struct {
	AfterPartnerContributed Num `json:"after_partner_contributed"`
	AfterPartnerKept        Num `json:"after_partner_kept"`
	// Difference is the first minus the second: positive for conditional
	// cooperators.
	Difference        Num `json:"difference"`
	NAfterContributed int `json:"n_after_contributed"`
	NAfterKept        int `json:"n_after_kept"`
}

// TheoryFit correlates the values' contribution rates with the theory
// templates of the study's human finding.
type TheoryFit struct {
	ReferenceKind string             `json:"reference_kind"`
	Citation      string             `json:"citation"`
	Rates         map[string]Num     `json:"contribution_rates"`
	Signs         map[string]float64 `json:"signs"`
	Cosine        map[string]Num     `json:"cosine"`
	RSigns        Num                `json:"r_signs"`
	RCosine       Num                `json:"r_cosine"`
}

// PayoffRow is one persona's line of the payoff table.
type PayoffRow struct {
	Persona     string `json:"persona"`
	Players     int    `json:"players"`
	Cooperation Num    `json:"cooperation"`
	MeanPayoff  Num    `json:"mean_payoff"`
	Given       int64  `json:"given"`
}

// computeGames replays every game of the study from the collected answers.
func (st *Study) computeGames(c *Collector) (*Games, error) {
	if len(st.Games) == 0 {
		return nil, nil
	}
	out := &Games{PairedCharity: []CharityResult{}}
	for i := range st.Games {
		g := &st.Games[i]
		s, err := g.Replay(st.Pool, c)
		if err != nil {
			return nil, err
		}
		res := charityResult(g, s)
		for _, m := range st.Models {
			if m.Name == g.Model {
				res.Synthetic = m.Synthetic
			}
		}
		out.PairedCharity = append(out.PairedCharity, res)
	}
	return out, nil
}

func charityResult(g *CharityGame, s *games.Session) CharityResult {
	cfg := s.Config()
	res := CharityResult{Model: g.Model, Strategy: g.Strategy, Agents: s.Agents(), Players: len(s.Players()),
		Rounds: cfg.Rounds, Endowment: cfg.Endowment, Pairing: string(cfg.Pairing), Memory: cfg.Memory, ShowRate: cfg.ShowRate,
		PerRound: []CharityRound{}, Conserved: true}
	var total games.Rate
	var byValue [values.N + 1]games.Rate
	for _, r := range s.Rounds() {
		cr := CharityRound{Round: r.Round, Players: r.Players, SatOut: r.SatOut, OffNetwork: r.OffNetwork,
			Contributed: r.Contributed, Kept: r.Kept, NoDecision: r.NoDecision, Cooperation: Num(r.Cooperation.Value()),
			ByValue: map[string]Num{}, ByGroup: map[string]Num{}, Charity: r.Charity, Payoffs: r.Payoffs, Gini: Num(r.Gini),
			MeanProbable: Num(r.MeanProbable), DistinctPrompts: r.DistinctPrompts, DecisionPrompts: r.DecisionPrompts,
			Conserved: r.Conserved(cfg.Endowment)}
		for i, rate := range r.ByValue {
			if rate.Decided > 0 {
				cr.ByValue[population.Persona(i).Code()] = Num(rate.Value())
			}
			byValue[i].Contributed += rate.Contributed
			byValue[i].Decided += rate.Decided
		}
		for gi, rate := range r.ByGroup {
			if rate.Decided > 0 {
				cr.ByGroup[values.Group(gi).Code()] = Num(rate.Value())
			}
		}
		total.Contributed += r.Cooperation.Contributed
		total.Decided += r.Cooperation.Decided
		res.CharityTotal += r.Charity
		res.PayoffTotal += r.Payoffs
		res.Conserved = res.Conserved && cr.Conserved
		res.PerRound = append(res.PerRound, cr)
	}
	res.Cooperation = Num(total.Value())
	afterKept, afterContributed := s.Conditional()
	res.Conditional = ConditionalCooperation{
		AfterPartnerContributed: Num(afterContributed.Value()), AfterPartnerKept: Num(afterKept.Value()),
		Difference:        Num(afterContributed.Value() - afterKept.Value()),
		NAfterContributed: afterContributed.Decided, NAfterKept: afterKept.Decided,
	}
	var rates [values.N]float64
	fit := TheoryFit{ReferenceKind: "theory", Citation: games.TheoryCitation, Rates: map[string]Num{},
		Signs: map[string]float64{}, Cosine: map[string]Num{}}
	signs, cosine := games.TheorySigns(), games.TheoryCosine()
	for _, v := range values.All() {
		rates[v] = byValue[v].Value()
		fit.Rates[v.Code()] = Num(rates[v])
		fit.Signs[v.Code()] = signs[v]
		fit.Cosine[v.Code()] = Num(cosine[v])
	}
	fit.RSigns, fit.RCosine = Num(games.TemplateCorrelation(rates, signs)), Num(games.TemplateCorrelation(rates, cosine))
	res.Theory = fit
	rows, gini := s.Payoffs()
	res.Gini = Num(gini)
	for _, row := range rows {
		res.Payoffs = append(res.Payoffs, PayoffRow{Persona: row.Persona.Code(), Players: row.Players,
			Cooperation: Num(row.Cooperation.Value()), MeanPayoff: Num(row.MeanPayoff), Given: row.Given})
	}
	return res
}
