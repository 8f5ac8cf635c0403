package games

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/society-sim/society/values"
)

// Random streams of a game, each separate from every other stream derived
// from the scenario seed.
const (
	streamRotation = 0x726f74 // "rot": who sits out when
	streamShuffle  = 0x736866 // "shf": random re-matching, per round
	streamSeats    = 0x736561 // "sea": ties among seats of one value
	streamRewire   = 0x727772 // "rwr": small-world rewiring
	streamFixed    = 0x666978 // "fix": the fixed partners
)

// augmentDepth bounds the augmenting-path search of small-world rounds:
// deep enough to leave almost nobody without a linked partner on sparse
// networks, shallow enough to keep a round linear in the players.
const augmentDepth = 8

func rng(seed, stream, round uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^stream<<40, round))
}

// Match is the pairing of one round: Partner[i] is player i's partner, or
// -1 for the player who sits out. OffNetwork counts the pairs of a
// small-world round that are not linked in the network (see Pairer).
type Match struct {
	Partner    []int32
	SitOut     int32 // -1 when nobody sits out
	OffNetwork int
}

// Pairer draws every round's pairs of a game. Its choices depend only on
// the configuration (with its seed), the players' personas and the round,
// never on what the players did, so anyone holding the scenario can
// recompute every pairing.
//
//   - Random: each round the players but the one sitting out are shuffled
//     and paired in order.
//   - Fixed: partners are drawn once. With an odd number of players one is
//     left over; when a paired player sits out, its partner plays the
//     left-over player for that round.
//   - Ring: players are seated on a circle in the order of their dominant
//     values around the motivational circle (unprimed players after
//     Universalism, ties in seeded random order), so that neighbours tend
//     to share values and value clusters can matter. Each round pairs
//     adjacent seats: with an even number of players the pairs alternate
//     between the two ways of cutting the circle into neighbour pairs; with
//     an odd number the seat that sits out moves one step round the circle
//     each round and the others pair off along the circle from it.
//   - SmallWorld: the circle becomes a Watts–Strogatz network (each seat
//     linked to its Neighbours nearest seats, each link rewired to a random
//     seat with probability Rewire). Each round a random maximal matching
//     of the network is drawn and mended by one-step augmenting swaps; the
//     rare players it still leaves without a linked partner are paired with
//     each other and counted as off-network pairs.
//
// Who sits out follows a rotation fixed for the game (the seat order for
// Ring, a seeded permutation otherwise): in round r the (r−1 mod n)-th
// player of the rotation sits out, so nobody sits out twice before everyone
// has sat out once.
type Pairer struct {
	cfg      Config
	n        int
	rotation []int32
	seat     []int32 // ring and small-world: player at each seat
	fixed    []int32 // fixed: partner of each player, -1 for the spare
	spare    int32
	adjStart []int32 // small-world: CSR adjacency by player
	adj      []int32
}

// NewPairer prepares the pairings of a game among players with the given
// personas (by player index).
func NewPairer(cfg Config, personas []values.Value) (*Pairer, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	n := len(personas)
	if n < 2 {
		return nil, fmt.Errorf("a game needs at least 2 players, got %d", n)
	}
	p := &Pairer{cfg: cfg, n: n, spare: -1}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	r := rng(cfg.Seed, streamRotation, 0)
	r.Shuffle(n, func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
	p.rotation = perm

	switch cfg.Pairing {
	case Fixed:
		order := slices.Clone(perm)
		rng(cfg.Seed, streamFixed, 0).Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
		p.fixed = make([]int32, n)
		for i := 0; i+1 < n; i += 2 {
			p.fixed[order[i]], p.fixed[order[i+1]] = order[i+1], order[i]
		}
		if n%2 == 1 {
			p.spare = order[n-1]
			p.fixed[p.spare] = -1
		}
	case Ring, SmallWorld:
		p.seat = seats(personas, cfg.Seed)
		if cfg.Pairing == Ring {
			p.rotation = p.seat
		} else {
			p.network()
		}
	}
	return p, nil
}

// seats orders players around the circle by dominant value.
func seats(personas []values.Value, seed uint64) []int32 {
	n := len(personas)
	tie := make([]uint64, n)
	r := rng(seed, streamSeats, 0)
	for i := range tie {
		tie[i] = r.Uint64()
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	rank := func(v values.Value) int {
		if !v.Valid() {
			return values.N
		}
		return int(v)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(rank(personas[a]), rank(personas[b])), cmp.Compare(tie[a], tie[b]), cmp.Compare(a, b))
	})
	return order
}

