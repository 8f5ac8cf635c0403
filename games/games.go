// Package games owns the Paired Charity Game played by a society of agents
// over rounds: who plays whom in each round (pairing schemes on the whole
// population or on a ring or small-world network of it), the payoffs and
// the money that goes to charity, each player's history and what it
// remembers of it, and the statistics of every round.
//
// # The game
//
// Each round every player is paired with a partner and holds an endowment E
// (15 points by default). It keeps E, or contributes it: then its partner
// receives E and another E goes to a social cause the player names. A
// player's payoff in a round is E if it kept, plus E if its partner
// contributed; the cause receives E per contribution. So in every round
//
//	Σ payoffs + charity = E · (players + contributors)
//
// which Round.Conserved checks. Before the final binary decision each
// player states a probable choice on a 7-point scale (1 keep … 4 can't
// decide … 7 donate), as in the study this project reproduces (Yehudai,
// Rozen, Gera et al., "Teaching Values to Machines", arXiv 2605.30036).
// A player whose final decision is invalid made no contribution and keeps
// E; it counts in no cooperation rate (rates are over valid decisions).
//
// # Who does not play
//
// With an odd number of players one sits out each round, in a rotation
// where nobody sits out twice before everyone has sat out once. Agents of
// the population that are not players (agents of other strategies) and the
// player who sits out are still asked, like everyone, so that every answer
// expected is received; their answers count in no payoff and no statistic.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package.
package games

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
)

// Pairing is how partners are chosen each round.
type Pairing string

// The pairing schemes.
const (
	// Random re-matches the players at random every round.
	Random Pairing = "random"
	// Fixed keeps the same partner for the whole game.
	Fixed Pairing = "fixed"
	// Ring seats the players on a circle by dominant value and pairs
	// each with a neighbour on the circle.
	Ring Pairing = "ring"
	// SmallWorld pairs neighbours on a Watts–Strogatz network built from
	// that circle.
	SmallWorld Pairing = "small-world"
)

// Pairings lists the schemes.
func Pairings() []Pairing { return []Pairing{Random, Fixed, Ring, SmallWorld} }

// Defaults of a game.
const (
	DefaultRounds     = 20
	DefaultEndowment  = 15
	DefaultMemory     = 3
	DefaultNeighbours = 4
	DefaultRewire     = 0.1
	// MaxRounds bounds a game so that its answers stay within a run's
	// stream and memory budget.
	MaxRounds = 10_000
)

// Config is one game.
type Config struct {
	Rounds    int
	Endowment int
	Pairing   Pairing
	// Memory is how many past rounds an agent sees (0 to agent.MaxMemory).
	Memory int
	// ShowRate shows every player last round's cooperation rate.
	ShowRate bool
	// Neighbours (even) and Rewire shape the small-world network: each
	// seat is joined to its Neighbours nearest seats on the circle, then
	// each such link is rewired to a random seat with probability Rewire
	// (Watts & Strogatz 1998).
	Neighbours int
	Rewire     float64
	// Seed makes every pairing reproducible.
	Seed uint64
}

// Check reports what is wrong with c.
func (c Config) Check() error {
	var errs []error
	if c.Rounds < 1 || c.Rounds > MaxRounds {
		errs = append(errs, fmt.Errorf("rounds must be between 1 and %d, got %d", MaxRounds, c.Rounds))
	}
	if c.Endowment < 1 {
		errs = append(errs, fmt.Errorf("endowment must be positive, got %d", c.Endowment))
	}
	if c.Memory < 0 || c.Memory > agent.MaxMemory {
		errs = append(errs, fmt.Errorf("memory must be between 0 and %d, got %d", agent.MaxMemory, c.Memory))
	}
	switch c.Pairing {
	case Random, Fixed, Ring:
	case SmallWorld:
		if c.Neighbours < 2 || c.Neighbours%2 != 0 {
			errs = append(errs, fmt.Errorf("neighbours must be even and at least 2, got %d", c.Neighbours))
		}
		if !(c.Rewire >= 0 && c.Rewire <= 1) {
			errs = append(errs, fmt.Errorf("rewire must be between 0 and 1, got %v", c.Rewire))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown pairing %q", c.Pairing))
	}
	return errors.Join(errs...)
}

// Players lists the agents of a pool that play for strategy (an index into
// pool.Strategies), in ascending id order: player i is agent Players[i].
func Players(pool *population.Pool, strategy int) []int32 {
	out := make([]int32, 0, pool.StrategySize(strategy))
	for a := range pool.Size() {
		if pool.In(strategy, a) {
			out = append(out, int32(a))
		}
	}
	return out
}

// Decision turns an answer code of the decision instrument (1 keep, 2
// contribute, 0 invalid) into a choice.
func Decision(code uint8) agent.Choice {
	switch code {
	case 1:
		return agent.Kept
	case 2:
		return agent.Contributed
	}
	return agent.NoDecision
}

// Instruments returns the probable-choice and decision instruments for an
// endowment: the built-in charity and charity_decision, with their "15
// points" reworded to the endowment when it differs.
func Instruments(endowment int) (probable, decision *questionnaires.Instrument, err error) {
	load := func(name string) (*questionnaires.Instrument, error) {
		if endowment == DefaultEndowment {
			return questionnaires.Builtin(name)
		}
		src, err := questionnaires.BuiltinFile(name)
		if err != nil {
			return nil, err
		}
		const written = "15 points"
		if !strings.Contains(string(src), written) {
			return nil, fmt.Errorf("instrument %s does not state its endowment as %q", name, written)
		}
		src = []byte(strings.ReplaceAll(string(src), written, fmt.Sprintf("%d points", endowment)))
		return questionnaires.Parse(src, name+".toml")
	}
	if probable, err = load("charity"); err != nil {
		return nil, nil, fmt.Errorf("game instruments: %w", err)
	}
	if decision, err = load("charity_decision"); err != nil {
		return nil, nil, fmt.Errorf("game instruments: %w", err)
	}
	if probable.Scale.Points() != 7 || decision.Scale.Points() != 2 || len(probable.Items) != 1 || len(decision.Items) != 1 {
		return nil, nil, errors.New("game instruments: want a one-item 7-point probable choice and a one-item 2-point decision")
	}
	return probable, decision, nil
}

// Gini is the Gini coefficient of non-negative amounts: 0 when everyone has
// the same, towards 1 when one has everything. It is NaN for no amounts or
// a zero total. xs is sorted in place.
func Gini(xs []int64) float64 {
	n := len(xs)
	var total float64
	for _, x := range xs {
		total += float64(x)
	}
	if n == 0 || total == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	var s float64
	for i, x := range xs {
		s += float64(2*(i+1)-n-1) * float64(x)
	}
	return s / (float64(n) * total)
}
