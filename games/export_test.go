package games

import (
	"slices"

	"github.com/society-sim/society/agent"
)

// Accessors the tests use to check the network, the prompts and the
// payoffs from outside; the simulation itself has no use for them.

// Neighbours returns the players linked to player i in a ring or
// small-world game (nil for the other schemes).
func (p *Pairer) Neighbours(i int) []int32 {
	switch p.cfg.Pairing {
	case Ring:
		pos := slices.Index(p.seat, int32(i))
		return []int32{p.seat[(pos+p.n-1)%p.n], p.seat[(pos+1)%p.n]}
	case SmallWorld:
		return p.adj[p.adjStart[i]:p.adjStart[i+1]]
	}
	return nil
}

// Linked reports whether players a and b are neighbours in a ring or
// small-world game.
func (p *Pairer) Linked(a, b int32) bool {
	return slices.Contains(p.Neighbours(int(a)), b)
}

// View is what agent a knows in the next round, as its prompt shows it.
func (s *Session) View(a int) agent.Round {
	return agent.Round{Memory: s.Memory(a), RateShown: s.cfg.ShowRate && s.hasRate, Rate: s.rate}
}
