package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
)

// gameRun is the orchestrator's side of the scenario's Paired Charity Game:
// for every model a session that follows the game from the collected
// decisions, and the memories each round's tasks carry.
type gameRun struct {
	games    []analysis.CharityGame
	sessions []*games.Session
	styles   map[string]agent.Style
	agents   int
	// onRound is told about every round recorded (metrics).
	onRound func(game string, round int, byValue map[string]float64)

	// Set by a round's before for its tasks.
	mems  [][]agent.Memory // by game, by agent
	rate  []int
	shown []bool
}

// addGames adds the scenario's game to a plan: its instruments, its plans
// in the study, and one phase per round after the questionnaires. Each
// phase's before reads the previous round's decisions from the collector,
// so a round's prompts always follow from the stored answers.
func addGames(sc *scenarios.Scenario, p *plan) error {
	cfg, ok := sc.GameConfig()
	if !ok {
		return nil
	}
	g := sc.Games.PairedCharity
	probable, decision, err := games.Instruments(cfg.Endowment)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadInput, err)
	}
	for _, in := range []*questionnaires.Instrument{probable, decision} {
		if have, ok := p.instruments[in.Name]; ok && have != in {
			return sc.Problem("games.paired_charity", fmt.Sprintf("the game's %s instrument differs from the questionnaire of that name (a file, or an endowment other than 15); remove one", in.Name))
		}
		p.instruments[in.Name] = in
	}
	pool := p.study.Pool
	gr := &gameRun{styles: p.styles, agents: pool.Size()}
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
		p.study.Plans = append(p.study.Plans, cg.AllPlans()...)
	}
	p.study.Games = append(p.study.Games, gr.games...)
	gr.mems = make([][]agent.Memory, len(gr.games))
	gr.rate, gr.shown = make([]int, len(gr.games)), make([]bool, len(gr.games))
	for r := 1; r <= cfg.Rounds; r++ {
		var plans []analysis.Plan
		for i := range gr.games {
			plans = append(plans, gr.games[i].Plans(r)...)
		}
		p.phases = append(p.phases, phase{plans: plans, before: gr.before(r), tasks: gr.tasks(r)})
	}
	// A closing phase without tasks records the last round.
	p.phases = append(p.phases, phase{before: gr.before(cfg.Rounds + 1), tasks: func(int, int) []bus.TaskMsg { return nil }})
	p.games = gr
	return checkMemory(sc, totalItems(p))
}

// observe sets the function told about every round recorded; a nil
// gameRun (no game) ignores it.
func (gr *gameRun) observe(fn func(game string, round int, byValue map[string]float64)) {
	if gr != nil {
		gr.onRound = fn
	}
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
				if gr.onRound != nil {
					byValue := make(map[string]float64, len(round.ByValue))
					for v, rate := range round.ByValue {
						if rate.Decided > 0 {
							byValue[population.Persona(v).Code()] = rate.Value()
						}
					}
					gr.onRound(gr.gameLabel(i), round.Round, byValue)
				}
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

// tasks makes round r's task messages for the shard of agents [lo, hi):
// one per model, with the agents' memories.
func (gr *gameRun) tasks(r int) func(lo, hi int) []bus.TaskMsg {
	return func(lo, hi int) []bus.TaskMsg {
		out := make([]bus.TaskMsg, 0, len(gr.games))
		for i, g := range gr.games {
			out = append(out, bus.TaskMsg{Model: g.Model, Instrument: g.Probable.Name, Items: []int{0}, Round: r,
				Style: string(gr.styles[g.Model]),
				Game: &bus.GameMsg{Decision: g.Decision.Name, First: lo, Memories: agent.AppendMemories(nil, gr.mems[i][lo:hi]),
					RateShown: gr.shown[i], Rate: gr.rate[i]}})
		}
		return out
	}
}

// publishPhase queues a phase's tasks in the run's work queue: one per plan
// and shard, or the phase's own messages (a game round) for each shard of
// agents. It waits until the stream has stored every task, publishing
// again what a busy server did not acknowledge (bus.PublishTasks), so that
// a slow machine makes the run slower, never failed.
func publishPhase(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, subj bus.Subjects, wave string, ph phase, styles map[string]agent.Style, shards, agents int) error {
	var tasks []bus.TaskMsg
	if ph.tasks == nil {
		for _, pl := range ph.plans {
			for s := range shards {
				tasks = append(tasks, bus.TaskMsg{Model: pl.Model, Instrument: pl.Instrument.Name, Items: pl.Items,
					Round: pl.Round, Shard: s, Style: string(styles[pl.Model])})
			}
		}
	} else {
		for s := range shards {
			lo, hi := s*agents/shards, (s+1)*agents/shards
			for _, msg := range ph.tasks(lo, hi) {
				msg.Shard = s
				if size, limit := int64(len(bus.EncodeTask(msg))), nc.MaxPayload(); size > limit {
					return fmt.Errorf("publish tasks: a game round for shard %d is %d bytes, more than the server's %d; use more shards (run.shards)", s, size, limit)
				}
				tasks = append(tasks, msg)
			}
		}
	}
	return bus.PublishTasks(ctx, js, subj, wave, tasks, nil)
}

// printGames adds the games to the run's summary: a few lines per game.
func printGames(w io.Writer, res *analysis.Results) {
	if res.Games == nil {
		return
	}
	for _, g := range res.Games.PairedCharity {
		label := ""
		if g.Synthetic {
			label = " (synthetic respondents)"
		}
		first, last := math.NaN(), math.NaN()
		if n := len(g.PerRound); n > 0 {
			first, last = float64(g.PerRound[0].Cooperation), float64(g.PerRound[n-1].Cooperation)
		}
		fmt.Fprintf(w, "\nPaired Charity Game, %s%s: %d players, %d rounds, %s pairing.\n", g.Model, label, g.Players, g.Rounds, g.Pairing)
		fmt.Fprintf(w, "  cooperation %.3f (round 1 %.3f, round %d %.3f); %d points to causes; accounts conserved: %v\n",
			float64(g.Cooperation), first, g.Rounds, last, g.CharityTotal, g.Conserved)
		fmt.Fprintf(w, "  after a contributing partner %.3f, after a keeping one %.3f; fit to the study's finding r = %.3f (signs)\n",
			float64(g.Conditional.AfterPartnerContributed), float64(g.Conditional.AfterPartnerKept), float64(g.Theory.RSigns))
	}
}
