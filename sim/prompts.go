package sim

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
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

// promptLog is one model's distinct questions. Agents of a persona share
// their prompts, so after the first ask of each a lookup is a read of a
// sync.Map, which takes no lock.
type promptLog struct {
	inner agent.Model
	seen  sync.Map // promptKey → *promptUse
}

func (l *promptLog) Ask(ctx context.Context, q *agent.Question) (agent.Reply, error) {
	k := promptKey{q.Persona, q.Instrument, q.Item, q.Round, q.Context}
	v, ok := l.seen.Load(k)
	if !ok {
		v, _ = l.seen.LoadOrStore(k, &promptUse{})
	}
	u := v.(*promptUse)
	u.agents.Add(1)
	for r := u.maxRank.Load(); int64(q.Sample) > r && !u.maxRank.CompareAndSwap(r, int64(q.Sample)); r = u.maxRank.Load() {
	}
	return l.inner.Ask(ctx, q)
}

// prefetchLog is a promptLog around a Prefetcher, which it stays: the
// fetch ahead asks for the agents and is not counted.
type prefetchLog struct{ *promptLog }

func (l prefetchLog) Prefetch(ctx context.Context, qs []*agent.Question) error {
	return l.inner.(Prefetcher).Prefetch(ctx, qs)
}

// promptRecorder records the prompts of a plan's models.
type promptRecorder struct {
	models []scenarios.Model
	logs   map[string]*promptLog
}

// recordPrompts wraps every model of p so that the prompts its agents
// ask are recorded. It must be called before the plan's shards are made.
func recordPrompts(sc *scenarios.Scenario, p *Plan) *promptRecorder {
	r := &promptRecorder{logs: map[string]*promptLog{}}
	for _, m := range sc.Models {
		inner, ok := p.Models[m.Name]
		if !ok {
			continue
		}
		l := &promptLog{inner: inner}
		r.models = append(r.models, m)
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
// OpenAI-compatible endpoint would have been sent.
func (r *promptRecorder) Rows() []analysis.PromptRow {
	var out []analysis.PromptRow
	for _, m := range r.models {
		endpoint := m.Endpoint
		if endpoint == "" {
			endpoint = scenarios.EndpointChat
		}
		start := len(out)
		r.logs[m.Name].seen.Range(func(key, val any) bool {
			k, u := key.(promptKey), val.(*promptUse)
			q := agent.Question{Persona: k.persona, Instrument: k.inst, Item: k.item, Round: k.round, Context: k.context}
			p := agent.Render(&q)
			row := analysis.PromptRow{Model: m.Name, Backend: string(m.Backend), Mode: string(m.Mode), Endpoint: endpoint,
				Persona: k.persona.Value.Code(), Style: string(cmp.Or(k.persona.Style, agent.StyleDescription)),
				Instrument: k.inst.Name, Item: k.inst.Items[k.item].ID, Round: k.round,
				System: p.System, User: p.User, Agents: int(u.agents.Load())}
			if endpoint == scenarios.EndpointCompletions {
				row.System, row.User = "", agent.CompletionPrompt(p)
			}
			if m.Mode == scenarios.Sample {
				row.Samples = int(u.maxRank.Load()) + 1
			}
			out = append(out, row)
			return true
		})
		slices.SortFunc(out[start:], func(a, b analysis.PromptRow) int {
			return cmp.Or(cmp.Compare(a.Instrument, b.Instrument), cmp.Compare(a.Round, b.Round), cmp.Compare(a.Item, b.Item),
				cmp.Compare(a.Persona, b.Persona), cmp.Compare(a.Style, b.Style), cmp.Compare(a.System, b.System), cmp.Compare(a.User, b.User))
		})
	}
	return out
}
