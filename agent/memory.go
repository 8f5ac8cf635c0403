package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/society-sim/society/questionnaires"
)

// Choice is what a player did in one round of a game, as its memory and its
// partner's memory keep it.
type Choice uint8

// The choices a memory can hold. NoChoice is also what a player who sat a
// round out remembers of its (absent) partner.
const (
	// NoChoice: the player did not play (it sat out, or is not in the game).
	NoChoice Choice = iota
	// Kept: the player kept its endowment.
	Kept
	// Contributed: the player contributed its endowment.
	Contributed
	// NoDecision: the player was asked but gave no valid final decision.
	NoDecision
)

// String names the choice.
func (c Choice) String() string {
	switch c {
	case Kept:
		return "kept"
	case Contributed:
		return "contributed"
	case NoDecision:
		return "no decision"
	}
	return "none"
}

// MaxMemory is the longest window of rounds an agent remembers: sixteen
// rounds of four bits fill the one word a Memory is, which keeps a million
// agents' memories in 16 MB and makes a memory a comparable value that can
// key a map of shared prompts.
const MaxMemory = 16

// Memory is what an agent remembers of its last rounds of a game: for each
// round, its own choice and its partner's, the most recent round first. It
// is a small value: two agents with the same memory see the same prompt.
type Memory struct {
	bits uint64 // round j ago (j = 1 last round) in bits 4(j−1)..4j−1: own | partner<<2
	n    uint8
}

// Push returns the memory after one more round, forgetting rounds beyond
// MaxMemory.
func (m Memory) Push(own, partner Choice) Memory {
	m.bits = m.bits<<4 | uint64(own&3) | uint64(partner&3)<<2
	m.n = min(m.n+1, MaxMemory)
	if m.n < MaxMemory {
		m.bits &= 1<<(4*uint(m.n)) - 1
	}
	return m
}

// Len is the number of rounds remembered.
func (m Memory) Len() int { return int(m.n) }

// At returns the choices of the round ago rounds back (1 = last round); it
// returns NoChoice twice beyond what is remembered.
func (m Memory) At(ago int) (own, partner Choice) {
	if ago < 1 || ago > int(m.n) {
		return NoChoice, NoChoice
	}
	nib := m.bits >> (4 * uint(ago-1))
	return Choice(nib & 3), Choice(nib >> 2 & 3)
}

// Window keeps the last k rounds only (k ≤ 0 keeps none).
func (m Memory) Window(k int) Memory {
	switch {
	case k <= 0:
		return Memory{}
	case k >= int(m.n):
		return m
	}
	return Memory{bits: m.bits & (1<<(4*uint(k)) - 1), n: uint8(k)}
}

// memoryBytes is the wire size of one memory: its length and eight bytes
// of rounds, fixed so that a shard's memories can be checked by size alone.
const memoryBytes = 9

// AppendMemories appends the wire form of mems to dst.
func AppendMemories(dst []byte, mems []Memory) []byte {
	for _, m := range mems {
		dst = append(dst, m.n)
		for i := range 8 {
			dst = append(dst, byte(m.bits>>(8*i)))
		}
	}
	return dst
}

// ParseMemories reads n memories written by AppendMemories.
func ParseMemories(b []byte, n int) ([]Memory, error) {
	if len(b) != n*memoryBytes {
		return nil, fmt.Errorf("memories: got %d bytes, want %d for %d agents", len(b), n*memoryBytes, n)
	}
	out := make([]Memory, n)
	for i := range out {
		r := b[i*memoryBytes : (i+1)*memoryBytes]
		m := Memory{n: r[0]}
		if m.n > MaxMemory {
			return nil, fmt.Errorf("memories: agent %d remembers %d rounds, at most %d", i, m.n, MaxMemory)
		}
		for k := range 8 {
			m.bits |= uint64(r[1+k]) << (8 * k)
		}
		if m.n < MaxMemory && m.bits>>(4*uint(m.n)) != 0 {
			return nil, errors.New("memories: bits beyond the remembered rounds")
		}
		out[i] = m
	}
	return out, nil
}