// network builds the Watts–Strogatz graph over the seats.
func (p *Pairer) network() {
	n := p.n
	k := min(p.cfg.Neighbours, n-1)
	k -= k % 2
	half := max(k/2, 1)
	type edge struct{ a, b int32 }
	has := make(map[edge]bool, n*half)
	norm := func(a, b int32) edge {
		if a > b {
			a, b = b, a
		}
		return edge{a, b}
	}
	var edges []edge
	for i := range n {
		for j := 1; j <= half; j++ {
			e := norm(p.seat[i], p.seat[(i+j)%n])
			if e.a != e.b && !has[e] {
				has[e] = true
				edges = append(edges, e)
			}
		}
	}
	r := rng(p.cfg.Seed, streamRewire, 0)
	for i := range edges {
		if r.Float64() >= p.cfg.Rewire {
			continue
		}
		// Keep one end, move the other to a random seat that is neither
		// the kept end nor already linked to it; give up after a few
		// tries in a near-complete graph.
		a := edges[i].a
		for range 16 {
			b := int32(r.IntN(n))
			e := norm(a, b)
			if b == a || has[e] {
				continue
			}
			delete(has, edges[i])
			has[e] = true
			edges[i] = e
			break
		}
	}
	deg := make([]int32, n+1)
	for _, e := range edges {
		deg[e.a+1]++
		deg[e.b+1]++
	}
	for i := 1; i <= n; i++ {
		deg[i] += deg[i-1]
	}
	p.adjStart = deg
	p.adj = make([]int32, deg[n])
	fill := slices.Clone(deg[:n])
	for _, e := range edges {
		p.adj[fill[e.a]] = e.b
		fill[e.a]++
		p.adj[fill[e.b]] = e.a
		fill[e.b]++
	}
	for i := range n {
		slices.Sort(p.adj[p.adjStart[i]:p.adjStart[i+1]])
	}
}

// Round returns the pairing of round r (1-based).
func (p *Pairer) Round(r int) (Match, error) {
	if r < 1 {
		return Match{}, errors.New("rounds count from 1")
	}
	n := p.n
	m := Match{Partner: make([]int32, n), SitOut: -1}
	for i := range m.Partner {
		m.Partner[i] = -1
	}
	if n%2 == 1 {
		m.SitOut = p.rotation[(r-1)%n]
	}
	pair := func(a, b int32) { m.Partner[a], m.Partner[b] = b, a }
	switch p.cfg.Pairing {
	case Random:
		order := make([]int32, 0, n)
		for i := range n {
			if int32(i) != m.SitOut {
				order = append(order, int32(i))
			}
		}
		rng(p.cfg.Seed, streamShuffle, uint64(r)).Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for i := 0; i+1 < len(order); i += 2 {
			pair(order[i], order[i+1])
		}
	case Fixed:
		copy(m.Partner, p.fixed)
		if s := m.SitOut; s >= 0 && s != p.spare {
			b := p.fixed[s]
			m.Partner[s] = -1
			pair(b, p.spare)
		}
	case Ring:
		if n%2 == 0 {
			off := (r - 1) % 2
			for j := 0; j < n; j += 2 {
				pair(p.seat[(off+j)%n], p.seat[(off+j+1)%n])
			}
		} else {
			s := (r - 1) % n
			for j := 1; j < n; j += 2 {
				pair(p.seat[(s+j)%n], p.seat[(s+j+1)%n])
			}
		}
	case SmallWorld:
		m.OffNetwork = p.matchNetwork(r, &m)
	}
	return m, nil
}

// matchNetwork pairs the players along the network's links and returns how
// many pairs had to be made off it.
func (p *Pairer) matchNetwork(r int, m *Match) int {
	n := p.n
	mate := m.Partner
	free := func(x int32) bool { return x != m.SitOut && mate[x] < 0 }
	rr := rng(p.cfg.Seed, streamShuffle, uint64(r))
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	rr.Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
	var cand []int32
	for _, u := range order {
		if !free(u) {
			continue
		}
		cand = cand[:0]
		for _, v := range p.adj[p.adjStart[u]:p.adjStart[u+1]] {
			if free(v) {
				cand = append(cand, v)
			}
		}
		if len(cand) > 0 {
			v := cand[rr.IntN(len(cand))]
			mate[u], mate[v] = v, u
		}
	}
	// Mend by augmenting paths: a free u next to v, whose mate w can be
	// re-paired along another such path, takes v and frees nobody. The
	// search marks every seat it passes, so paths stay simple and the
	// matching valid; its depth is bounded so that a round costs O(n).
	stamp := make([]int32, n)
	var cur int32
	var try func(u int32, depth int) bool
	try = func(u int32, depth int) bool {
		stamp[u] = cur
		for _, v := range p.adj[p.adjStart[u]:p.adjStart[u+1]] {
			if v == m.SitOut || stamp[v] == cur {
				continue
			}
			stamp[v] = cur
			w := mate[v]
			if w < 0 || (depth > 0 && stamp[w] != cur && try(w, depth-1)) {
				mate[u], mate[v] = v, u
				return true
			}
		}
		return false
	}
	for _, u := range order {
		if free(u) {
			cur++
			try(u, augmentDepth)
		}
	}
	var left []int32
	for _, u := range order {
		if free(u) {
			left = append(left, u)
		}
	}
	for i := 0; i+1 < len(left); i += 2 {
		mate[left[i]], mate[left[i+1]] = left[i+1], left[i]
	}
	return len(left) / 2
}
