package sim

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// This file records the distinct prompts a run's agents ask their models
// (prompts.csv): each model of the plan is wrapped so that every question
// is counted as the agents ask it, test-priming and game contexts
// included, and the prompts are rendered once at the end as the
// OpenAI-compatible client sends them.

// promptKey is a question as its prompt depends on it.
type promptKey struct {
	persona agent.Persona
	inst    *questionnaires.Instrument
	item    int
	round   int
	context string
}

// promptUse counts the agents that asked a prompt and their highest rank.
type promptUse struct {
	agents  atomic.Int64
	maxRank atomic.Int64
}

func (u *promptUse) add(rank int) { u.addN(1, rank) }

// addN counts n agents whose highest rank is rank.
func (u *promptUse) addN(n, rank int) {
	u.agents.Add(int64(n))
	for r := u.maxRank.Load(); int64(rank) > r && !u.maxRank.CompareAndSwap(r, int64(rank)); r = u.maxRank.Load() {
	}
}

// promptLog is one model's distinct questions. It is on the path of every
// answer, so the common question (no context, no round, the model's own
// style) is counted in a fixed cell found without hashing or allocating,
// and the agents' goroutine stacks stay small; the others (game rounds,
// contexts) go to a map.
type promptLog struct {
	inner agent.Model
	style agent.Style
	insts []*questionnaires.Instrument
	// cells[i] counts the questions of insts[i]: index (value+1) × items
	// + item, value None first.
	cells [][]promptUse

	mu    sync.Mutex
	other map[promptKey]*promptUse
}

func newPromptLog(inner agent.Model, style agent.Style, insts []*questionnaires.Instrument) *promptLog {
	l := &promptLog{inner: inner, style: style, insts: insts, cells: make([][]promptUse, len(insts)), other: map[promptKey]*promptUse{}}
	for i, in := range insts {
		l.cells[i] = make([]promptUse, (values.N+1)*len(in.Items))
	}
	return l
}

func (l *promptLog) Ask(ctx context.Context, q *agent.Question) (agent.Reply, error) {
	l.note(q)
	return l.inner.Ask(ctx, q)
}

func (l *promptLog) note(q *agent.Question) { l.use(q).add(q.Sample) }

// use returns the count of q's prompt.
func (l *promptLog) use(q *agent.Question) *promptUse {
	if q.Context == "" && q.Round == 0 && q.Persona.Style == l.style && q.Persona.Value >= values.None && q.Persona.Value < values.N {
		for i, in := range l.insts {
			if in == q.Instrument && q.Item >= 0 && q.Item < len(in.Items) {
				return &l.cells[i][int(q.Persona.Value+1)*len(in.Items)+q.Item]
			}
		}
	}
	return l.useOther(q)
}

//go:noinline
func (l *promptLog) useOther(q *agent.Question) *promptUse {
	k := promptKey{q.Persona, q.Instrument, q.Item, q.Round, q.Context}
	l.mu.Lock()
	u := l.other[k]
	if u == nil {
		u = &promptUse{}
		l.other[k] = u
	}
	l.mu.Unlock()
	return u
}

