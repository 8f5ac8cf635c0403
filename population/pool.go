package population

import (
	"math/rand/v2"

	"github.com/society-sim/society/values"
)

// Member is one strategy served by a Pool: its name and how many agents of
// each persona it needs (indexed like Weights).
type Member struct {
	Name   string
	Counts [values.N + 1]int
}

// Pool is one set of agents serving several strategies at once. Strategies
// differ only in how many agents hold each persona, so the pool holds, for
// each persona, the largest count any strategy needs, and a strategy uses
// the first Counts[persona] agents of that persona (by Rank). Comparing
// strategies therefore costs no more model calls than the largest of them.
type Pool struct {
	// Persona is each agent's dominant value (values.None: unprimed),
	// indexed by agent id.
	Persona []values.Value
	// Rank is each agent's position among the agents of its persona,
	// counting up with agent id.
	Rank []int32
	// Strategies are the strategies the pool serves.
	Strategies []Member

	size [values.N + 1]int
}

// poolStream separates the pool's random stream from every other stream
// derived from the same scenario seed.
const poolStream = 0x706f6f6c // "pool"

// NewPool builds the pool for members. Agent ids are shuffled from seed so
// that every persona is spread over the whole id range (and so over every
// shard); the same members and seed give the same pool.
func NewPool(members []Member, seed uint64) *Pool {
	p := &Pool{Strategies: append([]Member(nil), members...)}
	total := 0
	for i := range p.size {
		for _, m := range members {
			p.size[i] = max(p.size[i], m.Counts[i])
		}
		total += p.size[i]
	}
	p.Persona = make([]values.Value, 0, total)
	for i, n := range p.size {
		for range n {
			p.Persona = append(p.Persona, Persona(i))
		}
	}
	rng := rand.New(rand.NewPCG(seed, poolStream))
	rng.Shuffle(len(p.Persona), func(a, b int) {
		p.Persona[a], p.Persona[b] = p.Persona[b], p.Persona[a]
	})
	p.Rank = make([]int32, total)
	var next [values.N + 1]int32
	for id, v := range p.Persona {
		i := Index(v)
		p.Rank[id] = next[i]
		next[i]++
	}
	return p
}

// Size is the number of agents in the pool.
func (p *Pool) Size() int { return len(p.Persona) }

// In reports whether agent belongs to strategy (an index into Strategies).
func (p *Pool) In(strategy, agent int) bool {
	return int(p.Rank[agent]) < p.Strategies[strategy].Counts[Index(p.Persona[agent])]
}

// StrategySize is the number of agents strategy i uses.
func (p *Pool) StrategySize(i int) int {
	n := 0
	for _, c := range p.Strategies[i].Counts {
		n += c
	}
	return n
}

// Count is the number of agents in the pool with persona v.
func (p *Pool) Count(v values.Value) int { return p.size[Index(v)] }
