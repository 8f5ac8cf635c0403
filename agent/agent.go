package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/questionnaires"
)

// Agent is one simulated person. It is kept small (a few bytes of state
// and one goroutine) so that a million of them fit on one machine: its random
// source is counter-based (see Draw), so it holds only its seed.
type Agent struct {
	ID      int32
	Sample  int32 // rank among the agents that share the persona
	Persona Persona
	seed    uint64
}

// New returns an agent whose random source is seeded from the scenario seed
// and its id, so that the same seed gives the same answers however the
// agents are scheduled.
func New(id int, persona Persona, sample int, scenarioSeed uint64) Agent {
	return Agent{ID: int32(id), Sample: int32(sample), Persona: persona, seed: mix(scenarioSeed, uint64(id))}
}

// Task is an event for a shard's agents: answer the listed items of an
// instrument with the named model.
type Task struct {
	Model      string
	Instrument *questionnaires.Instrument
	Items      []int // indexes into Instrument.Items
	Round      int
	// Style, when set, overrides how the agents' values are put into their
	// prompts (a model-level condition of the study).
	Style Style
	// Game, when set, makes the task a round of the Paired Charity Game:
	// Instrument's single item is the probable choice, and the final
	// decision follows (see GameTask).
	Game *GameTask
}

// Invalid is an answer that could not be used, kept with its raw text.
// Raw holds at most MaxRaw bytes and Reason at most MaxReason (see
// BoundText); RawBytes is the raw text's full length in bytes.
type Invalid struct {
	Agent    int
	Raw      string
	RawBytes int
	Reason   string
}

// Batch holds one item's answers from one shard: the deterministic unit in
// which answers travel and are de-duplicated. Codes[i] is the answer of
// agent First+i encoded as value-Scale.Min+1, or 0 when it was invalid.
type Batch struct {
	Model      string
	Instrument string
	Item       int
	Round      int
	Shard      int
	First      int
	Codes      []uint8
	Invalid    []Invalid
}

// Valid counts the valid answers in the batch.
func (b *Batch) Valid() int {
	n := 0
	for _, c := range b.Codes {
		if c != 0 {
			n++
		}
	}
	return n
}

// Shard is a contiguous block of agents that receive the same events. Each
// agent is a goroutine; the shard broadcasts an event to all of them by
// closing a channel, so there is no channel or subscription per agent.
type Shard struct {
	ID     int
	First  int
	Agents []Agent
	Models map[string]Model

	mu      sync.Mutex // serialises Do: one event at a time per shard
	chain   sync.Mutex // guards next, which Do extends and Run ends
	next    *event     // the event the agents wait for next; nil once stopped
	halted  atomic.Bool
	started chan struct{}
	stopped chan struct{}
}

type event struct {
	ctx    context.Context
	task   *Task
	models map[string]Model
	key    uint64        // hash of the task's model and instrument, for Draw
	ready  chan struct{} // closed when task is set
	stop   bool          // set before ready is closed: the shard is stopping
	next   *event
	codes  [][]uint8  // [item in task][agent in shard]
	game   *gameEvent // set for game rounds
	wg     sync.WaitGroup

	mu      sync.Mutex
	invalid [][]Invalid
	err     error

	// questions holds each agent's question, [agent in shard].
	questions []Question
}

func newEvent() *event { return &event{ready: make(chan struct{})} }

// NewShard makes a shard; Run must be called before Do.
func NewShard(id, first int, agents []Agent, models map[string]Model) *Shard {
	return &Shard{ID: id, First: first, Agents: agents, Models: models, next: newEvent(), started: make(chan struct{}), stopped: make(chan struct{})}
}

// Run starts one goroutine per agent and returns after all have exited,
// which they do when ctx is done.
//
// A million agents must fit in one machine, so an agent goroutine is kept
// to its smallest stack (2 KiB): it waits on one channel (no select, one
// parked record instead of two), and when ctx ends Run wakes it with a
// stop event instead. Every spawnBatch starts Run yields, so that the
// goroutines already started park before more are made and the other work
// of the process (the bus, the consumer) is not queued behind a million
// runnable goroutines.
func (s *Shard) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	first := s.next
	wg.Add(len(s.Agents))
	for i := range s.Agents {
		go s.Agents[i].live(s, first, i, &wg)
		if i%spawnBatch == spawnBatch-1 {
			runtime.Gosched()
		}
	}
	close(s.started)
	<-ctx.Done()
	s.halt()
	wg.Wait()
	close(s.stopped)
	return nil
}

// spawnBatch is how many agent goroutines Run starts between yields: well
// within a processor's local run queue (256), so they run and park at once.
const spawnBatch = 64

// halt ends the event chain with a stop event. Agents between events stop
// at once; an agent busy with an event finishes it and stops before the
// next, which the halted flag makes it skip.
func (s *Shard) halt() {
	s.halted.Store(true)
	s.chain.Lock()
	last := s.next
	s.next = nil
	s.chain.Unlock()
	last.stop = true
	close(last.ready)
}

func (a *Agent) live(s *Shard, ev *event, local int, wg *sync.WaitGroup) {
	for {
		<-ev.ready
		if ev.stop || s.halted.Load() {
			if !ev.stop {
				ev.wg.Done() // skipped: Do's wait for the event ends
			}
			wg.Done()
			return
		}
		a.handle(ev, local)
		ev.wg.Done()
		ev = ev.next
	}
}