// each calls fn for every question asked, with its use.
func (l *promptLog) each(fn func(promptKey, *promptUse)) {
	for i, in := range l.insts {
		n := len(in.Items)
		for c := range l.cells[i] {
			if u := &l.cells[i][c]; u.agents.Load() > 0 {
				fn(promptKey{persona: agent.Persona{Value: values.Value(c/n - 1), Style: l.style}, inst: in, item: c % n}, u)
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, u := range l.other {
		fn(k, u)
	}
}

// prefetchLog is a promptLog around a Prefetcher, which it stays: the
// fetch ahead asks for the agents and is not counted.
type prefetchLog struct{ *promptLog }

func (l prefetchLog) Prefetch(ctx context.Context, qs []*agent.Question) error {
	return l.inner.(Prefetcher).Prefetch(ctx, qs)
}

// promptRecorder records the prompts of a plan's models. Of a
// test-primed model it records what reaches the model under the priming
// (the agents' questions with the filled-in test in their context), and
// apart, in fills, the questions that fill the test in, which serve no
// agent's answer directly.
type promptRecorder struct {
	models []scenarios.Model
	logs   map[string]*promptLog
	fills  map[string]*promptLog
}

// recordPrompts wraps every model of p so that the prompts its agents
// ask are recorded. It must be called before the plan's shards are made.
func recordPrompts(sc *scenarios.Scenario, p *Plan) *promptRecorder {
	r := &promptRecorder{logs: map[string]*promptLog{}, fills: map[string]*promptLog{}}
	var insts []*questionnaires.Instrument
	for _, in := range p.Instruments {
		insts = append(insts, in)
	}
	slices.SortFunc(insts, func(a, b *questionnaires.Instrument) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range sc.Models {
		inner, ok := p.Models[m.Name]
		if !ok {
			continue
		}
		r.models = append(r.models, m)
		if tp, ok := inner.(*testPrimed); ok {
			l, fill := newPromptLog(tp.inner, p.Styles[m.Name], insts), newPromptLog(tp.inner, tp.style, insts)
			tp.inner, tp.fill = l, fill
			r.logs[m.Name], r.fills[m.Name] = l, fill
			continue
		}
		l := newPromptLog(inner, p.Styles[m.Name], insts)
		r.logs[m.Name] = l
		if _, ok := inner.(Prefetcher); ok {
			p.Models[m.Name] = prefetchLog{l}
		} else {
			p.Models[m.Name] = l
		}
	}
	return r
}

// Rows renders the recorded prompts, in the scenario's model order, then
// by instrument, round, item, persona, style and text. A model with the
// synthetic backend, which reads no prompt, gets the chat messages an
// OpenAI-compatible endpoint would have been sent. The questions that
// fill in a test-priming test count no agents.
func (r *promptRecorder) Rows() []analysis.PromptRow {
	var out []analysis.PromptRow
	for _, m := range r.models {
		endpoint := m.Endpoint
		if endpoint == "" {
			endpoint = scenarios.EndpointChat
		}
		start := len(out)
		add := func(k promptKey, u *promptUse, agents bool) {
			q := agent.Question{Persona: k.persona, Instrument: k.inst, Item: k.item, Round: k.round, Context: k.context}
			p := agent.Render(&q)
			row := analysis.PromptRow{Model: m.Name, Backend: string(m.Backend), Mode: string(m.Mode), Endpoint: endpoint,
				Persona: k.persona.Value.Code(), Style: string(cmp.Or(k.persona.Style, agent.StyleDescription)),
				Instrument: k.inst.Name, Item: k.inst.Items[k.item].ID, Round: k.round, System: p.System, User: p.User}
			if agents {
				row.Agents = int(u.agents.Load())
			}
			if endpoint == scenarios.EndpointCompletions {
				row.System, row.User = "", agent.CompletionPrompt(p)
			}
			if m.Mode == scenarios.Sample {
				row.Samples = int(u.maxRank.Load()) + 1
			}
			out = append(out, row)
		}
		r.logs[m.Name].each(func(k promptKey, u *promptUse) { add(k, u, true) })
		if f := r.fills[m.Name]; f != nil {
			f.each(func(k promptKey, u *promptUse) { add(k, u, false) })
		}
		rows := out[start:]
		slices.SortFunc(rows, comparePromptRows)
		// A test filled in without priming (style none) asks what the
		// agents ask: one row for both.
		kept := rows[:0]
		for _, row := range rows {
			if n := len(kept); n > 0 && comparePromptRows(kept[n-1], row) == 0 {
				kept[n-1].Agents += row.Agents
				kept[n-1].Samples = max(kept[n-1].Samples, row.Samples)
				continue
			}
			kept = append(kept, row)
		}
		out = out[:start+len(kept)]
	}
	return out
}

func comparePromptRows(a, b analysis.PromptRow) int {
	return cmp.Or(cmp.Compare(a.Instrument, b.Instrument), cmp.Compare(a.Round, b.Round), cmp.Compare(a.Item, b.Item),
		cmp.Compare(a.Persona, b.Persona), cmp.Compare(a.Style, b.Style), cmp.Compare(a.System, b.System), cmp.Compare(a.User, b.User))
}

// RebuildPrompts returns the prompts.csv rows of a run of plan p whose
// agents asked their models elsewhere (the agent hosts of a run over
// NATS): the rows a run in one process records, rebuilt from the plan p
// and the answers in col, which must be complete. Every agent of the
// pool answers every plan of p.Study, so a questionnaire's prompts and
// counts follow from the plan alone; a game round's contexts follow from
// the earlier rounds' decisions, replayed from col as the run played
// them. A model under test priming (priming "test" or "priming+test")
// shows the test as the model filled it in, which is not among the
// answers: tests, by model, are the tests the hosts filled in
// (FilledTests); a model whose tests lack a value of the pool, or
// disagree on one, is left out. It errors when a game round cannot be
// replayed from col.
func RebuildPrompts(p *Plan, col *analysis.Collector, tests map[string][]FilledTest) ([]analysis.PromptRow, error) {
	r := &promptRecorder{logs: map[string]*promptLog{}, fills: map[string]*promptLog{}}
	var insts []*questionnaires.Instrument
	for _, in := range p.Instruments {
		insts = append(insts, in)
	}
	slices.SortFunc(insts, func(a, b *questionnaires.Instrument) int { return cmp.Compare(a.Name, b.Name) })
	primes := map[string]func(*agent.Question) agent.Question{}
	for _, m := range p.models {
		inner, ok := p.Models[m.Name]
		if !ok {
			continue
		}
		if tp, ok := inner.(*testPrimed); ok {
			fill := newPromptLog(nil, tp.style, insts)
			prime, ok := tp.replay(p.Study.Pool.Persona, tests[m.Name], fill)
			if !ok {
				continue
			}
			primes[m.Name], r.fills[m.Name] = prime, fill
		}
		r.models = append(r.models, m)
		r.logs[m.Name] = newPromptLog(nil, p.Styles[m.Name], insts)
	}
	// The agents of each persona and the highest rank among them.
	pool := p.Study.Pool
	var agents, top [values.N + 1]int
	for id := range pool.Size() {
		v := pool.Persona[id] + 1
		agents[v]++
		top[v] = max(top[v], int(pool.Rank[id]))
	}
	for _, pl := range p.Study.Plans {
		l := r.logs[pl.Model]
		if l == nil || pl.Round != 0 {
			continue // game rounds below
		}
		for v := range agents {
			if agents[v] == 0 {
				continue
			}
			for _, item := range pl.Items {
				q := agent.Question{Persona: agent.Persona{Value: values.Value(v - 1), Style: p.Styles[pl.Model]},
					Instrument: pl.Instrument, Item: item, Sample: top[v]}
				if prime := primes[pl.Model]; prime != nil {
					q = prime(&q)
				}
				l.use(&q).addN(agents[v], top[v])
			}
		}
	}
	for _, g := range p.Study.Games {
		l := r.logs[g.Model]
		if l == nil {
			continue
		}
		if err := replayGamePrompts(l, primes[g.Model], g, p, col); err != nil {
			return nil, err
		}
	}
	return r.Rows(), nil
}

// replayGamePrompts notes the questions of every round of game g as its
// agents asked them: the probable choice with the agent's memory (and
// the rate shown) in its context, then the final decision with the
// probable choice it gave added, the memories following from the
// decisions recorded in col; prime, when not nil, makes them what a
// test-primed model receives.
func replayGamePrompts(l *promptLog, prime func(*agent.Question) agent.Question, g analysis.CharityGame, p *Plan, col *analysis.Collector) error {
	note := func(q *agent.Question) {
		if prime != nil {
			qq := prime(q)
			q = &qq
		}
		l.note(q)
	}
	pool := p.Study.Pool
	s, err := g.NewSession(pool)
	if err != nil {
		return err
	}
	stated := make([]string, g.Probable.Scale.Max+1)
	for v := g.Probable.Scale.Min; v <= g.Probable.Scale.Max; v++ {
		stated[v] = agent.Round{Probable: v}.Context(g.Probable)
	}
	style := p.Styles[g.Model]
	for round := 1; round <= g.Config.Rounds; round++ {
		for s.Next() < round {
			if _, err := g.Record(s, col); err != nil {
				return err
			}
		}
		sheets := col.Sheets(g.Plans(round)[:1])
		if len(sheets) != 1 {
			return fmt.Errorf("game of %s: round %d: no probable choices", g.Model, round)
		}
		probable := sheets[0]
		rate, shown := s.RateShown()
		contexts := map[agent.Memory]string{}
		for id := range pool.Size() {
			m := s.Memory(id)
			c, ok := contexts[m]
			if !ok {
				c = agent.Round{Memory: m, RateShown: shown, Rate: rate}.Context(g.Probable)
				contexts[m] = c
			}
			q := agent.Question{Persona: agent.Persona{Value: pool.Persona[id], Style: style}, Instrument: g.Probable,
				Sample: int(pool.Rank[id]), Round: round, Context: c}
			note(&q)
			q.Instrument = g.Decision
			if code := probable.Codes[id*len(g.Probable.Items)]; code != 0 {
				if v := int(code) - 1 + g.Probable.Scale.Min; v > 0 && v < len(stated) && stated[v] != "" {
					if q.Context == "" {
						q.Context = stated[v]
					} else {
						q.Context += "\n\n" + stated[v]
					}
				}
			}
			note(&q)
		}
	}
	return nil
}

// replay is what the agents' questions become under t's priming, with
// the tests filled in for a run whose agents asked elsewhere, and notes
// in fill the questions that filled them in. It is not ok when tests lack
// a value that the personas hold, or give two different tests of one.
func (t *testPrimed) replay(personas []values.Value, tests []FilledTest, fill *promptLog) (func(*agent.Question) agent.Question, bool) {
	var filled [values.N]*FilledTest
	for i := range tests {
		f := &tests[i]
		v, err := values.Parse(f.Value)
		if err != nil || !v.Valid() || len(f.Answers) != len(t.pvq.Items) || len(f.Asked) != len(t.pvq.Items) {
			return nil, false
		}
		if g := filled[v]; g != nil && !slices.Equal(g.Answers, f.Answers) {
			return nil, false // hosts filled the test in differently
		}
		if filled[v] == nil {
			filled[v] = &FilledTest{Value: f.Value, Answers: f.Answers, Asked: slices.Clone(f.Asked)}
		}
		for i, n := range f.Asked {
			filled[v].Asked[i] = max(filled[v].Asked[i], n)
		}
	}
	var texts [values.N]string
	for _, v := range personas {
		if !v.Valid() || texts[v] != "" {
			continue
		}
		f := filled[v]
		if f == nil {
			return nil, false
		}
		texts[v] = agent.TestContext(t.pvq, f.Answers)
		for i, n := range f.Asked {
			for s := range n {
				q := agent.Question{Persona: agent.Persona{Value: v, Style: t.style}, Instrument: t.pvq, Item: i, Sample: s}
				fill.note(&q)
			}
		}
	}
	return func(q *agent.Question) agent.Question {
		if v := q.Persona.Value; v.Valid() && q.Persona.Style != agent.StyleNone {
			return t.primed(q, texts[v])
		}
		return *q
	}, true
}
