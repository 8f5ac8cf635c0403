package sim

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// recorder is a fake model: it answers every item with a distribution
// peaked on (value index mod points) and records the questions it got.
type recorder struct {
	mu  sync.Mutex
	got []agent.Question
}

func (r *recorder) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	r.mu.Lock()
	r.got = append(r.got, *q)
	r.mu.Unlock()
	points := q.Instrument.Scale.Points()
	d := make([]float64, points)
	peak := 0
	if q.Persona.Value.Valid() {
		peak = (int(q.Persona.Value) + q.Item) % points
	}
	for k := range d {
		d[k] = 0.5 / float64(points-1)
	}
	d[peak] = 0.5
	return agent.Reply{Dist: d}, nil
}

func TestTestPrimed(t *testing.T) {
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	bfi, _ := questionnaires.Builtin("bfi2")
	for _, mode := range []scenarios.Priming{scenarios.TestOnly, scenarios.PrimingAndTest} {
		t.Run(string(mode), func(t *testing.T) {
			rec := &recorder{}
			m := &testPrimed{inner: rec, mode: mode, style: agent.StyleName, pvq: pvq, samples: 1}
			ctx := context.Background()
			for range 3 {
				q := &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleName}, Instrument: bfi, Item: 4}
				if _, err := m.Ask(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			var fill, asked []agent.Question
			for _, q := range rec.got {
				if q.Instrument == pvq {
					fill = append(fill, q)
				} else {
					asked = append(asked, q)
				}
			}
			if len(fill) != len(pvq.Items) {
				t.Errorf("got %d fill-in questions for three asks, want %d (the test is filled in once per value)", len(fill), len(pvq.Items))
			}
			for _, q := range fill {
				if q.Persona.Style != agent.StyleName || q.Persona.Value != values.Power || q.Context != "" {
					t.Fatalf("fill-in question: got persona %+v, context %q; want the value-prompted model, no context", q.Persona, q.Context)
				}
			}
			if len(asked) != 3 {
				t.Fatalf("got %d questions passed on, want 3", len(asked))
			}
			q := asked[0]
			// Item 1 of the PVQ is answered with the recorder's peak:
			// (Power=4 + item index 0) mod 6 = 4 → answer 5 on the 1..6 scale.
			wantLine := "1. " + pvq.Items[0].Text + "\n   Your answer: 5 (" + pvq.Scale.Label(5) + ")"
			if !strings.Contains(q.Context, wantLine) {
				t.Errorf("context lacks %q:\n%s", wantLine, q.Context)
			}
			wantStyle := agent.StyleName
			if mode == scenarios.TestOnly {
				wantStyle = agent.StyleTest
			}
			if q.Persona.Style != wantStyle {
				t.Errorf("got style %q, want %q", q.Persona.Style, wantStyle)
			}
			prompt := agent.Render(&q)
			if (prompt.System == "") != (mode == scenarios.TestOnly) {
				t.Errorf("mode %s: got system prompt %q", mode, prompt.System)
			}
			if !strings.Contains(prompt.User, "Earlier, you filled in the questionnaire below") {
				t.Errorf("the rendered prompt does not show the test:\n%s", prompt.User)
			}

			// An unprimed agent is asked as it is.
			before := len(rec.got)
			if _, err := m.Ask(ctx, &agent.Question{Persona: agent.Persona{Value: values.None, Style: agent.StyleName}, Instrument: bfi}); err != nil {
				t.Fatal(err)
			}
			if got := rec.got[before]; got.Context != "" || len(rec.got) != before+1 {
				t.Errorf("unprimed agent: got context %q and %d calls, want none and 1", got.Context, len(rec.got)-before)
			}
			// A game's memory stays after the test.
			mem := &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleName}, Instrument: bfi, Context: "Last round you kept."}
			if _, err := m.Ask(ctx, mem); err != nil {
				t.Fatal(err)
			}
			if last := rec.got[len(rec.got)-1]; !strings.HasSuffix(last.Context, "\n\nLast round you kept.") {
				t.Errorf("got context ending %q, want the memory after the test", last.Context[max(0, len(last.Context)-40):])
			}
		})
	}
}

// The calibration's model traffic travels with the run's record, so that
// whichever process writes a distributed run's results adds it to the
// agent hosts': requests, savings, retries and tokens, not what describes
// the main run's answers.
func TestCalibrationTrafficRecorded(t *testing.T) {
	pr := Preparation{notes: []string{"n"}, calls: calibrationTraffic{
		counts: analysis.LLMCounts{Calls: 7, CacheHits: 2, AnswersReused: 3, Retries: 1},
		models: map[string]analysis.ModelTraffic{"m": {Calls: 7, CacheHits: 2, AnswersReused: 3, Retries: 1, StrictRetries: 1,
			PromptTokens: 100, CompletionTokens: 10, Distributions: 5, Questions: 5, CoverageSum: 4.5}},
	}}
	back, err := DecodePreparation(pr.Encode())
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{Study: &analysis.Study{}}
	back.Apply(p)
	counts := analysis.LLMCounts{Calls: 10, CacheHits: 1, AnswersReused: 1, Retries: 0}
	traffic := p.AddCalibrationTraffic(&counts, map[string]analysis.ModelTraffic{"m": {Calls: 10, PromptTokens: 50, Distributions: 9, Questions: 9, CoverageSum: 8}})
	if want := (analysis.LLMCounts{Calls: 17, CacheHits: 3, AnswersReused: 4, Retries: 1}); counts != want {
		t.Errorf("counts: got %+v, want %+v", counts, want)
	}
	want := analysis.ModelTraffic{Calls: 17, CacheHits: 2, AnswersReused: 3, Retries: 1, StrictRetries: 1, PromptTokens: 150, CompletionTokens: 10,
		Distributions: 9, Questions: 9, CoverageSum: 8}
	if got := traffic["m"]; got != want {
		t.Errorf("traffic: got %+v, want %+v", got, want)
	}
	// Without a calibration nothing is added, and nothing is recorded.
	if raw := (Preparation{}).Encode(); raw != nil {
		t.Errorf("empty preparation encoded as %s", raw)
	}
}