// Round is what an agent knows when it plays a round of the Paired Charity
// Game, beyond its persona: its memory of earlier rounds, optionally how
// many players contributed last round, and, when it makes its final
// decision, the probable choice it gave a moment before.
type Round struct {
	Memory Memory
	// RateShown says whether the prompt tells the population's rate.
	RateShown bool
	// Rate is the percentage of players who contributed last round
	// (rounded to a whole percent, so that prompts stay few and shared).
	Rate int
	// Probable is the agent's probable choice in this round on the
	// probable-choice scale, set for the final decision; 0 before.
	Probable int
}

// agoWords names how long ago a remembered round was.
func agoWords(ago int) string {
	if ago == 1 {
		return "Last round"
	}
	return strconv.Itoa(ago) + " rounds ago"
}

// Context renders what the agent remembers as the text shown between the
// value prefix and the question. It is canonical: the same Round gives the
// same bytes, so agents with the same persona and history share one prompt
// (and one cached model call); rounds are named relative to now ("last
// round", "2 rounds ago"), so the same history gives the same prompt in any
// round. The first round of a game without a shown rate renders as "",
// which makes its prompt the plain questionnaire item. probable is the
// probable-choice instrument, whose labels word the stated choice.
func (r Round) Context(probable *questionnaires.Instrument) string {
	var b strings.Builder
	if r.Memory.n > 0 {
		b.WriteString("You have played this game before, each round with a partner. What you remember, oldest first:")
		for ago := int(r.Memory.n); ago >= 1; ago-- {
			own, partner := r.Memory.At(ago)
			b.WriteString("\n- ")
			b.WriteString(agoWords(ago))
			b.WriteString(": ")
			switch own {
			case NoChoice:
				b.WriteString("you sat out and had no partner.")
				continue
			case Kept:
				b.WriteString("you kept your points")
			case Contributed:
				b.WriteString("you contributed your points")
			case NoDecision:
				b.WriteString("you made no valid decision")
			}
			switch partner {
			case Kept:
				b.WriteString("; your partner kept theirs.")
			case Contributed:
				b.WriteString("; your partner contributed theirs.")
			default:
				b.WriteString("; your partner made no valid decision.")
			}
		}
	}
	if r.RateShown {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "In the last round, %d%% of the players contributed.", r.Rate)
	}
	if r.Probable != 0 && probable != nil {
		if label := probable.Scale.Label(r.Probable); label != "" {
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			fmt.Fprintf(&b, "A moment ago, asked which you were more likely to do, you answered: %q.", label)
		}
	}
	return b.String()
}

// GameTask is what a shard's agents need for one round of the Paired
// Charity Game. The task's Instrument asks the probable choice (its one
// item); Decision is then asked of every agent, with the probable choice it
// just gave in its context, as a second item of the same round.
type GameTask struct {
	// Decision is the final-decision instrument (one item).
	Decision *questionnaires.Instrument
	// Memory is each agent's memory, indexed like the shard's agents;
	// the orchestrator sends it with every round, so hosts keep no game
	// state and a restarted host plays on exactly as before.
	Memory []Memory
	// RateShown and Rate: the population's cooperation rate last round,
	// shown in every prompt when RateShown.
	RateShown bool
	Rate      int
}

// check reports what makes t unplayable by a shard of n agents; a nil
// GameTask is a plain questionnaire task and always fine.
func (g *GameTask) check(t *Task, n int) error {
	switch {
	case g == nil:
		return nil
	case g.Decision == nil || len(g.Decision.Items) != 1:
		return errors.New("game round: the decision instrument must have exactly one item")
	case len(t.Items) != 1:
		return fmt.Errorf("game round: got %d probable-choice items, want 1", len(t.Items))
	case len(g.Memory) != n:
		return fmt.Errorf("game round: got %d memories for %d agents", len(g.Memory), n)
	}
	return nil
}

