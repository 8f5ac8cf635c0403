package analysis

import (
	"fmt"
	"sync"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Plan is one part of a run whose answers the collector expects: every agent
// answers Items of Instrument with Model, in Round.
type Plan struct {
	Model      string
	Instrument *questionnaires.Instrument
	Items      []int
	Round      int
}

// InvalidAnswer is an answer that could not be used, with its raw text.
type InvalidAnswer struct {
	Model      string `json:"model"`
	Agent      int    `json:"agent"`
	Instrument string `json:"instrument"`
	Item       int    `json:"item"`
	Round      int    `json:"round"`
	Raw        string `json:"raw"`
	// RawBytes is the raw text's full length in bytes: Raw keeps at most
	// agent.MaxRaw of them.
	RawBytes int    `json:"raw_bytes"`
	Reason   string `json:"reason"`
}

// Collector keeps every answer of a run as one byte per agent and item
// (value − Scale.Min + 1, 0 for invalid or missing). Add is idempotent: a
// batch seen before (a redelivery, a replay after a restart), or any part
// of one (a batch split differently to fit the bus), changes nothing, since
// each agent's answer to an item counts once; so counts reconcile as
// valid + invalid = expected.
type Collector struct {
	agents int

	mu       sync.Mutex
	sheets   map[sheetKey]*Sheet
	seen     map[batchKey]struct{}
	expected int64
	valid    int64
	invalid  []InvalidAnswer
	byModel  map[string]*AnswerCounts
	done     chan struct{}
	closed   bool
	// notify receives a token whenever a sheet completes; its buffer of
	// one keeps Add from blocking while a waiter is busy.
	notify chan struct{}
}

type sheetKey struct {
	model, instrument string
	round             int
}

type batchKey struct {
	sheetKey
	item, shard, first int
}

// Sheet is one model's answers to one instrument in one round.
type Sheet struct {
	Model      string
	Instrument *questionnaires.Instrument
	Round      int
	Items      []int // the items asked, in instrument order
	// Codes is agent-major: Codes[agent*len(Instrument.Items)+item].
	Codes []uint8
	// got marks the answers received, one bit per entry of Codes.
	got []uint64

	expected, received int64
}

// Complete reports whether every answer of the sheet has arrived.
func (s *Sheet) Complete() bool { return s.received >= s.expected }

// NewCollector expects every agent of a population of size agents to answer
// every plan.
func NewCollector(agents int, plans []Plan) *Collector {
	c := &Collector{agents: agents, sheets: map[sheetKey]*Sheet{}, seen: map[batchKey]struct{}{}, done: make(chan struct{}),
		notify: make(chan struct{}, 1), byModel: map[string]*AnswerCounts{}}
	for _, p := range plans {
		if c.byModel[p.Model] == nil {
			c.byModel[p.Model] = &AnswerCounts{}
		}
		c.byModel[p.Model].Expected += int64(agents) * int64(len(p.Items))
		k := sheetKey{p.Model, p.Instrument.Name, p.Round}
		c.sheets[k] = &Sheet{Model: p.Model, Instrument: p.Instrument, Round: p.Round, Items: p.Items,
			Codes: make([]uint8, agents*len(p.Instrument.Items)), got: make([]uint64, (agents*len(p.Instrument.Items)+63)/64),
			expected: int64(agents) * int64(len(p.Items))}
		c.expected += int64(agents) * int64(len(p.Items))
	}
	if c.expected == 0 {
		c.closeDone()
	}
	return c
}

// Add stores a batch of answers.
func (c *Collector) Add(b *agent.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sk := sheetKey{b.Model, b.Instrument, b.Round}
	s, ok := c.sheets[sk]
	if !ok {
		return fmt.Errorf("answers for %s/%s round %d were not expected", b.Model, b.Instrument, b.Round)
	}
	nItems := len(s.Instrument.Items)
	if b.Item < 0 || b.Item >= nItems || b.First < 0 || b.First+len(b.Codes) > c.agents {
		return fmt.Errorf("answers for %s/%s item %d agents %d..%d are out of range",
			b.Model, b.Instrument, b.Item, b.First, b.First+len(b.Codes))
	}
	bk := batchKey{sk, b.Item, b.Shard, b.First}
	if _, dup := c.seen[bk]; dup {
		return nil
	}
	c.seen[bk] = struct{}{}
	points := s.Instrument.Scale.Points()
	mc := c.byModel[b.Model]
	var (
		fresh int64
		old   map[int]bool // agents whose answer came in another part
	)
	for i, code := range b.Codes {
		at := (b.First+i)*nItems + b.Item
		if s.got[at/64]&(1<<(at%64)) != 0 {
			if old == nil {
				old = map[int]bool{}
			}
			old[b.First+i] = true
			continue
		}
		s.got[at/64] |= 1 << (at % 64)
		fresh++
		if int(code) > points {
			code = 0
		}
		s.Codes[at] = code
		if code != 0 {
			c.valid++
			mc.Valid++
		}
	}
	s.received += fresh
	if s.Complete() {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	for _, iv := range b.Invalid {
		if old[iv.Agent] {
			continue
		}
		c.invalid = append(c.invalid, InvalidAnswer{Model: b.Model, Agent: iv.Agent, Instrument: b.Instrument,
			Item: s.Instrument.Items[b.Item].ID, Round: b.Round, Raw: iv.Raw, RawBytes: max(iv.RawBytes, len(iv.Raw)), Reason: iv.Reason})
		mc.Invalid++
	}
	if c.valid+int64(len(c.invalid)) >= c.expected {
		c.closeDone()
	}
	return nil
}

func (c *Collector) closeDone() {
	if !c.closed {
		c.closed = true
		close(c.done)
	}
}

// Notify receives a token after a sheet completes.
func (c *Collector) Notify() <-chan struct{} { return c.notify }

// Complete reports whether every answer planned in p has arrived.
func (c *Collector) Complete(p Plan) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sheets[sheetKey{p.Model, p.Instrument.Name, p.Round}]
	return ok && s.Complete()
}

// Done is closed when every expected answer has arrived.
func (c *Collector) Done() <-chan struct{} { return c.done }

// Counts returns the expected, valid and invalid answer counts so far.
func (c *Collector) Counts() (expected, valid, invalid int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expected, c.valid, int64(len(c.invalid))
}

// ModelCounts returns the expected, valid and invalid answer counts of
// each model so far.
func (c *Collector) ModelCounts() map[string]AnswerCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]AnswerCounts, len(c.byModel))
	for m, n := range c.byModel {
		out[m] = *n
	}
	return out
}

// Agents is the population size.
func (c *Collector) Agents() int { return c.agents }

// Sheets returns the sheets in a stable order (by model, instrument, round).
func (c *Collector) Sheets(order []Plan) []*Sheet {
	out := make([]*Sheet, 0, len(order))
	for _, p := range order {
		if s, ok := c.sheets[sheetKey{p.Model, p.Instrument.Name, p.Round}]; ok {
			out = append(out, s)
		}
	}
	return out
}

// Invalid returns the invalid answers received.
func (c *Collector) Invalid() []InvalidAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]InvalidAnswer(nil), c.invalid...)
}
