package sim_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// flat is a fake model: every answer is a distribution peaked on one
// point, and it keeps the context of every question asked.
type flat struct {
	mu       sync.Mutex
	contexts map[string][]string // by instrument
}

func (f *flat) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	f.mu.Lock()
	f.contexts[q.Instrument.Name] = append(f.contexts[q.Instrument.Name], q.Context)
	f.mu.Unlock()
	points := q.Instrument.Scale.Points()
	d := make([]float64, points)
	for k := range d {
		d[k] = 0.5 / float64(points-1)
	}
	peak := q.Item % points
	if q.Persona.Value.Valid() {
		peak = (q.Item + int(q.Persona.Value)) % points
	}
	d[peak] = 0.5
	return agent.Reply{Dist: d}, nil
}

// fakeBackends makes every model of a scenario the same model (a flat one).
type fakeBackends struct{ model agent.Model }

func (b fakeBackends) Model(_ *scenarios.Scenario, m scenarios.Model, _ func(values.Value) int) (agent.Model, analysis.ModelInfo, error) {
	return b.model, analysis.ModelInfo{Name: m.Name, Backend: "fake", Mode: "distribution"}, nil
}
func (fakeBackends) Check(context.Context) error { return nil }
func (fakeBackends) Report(_ context.Context, models []analysis.ModelInfo) sim.Report {
	return sim.Report{Models: models}
}

const gameScenario = `name = "loop"
seed = 3

[population]
size = 60
strategy = "h-np"

[[questionnaires]]
name = "pvq40"
items = 12

[games.paired_charity]
rounds = 3

[analysis]
bootstrap = "paper"
bootstrap_iterations = 5
bootstrap_size = 50
null_iterations = 19
references = ["pvq40_smacof_mrat"]
`

func parse(t *testing.T, src string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse([]byte(src), "loop.toml")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// The run in memory plays the game rounds as the distributed run does:
// every round after the first carries the agents' memories into their
// prompts, and every answer is collected.
func TestLocalPlaysGameRoundsWithMemories(t *testing.T) {
	model := &flat{contexts: map[string][]string{}}
	e := &sim.Engine{Backends: func() sim.Backends { return fakeBackends{model} }, Open: sim.OpenLocal}
	res, err := e.Run(t.Context(), parse(t, gameScenario), "")
	if err != nil {
		t.Fatal(err)
	}
	a := res.Outcome.Results.Answers
	if a.Expected == 0 || a.Valid+a.Invalid != a.Expected {
		t.Errorf("answers: got %+v, want every expected answer in", a)
	}
	g := res.Outcome.Results.Games
	if g == nil || len(g.PairedCharity) != 1 || len(g.PairedCharity[0].PerRound) != 3 {
		t.Fatalf("got games %+v, want one game of 3 rounds", g)
	}
	probable := res.Study.Games[0].Probable.Name
	remembered := 0
	for _, c := range model.contexts[probable] {
		if c != "" { // round 1 has nothing to remember
			remembered++
		}
	}
	players := res.Outcome.Results.Games.PairedCharity[0].Players
	if remembered < 2*players {
		t.Errorf("got %d probable-choice questions with a memory of earlier rounds, want at least %d (rounds 2 and 3 of %d players)", remembered, 2*players, players)
	}
}

// lossy loses the first dispatch's tasks for shard 0, as a cluster whose
// host died with them would, and counts the dispatches.
type lossy struct {
	*sim.Local
	mu    sync.Mutex
	calls int
	lost  bool
}

func (l *lossy) Dispatch(ctx context.Context, tasks []sim.Task) error {
	l.mu.Lock()
	l.calls++
	var keep []sim.Task
	for _, t := range tasks {
		if t.Shard == 0 && !l.lost {
			continue
		}
		keep = append(keep, t)
	}
	l.lost = true
	l.mu.Unlock()
	return l.Local.Dispatch(ctx, keep)
}

// A phase that stalls while nothing is at work hands its missing work out
// again, and only that.
func TestLoopHandsOutLostWorkAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := &flat{contexts: map[string][]string{}}
		sc := parse(t, strings.Replace(gameScenario, "[games.paired_charity]\nrounds = 3\n", "", 1))
		p, err := sim.NewPlan(sc, fakeBackends{model})
		if err != nil {
			t.Fatal(err)
		}
		d := &lossy{Local: sim.NewLocal(p, 4)}
		loop := &sim.Loop{Layout: sim.Layout{ID: "lossy", Plan: p, Shards: 4, Dispatcher: d}, Stall: time.Second}
		col, err := loop.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if e, v, i := col.Counts(); v+i != e {
			t.Errorf("got %d of %d answers, want all", v+i, e)
		}
		if d.calls != 2 {
			t.Errorf("got %d dispatches, want 2: the phase, then its lost work", d.calls)
		}
		if got, want := len(model.contexts["pvq40"]), 12*p.Study.Pool.Size(); got != want {
			t.Errorf("got %d questions, want %d: the lost work once, nothing twice", got, want)
		}
	})
}

// A run that finds answers already stored (a resumed run) hands out only
// the work still missing.
func TestLoopResumesWithWhatIsStored(t *testing.T) {
	sc := parse(t, strings.Replace(gameScenario, "[games.paired_charity]\nrounds = 3\n", "", 1))
	first := &flat{contexts: map[string][]string{}}
	p, err := sim.NewPlan(sc, fakeBackends{first})
	if err != nil {
		t.Fatal(err)
	}
	var stored []*agent.Batch
	rec := &recording{Local: sim.NewLocal(p, 3)}
	loop := &sim.Loop{Layout: sim.Layout{ID: "first", Plan: p, Shards: 3, Dispatcher: rec}}
	if _, err := loop.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored = rec.batches[:len(rec.batches)/2]

	again := &flat{contexts: map[string][]string{}}
	p2, err := sim.NewPlan(sc, fakeBackends{again})
	if err != nil {
		t.Fatal(err)
	}
	resumed := &replaying{Local: sim.NewLocal(p2, 3), stored: stored}
	loop = &sim.Loop{Layout: sim.Layout{ID: "again", Plan: p2, Shards: 3, Dispatcher: resumed}}
	col, err := loop.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if e, v, i := col.Counts(); v+i != e {
		t.Errorf("got %d of %d answers, want all", v+i, e)
	}
	asked, storedAnswers := len(again.contexts["pvq40"]), 0
	for _, b := range stored {
		storedAnswers += len(b.Codes)
	}
	if want := 12*p.Study.Pool.Size() - storedAnswers; asked != want {
		t.Errorf("resumed run asked %d questions, want %d (the %d stored answers not again)", asked, want, storedAnswers)
	}
}

// recording keeps a copy of every batch its Local delivers.
type recording struct {
	*sim.Local
	mu      sync.Mutex
	batches []*agent.Batch
}

func (r *recording) Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error {
	return r.Local.Deliver(ctx, func(b *agent.Batch) error {
		c := *b
		r.mu.Lock()
		r.batches = append(r.batches, &c)
		r.mu.Unlock()
		return sink(b)
	}, caughtUp)
}

// replaying delivers batches stored before it started, then its Local's.
type replaying struct {
	*sim.Local
	stored []*agent.Batch
}

func (r *replaying) Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error {
	for _, b := range r.stored {
		if err := sink(b); err != nil {
			return err
		}
	}
	return r.Local.Deliver(ctx, sink, caughtUp)
}