func (a *Agent) handle(ev *event, local int) {
	t := ev.task
	m := ev.modelFor(t)
	if m == nil {
		return
	}
	if t.Game != nil {
		a.play(ev, m, local)
		return
	}
	// The question lives in the event's slice: one allocation per shard
	// instead of one per agent, since a pointer passed to a model escapes.
	q := &ev.questions[local]
	*q = Question{Persona: a.Persona, Instrument: t.Instrument, Sample: int(a.Sample), Round: t.Round}
	if t.Style != "" {
		q.Persona.Style = t.Style
	}
	points := t.Instrument.Scale.Points()
	base := mix(a.seed, ev.key)
	for k, item := range t.Items {
		q.Item = item
		reply, err := m.Ask(ev.ctx, q)
		if err != nil {
			ev.failAgent(a.ID, err)
			return
		}
		var code uint8
		switch {
		case reply.Dist != nil:
			code = uint8(drawAt(reply.Dist, mix(mix(base, uint64(item)), uint64(t.Round))) + 1)
		case reply.Answer.Valid:
			code = uint8(reply.Answer.Value - t.Instrument.Scale.Min + 1)
		}
		if code == 0 || int(code) > points {
			ev.addInvalid(k, a.ID, &reply.Answer)
			code = 0
		}
		ev.codes[k][local] = code
	}
}

// failAgent and addInvalid are the rare paths of handle, kept out of line
// so that handle's frame stays small: every agent goroutine runs handle,
// and a frame that outgrows the goroutine's first stack doubles the memory
// of a million agents.
//
//go:noinline
func (ev *event) failAgent(id int32, err error) {
	ev.fail(fmt.Errorf("agent %d: %w", id, err))
}

//go:noinline
func (ev *event) addInvalid(k int, id int32, a *Answer) {
	reason := a.Reason
	if reason == "" {
		reason = "answer off the scale"
	}
	ev.mu.Lock()
	ev.invalid[k] = append(ev.invalid[k], Invalid{Agent: int(id), Raw: BoundText(a.Raw, MaxRaw), RawBytes: len(a.Raw),
		Reason: BoundText(reason, MaxReason)})
	ev.mu.Unlock()
}

func (ev *event) modelFor(t *Task) Model {
	return ev.models[t.Model]
}

func (ev *event) fail(err error) {
	ev.mu.Lock()
	if ev.err == nil {
		ev.err = err
	}
	ev.mu.Unlock()
}

// Do hands a task to every agent of the shard, waits for all of them, and
// returns one batch per item. It returns an error if ctx ends first or a
// model fails in a way that retries could not mend.
func (s *Shard) Do(ctx context.Context, t *Task) ([]Batch, error) {
	if _, ok := s.Models[t.Model]; !ok {
		return nil, fmt.Errorf("shard %d: unknown model %q", s.ID, t.Model)
	}
	if err := t.Game.check(t, len(s.Agents)); err != nil {
		return nil, fmt.Errorf("shard %d: %w", s.ID, err)
	}
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chain.Lock()
	ev := s.next
	if ev == nil {
		s.chain.Unlock()
		return nil, errors.New("shard stopped")
	}
	ev.ctx, ev.task, ev.models = ctx, t, s.Models
	ev.key = hashString(t.Model + "\x00" + t.Instrument.Name)
	ev.codes = make([][]uint8, len(t.Items)+t.Game.extraItems())
	for k := range ev.codes {
		ev.codes[k] = make([]uint8, len(s.Agents))
	}
	ev.invalid = make([][]Invalid, len(ev.codes))
	if t.Game == nil {
		ev.questions = make([]Question, len(s.Agents))
	}
	ev.game = t.Game.prepare(t)
	ev.wg.Add(len(s.Agents))
	ev.next = newEvent()
	s.next = ev.next
	s.chain.Unlock()
	close(ev.ready)

	done := make(chan struct{})
	go func() { ev.wg.Wait(); close(done) }()
	select {
	case <-done:
		if s.halted.Load() {
			// Agents that saw the halt skipped the event: its codes
			// are incomplete.
			return nil, errors.New("shard stopped")
		}
	case <-s.stopped:
		return nil, errors.New("shard stopped")
	case <-ctx.Done():
		// The agents notice ctx through their model calls; wait for them so
		// that no goroutine writes into the event's buffers after Do returns.
		select {
		case <-done:
		case <-s.stopped:
		}
		return nil, ctx.Err()
	}
	if ev.err != nil {
		if errors.Is(ev.err, context.Canceled) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ev.err
	}
	out := make([]Batch, len(t.Items))
	for k, item := range t.Items {
		out[k] = Batch{Model: t.Model, Instrument: t.Instrument.Name, Item: item, Round: t.Round,
			Shard: s.ID, First: s.First, Codes: ev.codes[k], Invalid: ev.invalid[k]}
	}
	if t.Game != nil {
		k := len(t.Items)
		out = append(out, Batch{Model: t.Model, Instrument: t.Game.Decision.Name, Item: 0, Round: t.Round,
			Shard: s.ID, First: s.First, Codes: ev.codes[k], Invalid: ev.invalid[k]})
	}
	return out, nil
}
