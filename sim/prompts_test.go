package sim

import (
	"context"
	"regexp"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

type echoModel struct{}

func (echoModel) Ask(context.Context, *agent.Question) (agent.Reply, error) {
	return agent.Reply{Answer: agent.Answer{Value: 1, Valid: true}}, nil
}

// TestPromptRows: the questions a model is asked are counted once per
// distinct prompt, the plain ones and those with a context, a round or
// another style alike; rows carry the agents and, in sample mode, the
// samples (highest rank plus one), with the completions prompt as sent.
func TestPromptRows(t *testing.T) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{Models: map[string]agent.Model{"m": echoModel{}}, Styles: map[string]agent.Style{"m": agent.StyleName},
		Instruments: map[string]*questionnaires.Instrument{in.Name: in}}
	sc := &scenarios.Scenario{Models: []scenarios.Model{{Name: "m", Backend: scenarios.OpenAI, Mode: scenarios.Sample, Endpoint: scenarios.EndpointCompletions}}}
	rec := recordPrompts(sc, p)
	m := p.Models["m"]
	ask := func(v values.Value, style agent.Style, item, round, rank int, context string) {
		q := &agent.Question{Persona: agent.Persona{Value: v, Style: style}, Instrument: in, Item: item, Round: round, Sample: rank, Context: context}
		if _, err := m.Ask(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	ask(values.Power, agent.StyleName, 0, 0, 0, "")
	ask(values.Power, agent.StyleName, 0, 0, 2, "")
	ask(values.None, agent.StyleName, 0, 0, 0, "")
	ask(values.Power, agent.StyleName, 0, 0, 1, "earlier")
	ask(values.Power, agent.StyleTest, 0, 0, 0, "")
	ask(values.Power, agent.StyleName, 0, 3, 0, "")
	rows := rec.Rows()
	if len(rows) != 5 {
		t.Fatalf("got %d rows, want 5: %+v", len(rows), rows)
	}
	type want struct {
		persona, style  string
		round           int
		context         string
		agents, samples int
	}
	for i, w := range []want{
		{"PO", "name", 0, "", 2, 3},
		{"PO", "name", 0, "earlier", 1, 2},
		{"PO", "test", 0, "", 1, 1},
		{"none", "name", 0, "", 1, 1},
		{"PO", "name", 3, "", 1, 1},
	} {
		var r *analysis.PromptRow
		for j := range rows {
			q := agent.Question{Persona: agent.Persona{Value: personaOf(w.persona), Style: agent.Style(w.style)}, Instrument: in, Round: w.round, Context: w.context}
			if rows[j].Persona == w.persona && rows[j].Style == w.style && rows[j].Round == w.round && rows[j].User == agent.CompletionPrompt(agent.Render(&q)) {
				r = &rows[j]
			}
		}
		if r == nil {
			t.Errorf("case %d: no row for %+v in %+v", i, w, rows)
			continue
		}
		if r.Agents != w.agents || r.Samples != w.samples || r.System != "" || r.Endpoint != "completions" || r.Item != in.Items[0].ID {
			t.Errorf("case %d: got %+v, want %d agents, %d samples, the completions prompt", i, *r, w.agents, w.samples)
		}
	}
}

func personaOf(code string) values.Value {
	v, err := values.Parse(code)
	if err != nil {
		return values.None
	}
	return v
}

// TestNewRunID: two runs of the same scenario and seed get different ids,
// each the registry's NAME-SEED, then the time and a random part, all of
// it usable as a NATS subject token and a file name.
func TestNewRunID(t *testing.T) {
	sc := &scenarios.Scenario{Name: "tiny", Seed: 7}
	a, b := NewRunID(sc), NewRunID(sc)
	if a == b {
		t.Errorf("got %q twice, want two ids", a)
	}
	re := regexp.MustCompile(`^tiny-7-\d{8}-\d{6}-[0-9a-f]{8}$`)
	for _, id := range []string{a, b} {
		if !re.MatchString(id) {
			t.Errorf("got %q, want it to match %s", id, re)
		}
	}
	if RunID(sc) != "tiny-7" {
		t.Errorf("RunID: got %q, want tiny-7 (the registry key a resume names)", RunID(sc))
	}
}

// TestPromptRowsTestPriming: of a test-primed model the table lists what
// reaches the model, the filled-in test in the context and no value
// prefix (priming "test"), and the questions that filled the test in,
// which serve no agent.
func TestPromptRowsTestPriming(t *testing.T) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPrimed{inner: echoModel{}, mode: scenarios.TestOnly, style: agent.StyleDescription, pvq: in, samples: 1}
	p := &Plan{Models: map[string]agent.Model{"m": tp}, Styles: map[string]agent.Style{"m": agent.StyleDescription},
		Instruments: map[string]*questionnaires.Instrument{in.Name: in}}
	sc := &scenarios.Scenario{Models: []scenarios.Model{{Name: "m", Backend: scenarios.OpenAI, Mode: scenarios.Distribution}}}
	rec := recordPrompts(sc, p)
	for _, v := range []values.Value{values.Power, values.Power, values.Power, values.None} {
		q := &agent.Question{Persona: agent.Persona{Value: v, Style: agent.StyleDescription}, Instrument: in}
		if _, err := p.Models["m"].Ask(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	rows := rec.Rows()
	if len(rows) != 2+len(in.Items) {
		t.Fatalf("got %d rows, want %d: the agents' two prompts and the test's %d", len(rows), 2+len(in.Items), len(in.Items))
	}
	ones := make([]int, len(in.Items))
	for i := range ones {
		ones[i] = 1
	}
	primed := agent.Render(&agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleTest}, Instrument: in,
		Context: agent.TestContext(in, ones)})
	var fills, agents int
	for _, r := range rows {
		switch {
		case r.Persona == "PO" && r.Style == "test":
			if r.Agents != 3 || r.System != "" || r.User != primed.User {
				t.Errorf("primed row: got %+v, want 3 agents and the test in the user message, no system message", r)
			}
			agents += r.Agents
		case r.Persona == "none":
			if r.Agents != 1 {
				t.Errorf("unprimed row: got %d agents, want 1", r.Agents)
			}
			agents += r.Agents
		case r.Persona == "PO" && r.Style == "description" && r.Agents == 0 && r.System != "":
			fills++
		default:
			t.Errorf("unexpected row %+v", r)
		}
	}
	if fills != len(in.Items) || agents != 4 {
		t.Errorf("got %d test rows and %d agents, want %d and 4", fills, agents, len(in.Items))
	}
}
