package metrics

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// midModel answers every question with the same distribution over the
// scale: the figures followed, not the answers, are under test.
type midModel struct{}

func (midModel) Ask(_ context.Context, q *agent.Question) (agent.Reply, error) {
	d := make([]float64, q.Instrument.Scale.Points())
	for k := range d {
		d[k] = 1 / float64(len(d))
	}
	return agent.Reply{Dist: d}, nil
}

type midBackends struct{}

func (midBackends) Model(_ *scenarios.Scenario, m scenarios.Model, _ func(values.Value) int) (agent.Model, analysis.ModelInfo, error) {
	return midModel{}, analysis.ModelInfo{Name: m.Name, Backend: "fake", Mode: "distribution"}, nil
}
func (midBackends) Check(context.Context) error { return nil }
func (midBackends) Report(_ context.Context, models []analysis.ModelInfo) sim.Report {
	return sim.Report{Models: models}
}

// batches keeps the batches a run stores, for replaying them.
type batches struct {
	sim.NoObserver
	mu  sync.Mutex
	all []*agent.Batch
}

func (b *batches) Batch(x *agent.Batch, _ sim.Counts) {
	b.mu.Lock()
	b.all = append(b.all, x)
	b.mu.Unlock()
}

// followedRun runs a small scenario in memory, observed by obs.
func followedRun(t *testing.T, obs sim.Observer) (sim.Layout, *analysis.Collector) {
	t.Helper()
	sc, err := scenarios.Parse([]byte(`name = "follow"
seed = 5
[population]
size = 40
strategy = "h-np"
[[questionnaires]]
name = "pvq40"
items = 12
`), "follow.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := sim.NewPlan(sc, midBackends{})
	if err != nil {
		t.Fatal(err)
	}
	lay := sim.Layout{ID: "follow-5", Name: sc.Name, Plan: p, Shards: 2, Dispatcher: sim.NewLocal(p, 2)}
	col, err := (&sim.Loop{Layout: lay, Observer: obs}).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return lay, col
}

// answered is the run's answers counted by society_answers_total, and
// its agents in state.
func answered(t *testing.T, m *Metrics, run, state string) (answers, agents float64) {
	t.Helper()
	for _, o := range []string{"valid", "invalid"} {
		answers += value(t, m.answers.WithLabelValues(run, "synthetic", "pvq40", o))
	}
	return answers, value(t, m.agents.WithLabelValues(run, state))
}

// TestFollow: the run this process drives, followed through its observer,
// counts every answer, and Finish marks every agent finished, once.
func TestFollow(t *testing.T) {
	m := New(prometheus.NewRegistry(), BuildInfo{})
	f := Follow(t.Context(), m)
	lay, col := followedRun(t, f.Observer())
	_, valid, invalid := col.Counts()
	f.Finish(nil)
	f.Finish(nil) // later calls do nothing
	agents := float64(lay.Plan.Study.Pool.Size())
	if got, finished := answered(t, m, lay.ID, StateFinished); got != float64(valid+invalid) || finished != agents {
		t.Errorf("got %v answers and %v agents finished, want %d and %v", got, finished, valid+invalid, agents)
	}
}

// TestFollowAnswers: a run followed from its stored answers (the analysis
// service) counts the batches its sink stores, each once, and leaves the
// agents to the orchestrator.
func TestFollowAnswers(t *testing.T) {
	var rec batches
	lay, ran := followedRun(t, &rec)
	m := New(prometheus.NewRegistry(), BuildInfo{})
	f := FollowAnswers(t.Context(), m, lay)
	col := analysis.NewCollector(lay.Plan.Study.Pool.Size(), lay.Plan.Study.Plans)
	sink := f.Sink(col)
	for _, b := range append(rec.all, rec.all[0]) { // the last a redelivery
		if err := sink(b); err != nil {
			t.Fatal(err)
		}
	}
	f.Finish(nil)
	_, valid, invalid := ran.Counts()
	if e, v, i := col.Counts(); v != valid || i != invalid || v+i != e {
		t.Errorf("collector: got %d+%d of %d answers, want %d+%d, all", v, i, e, valid, invalid)
	}
	if got, finished := answered(t, m, lay.ID, StateFinished); got != float64(valid+invalid) || finished != 0 {
		t.Errorf("got %v answers and %v agents finished, want %d and 0 (left to the orchestrator)", got, finished, valid+invalid)
	}
	if got := value(t, m.progress.WithLabelValues(lay.ID)); got != 1 {
		t.Errorf("progress: got %v, want 1", got)
	}
}

// TestFollowNil: without metrics there is nothing to follow, and the sink
// still stores.
func TestFollowNil(t *testing.T) {
	if f := Follow(t.Context(), nil); f != nil || f.Observer() != nil {
		t.Errorf("Follow(nil): got %v, observer %v; want nil, nil", f, f.Observer())
	}
	var rec batches
	lay, _ := followedRun(t, &rec)
	f := FollowAnswers(t.Context(), nil, lay)
	col := analysis.NewCollector(lay.Plan.Study.Pool.Size(), lay.Plan.Study.Plans)
	if err := f.Sink(col)(rec.all[0]); err != nil {
		t.Fatal(err)
	}
	f.Finish(nil)
	if _, v, i := col.Counts(); v+i != int64(len(rec.all[0].Codes)) {
		t.Errorf("nil follower's sink: got %d answers stored, want %d", v+i, len(rec.all[0].Codes))
	}
}