// extraItems is the number of answer rows a task adds to its items: one for
// the final decision of a game round.
func (g *GameTask) extraItems() int {
	if g == nil {
		return 0
	}
	return 1
}

// gameEvent is what a shard computes once per round for all its agents.
type gameEvent struct {
	contexts []string // rendered memory by agent, strings shared by equal memories
	key      uint64   // draw key of the decision instrument
	// stated[p] is the sentence that shows probable choice p, which the
	// decision's context appends to the agent's rendered memory.
	stated []string
}

func (g *GameTask) prepare(t *Task) *gameEvent {
	if g == nil {
		return nil
	}
	ge := &gameEvent{contexts: make([]string, len(g.Memory)), key: hashString(t.Model + "\x00" + g.Decision.Name),
		stated: make([]string, t.Instrument.Scale.Max+1)}
	for p := t.Instrument.Scale.Min; p <= t.Instrument.Scale.Max; p++ {
		ge.stated[p] = Round{Probable: p}.Context(t.Instrument)
	}
	seen := make(map[Memory]string)
	for i, m := range g.Memory {
		s, ok := seen[m]
		if !ok {
			s = Round{Memory: m, RateShown: g.RateShown, Rate: g.Rate}.Context(t.Instrument)
			seen[m] = s
		}
		ge.contexts[i] = s
	}
	return ge
}

// play is an agent's round of the game: the probable choice, then the final
// decision with the probable choice in view. A model that answers with a
// distribution is drawn from with the agent's own seed, each instrument on
// its own stream. It is kept out of handle's frame (noinline) so that the
// agent goroutines' stacks stay small between events.
//
//go:noinline
func (a *Agent) play(ev *event, m Model, local int) {
	t, g := ev.task, ev.task.Game
	round := Round{Memory: g.Memory[local], RateShown: g.RateShown, Rate: g.Rate}
	q := Question{Persona: a.Persona, Instrument: t.Instrument, Item: t.Items[0], Sample: int(a.Sample), Round: t.Round,
		Context: ev.game.contexts[local], Game: &round}
	if t.Style != "" {
		q.Persona.Style = t.Style
	}
	code, ok := a.answerGame(ev, m, &q, 0, local, ev.key)
	if !ok {
		return
	}
	decided := round
	if code != 0 {
		decided.Probable = int(code) - 1 + t.Instrument.Scale.Min
	}
	q.Instrument, q.Item, q.Game = g.Decision, 0, &decided
	// The same text as decided.Context, without rendering the memory again.
	if p := decided.Probable; p > 0 && p < len(ev.game.stated) && ev.game.stated[p] != "" {
		if q.Context == "" {
			q.Context = ev.game.stated[p]
		} else {
			q.Context += "\n\n" + ev.game.stated[p]
		}
	}
	a.answerGame(ev, m, &q, len(t.Items), local, ev.game.key)
}

// answerGame asks q and records the answer in row k of the event; it
// returns the code (0 for invalid) and false when the model failed.
func (a *Agent) answerGame(ev *event, m Model, q *Question, k, local int, key uint64) (uint8, bool) {
	reply, err := m.Ask(ev.ctx, q)
	if err != nil {
		ev.failAgent(a.ID, err)
		return 0, false
	}
	in := q.Instrument
	var code uint8
	switch {
	case reply.Dist != nil:
		code = uint8(Draw(reply.Dist, a.seed, key, uint64(q.Item), uint64(q.Round)) + 1)
	case reply.Answer.Valid:
		code = uint8(reply.Answer.Value - in.Scale.Min + 1)
	}
	if code == 0 || int(code) > in.Scale.Points() {
		ev.addInvalid(k, a.ID, &reply.Answer)
		code = 0
	}
	ev.codes[k][local] = code
	return code, true
}
