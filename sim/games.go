package sim

import (
	"context"
	"fmt"
	"slices"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
)

// gameRun is the run's side of the scenario's Paired Charity Game: for
// every model a session that follows the game from the collected
// decisions, and the memories each round's tasks carry.
type gameRun struct {
	games    []analysis.CharityGame
	sessions []*games.Session
	styles   map[string]agent.Style
	agents   int
	// rounds are the rounds recorded since the last call of recorded.
	rounds []Round

	// Set by a round's before for its tasks.
	mems  [][]agent.Memory // by game, by agent
	rate  []int
	shown []bool
}

// addGames adds the scenario's game to a plan: its instruments, its plans
// in the study, and one phase per round after the questionnaires. Each
// phase's before reads the previous round's decisions from the collector,
// so a round's prompts always follow from the stored answers.
func addGames(sc *scenarios.Scenario, p *Plan) error {
	cfg, ok := sc.GameConfig()
	if !ok {
		return nil
	}
	g := sc.Games.PairedCharity
	probable, decision, err := games.Instruments(cfg.Endowment)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	for _, in := range []*questionnaires.Instrument{probable, decision} {
		if have, ok := p.Instruments[in.Name]; ok && have != in {
			return sc.Problem("games.paired_charity", fmt.Sprintf("the game's %s instrument differs from the questionnaire of that name (a file, or an endowment other than 15); remove one", in.Name))
		}
		p.Instruments[in.Name] = in
	}
	pool := p.Study.Pool
	gr := &gameRun{styles: p.Styles, agents: pool.Size()}
	for _, m := range sc.Models {
		member, ok := analysis.StrategyMember(pool, string(g.Strategy), m.Name)
		if !ok {
			return sc.Problem("games.paired_charity.strategy", fmt.Sprintf("strategy %q has no agents for model %q", g.Strategy, m.Name))
		}
		cg := analysis.CharityGame{Model: m.Name, Strategy: string(g.Strategy), Member: member, Config: cfg,
			Probable: probable, Decision: decision}
		s, err := cg.NewSession(pool)
		if err != nil {
			return sc.Problem("games.paired_charity.strategy", err.Error())
		}
		gr.games = append(gr.games, cg)
		gr.sessions = append(gr.sessions, s)
		p.Study.Plans = append(p.Study.Plans, cg.AllPlans()...)
	}
	p.Study.Games = append(p.Study.Games, gr.games...)
	gr.mems = make([][]agent.Memory, len(gr.games))
	gr.rate, gr.shown = make([]int, len(gr.games)), make([]bool, len(gr.games))
	for r := 1; r <= cfg.Rounds; r++ {
		var plans []analysis.Plan
		for i := range gr.games {
			plans = append(plans, gr.games[i].Plans(r)...)
		}
		p.Phases = append(p.Phases, Phase{Plans: plans, before: gr.before(r), tasks: gr.tasks(r)})
	}
	// A closing phase without tasks records the last round.
	p.Phases = append(p.Phases, Phase{before: gr.before(cfg.Rounds + 1), tasks: func(int, int) []Task { return nil }})
	p.games = gr
	return checkMemory(sc, p.TotalItems())
}

// recorded returns the rounds recorded since it was last called (none
// without a game).
func (gr *gameRun) recorded() []Round {
	if gr == nil {
		return nil
	}
	out := gr.rounds
	gr.rounds = nil
	return out
}

// gameLabel names a game in metrics: the game, and the model when several
// play it.
func (gr *gameRun) gameLabel(i int) string {
	if len(gr.games) == 1 {
		return "paired_charity"
	}
	return "paired_charity@" + gr.games[i].Model
}

// before prepares round r: it records round r−1 of every session from the
// collector and takes every agent's memory and the rate to show.
func (gr *gameRun) before(r int) func(context.Context, *analysis.Collector) error {
	return func(_ context.Context, col *analysis.Collector) error {
		for i := range gr.games {
			s := gr.sessions[i]
			for s.Next() < r {
				round, err := gr.games[i].Record(s, col)
				if err != nil {
					return err
				}
				byValue := make(map[string]float64, len(round.ByValue))
				for v, rate := range round.ByValue {
					if rate.Decided > 0 {
						byValue[population.Persona(v).Code()] = rate.Value()
					}
				}
				gr.rounds = append(gr.rounds, Round{Game: gr.gameLabel(i), Round: round.Round, ByValue: byValue})
			}
			if r > gr.games[i].Config.Rounds {
				continue
			}
			if gr.mems[i] == nil {
				gr.mems[i] = make([]agent.Memory, gr.agents)
			}
			for a := range gr.mems[i] {
				gr.mems[i][a] = s.Memory(a)
			}
			gr.rate[i], gr.shown[i] = s.RateShown()
		}
		return nil
	}
}

// tasks makes round r's tasks for the shard of agents [lo, hi): one per
// model, with the agents' memories (a copy: the next round overwrites
// them while a dispatcher may still hold this round's).
func (gr *gameRun) tasks(r int) func(lo, hi int) []Task {
	return func(lo, hi int) []Task {
		out := make([]Task, 0, len(gr.games))
		for i, g := range gr.games {
			out = append(out, Task{Model: g.Model, Instrument: g.Probable.Name, Items: []int{0}, Round: r,
				Style: gr.styles[g.Model],
				Game: &GameRound{Decision: g.Decision.Name, First: lo, Memories: slices.Clone(gr.mems[i][lo:hi]),
					RateShown: gr.shown[i], Rate: gr.rate[i]}})
		}
		return out
	}
}
