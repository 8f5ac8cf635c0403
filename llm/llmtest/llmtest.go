// Package llmtest provides test doubles of agent.Model, like httptest does
// for HTTP: one shared fake for every package's tests.
//
// It imports only the domain (agent, values), never llm itself nor
// nats.go, go-openai or client_golang, so that domain tests can use it
// without reaching an adapter.
package llmtest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// Model is a scripted agent.Model. By default it answers every question with
// a fixed answer that encodes the persona (the value's index + Scale.Min, or
// Scale.Max for no dominant value), so tests can check that each answer
// reached the right agent. Calls are counted.
type Model struct {
	// Reply, when set, decides the reply to each question.
	Reply func(q *agent.Question) (agent.Reply, error)

	calls atomic.Int64
	mu    sync.Mutex
	seen  map[agent.Persona]int
}

var _ agent.Model = (*Model)(nil)

// Ask answers a question.
func (m *Model) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	m.calls.Add(1)
	m.mu.Lock()
	if m.seen == nil {
		m.seen = map[agent.Persona]int{}
	}
	m.seen[q.Persona]++
	m.mu.Unlock()
	if m.Reply != nil {
		return m.Reply(q)
	}
	return agent.Reply{Answer: PersonaAnswer(q)}, nil
}

// PersonaAnswer is the default answer: a valid value derived from the
// persona, clamped to the scale.
func PersonaAnswer(q *agent.Question) agent.Answer {
	sc := q.Instrument.Scale
	v := sc.Max
	if q.Persona.Value != values.None {
		v = min(sc.Min+int(q.Persona.Value), sc.Max)
	}
	return agent.Answer{Value: v, Valid: true}
}

// Calls is the number of questions asked so far.
func (m *Model) Calls() int64 { return m.calls.Load() }

// Asked reports how many questions each persona asked.
func (m *Model) Asked() map[agent.Persona]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[agent.Persona]int, len(m.seen))
	for k, v := range m.seen {
		out[k] = v
	}
	return out
}
