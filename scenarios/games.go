package scenarios

import (
	"slices"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
)

// Games are the games a population plays after its questionnaires.
type Games struct {
	PairedCharity *PairedCharity `toml:"paired_charity,omitempty"`
}

// PairedCharity is rounds of the Paired Charity Game played across the
// population (see package games).
type PairedCharity struct {
	Rounds    int           `toml:"rounds"`
	Endowment int           `toml:"endowment"`
	Pairing   games.Pairing `toml:"pairing"`
	// Memory is how many past rounds each agent sees in its prompt.
	Memory int `toml:"memory"`
	// ShowRate shows every agent last round's cooperation rate.
	ShowRate bool `toml:"show_rate"`
	// Strategy is the population strategy whose agents play; it is always
	// one of population.strategies.
	Strategy population.Strategy `toml:"strategy"`
	// Neighbours and Rewire shape the small-world network.
	Neighbours int     `toml:"neighbours"`
	Rewire     float64 `toml:"rewire"`
}

// MaxEndowment bounds the endowment so that a game's payoffs stay exact in
// 64-bit sums over any population and number of rounds.
const MaxEndowment = 1_000_000

// MaxNeighbours bounds the small-world network's degree.
const MaxNeighbours = 1000

func (d *decoder) games(top table, pop Population) Games {
	t, ok := d.sub(top, "games")
	if !ok {
		return Games{}
	}
	d.known(t, "paired_charity")
	pc, ok := d.sub(t, "paired_charity")
	if !ok {
		return Games{}
	}
	d.known(pc, "rounds", "endowment", "pairing", "memory", "show_rate", "strategy", "neighbours", "rewire")
	g := &PairedCharity{Strategy: pop.Strategy, Rewire: games.DefaultRewire}
	g.Rounds = d.intIn(pc, "rounds", 1, games.MaxRounds, games.DefaultRounds)
	g.Endowment = d.intIn(pc, "endowment", 1, MaxEndowment, games.DefaultEndowment)
	g.Pairing = oneOf(d, pc, "pairing", games.Random, games.Pairings()...)
	g.Memory = d.intIn(pc, "memory", 0, agent.MaxMemory, games.DefaultMemory)
	if v, ok := pc.m["show_rate"]; ok {
		if b, isBool := v.(bool); isBool {
			g.ShowRate = b
		} else {
			d.wrongType(pc.field("show_rate"), "a boolean", v)
		}
	}
	if s, ok := d.str(pc, "strategy"); ok {
		st, err := population.ParseStrategy(s)
		switch {
		case err != nil:
			d.add(pc.field("strategy"), "%v", err)
		case !slices.Contains(pop.Strategies, st):
			d.add(pc.field("strategy"), "must be one of population.strategies (%s), got %q", strategyList(pop.Strategies), st)
		default:
			g.Strategy = st
		}
	}
	g.Neighbours = d.intIn(pc, "neighbours", 2, MaxNeighbours, games.DefaultNeighbours)
	if g.Neighbours%2 != 0 {
		d.add(pc.field("neighbours"), "must be even (half on each side of a seat), got %d", g.Neighbours)
		g.Neighbours = games.DefaultNeighbours
	}
	if x, ok := d.number(pc, "rewire"); ok {
		if x < 0 || x > 1 {
			d.add(pc.field("rewire"), "must be between 0 and 1, got %v", x)
		} else {
			g.Rewire = x
		}
	}
	// The network's shape applies only to the small-world pairing; the
	// defaults are accepted, as a resolved scenario.toml holds them.
	if g.Pairing != games.SmallWorld {
		if _, ok := pc.m["neighbours"]; ok && g.Neighbours != games.DefaultNeighbours {
			d.add(pc.field("neighbours"), "shapes the small-world network only, but pairing is %q; set pairing = %q or remove the key", g.Pairing, games.SmallWorld)
		}
		if _, ok := pc.m["rewire"]; ok && g.Rewire != games.DefaultRewire {
			d.add(pc.field("rewire"), "shapes the small-world network only, but pairing is %q; set pairing = %q or remove the key", g.Pairing, games.SmallWorld)
		}
	}
	if pop.Size < 2 {
		d.add(pc.path, "needs at least 2 agents to pair, but population.size is %d", pop.Size)
	}
	return Games{PairedCharity: g}
}

func strategyList(list []population.Strategy) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = string(s)
	}
	return listNames(names)
}

// GameConfig is the games package's configuration of the scenario's
// Paired Charity Game, seeded from the scenario seed.
func (s *Scenario) GameConfig() (games.Config, bool) {
	g := s.Games.PairedCharity
	if g == nil {
		return games.Config{}, false
	}
	return games.Config{Rounds: g.Rounds, Endowment: g.Endowment, Pairing: g.Pairing, Memory: g.Memory, ShowRate: g.ShowRate,
		Neighbours: g.Neighbours, Rewire: g.Rewire, Seed: s.Seed}, true
}
