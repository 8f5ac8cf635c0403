package sim

import (
	"context"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/scenarios"
)

// Rehearsal is what a rehearsed run did: its answers, and the answers of
// its model-specific calibration run (zero without one).
type Rehearsal struct {
	Answers     Counts
	Calibration Counts
}

// Rehearse runs sc as Run does, its preparation (the model-specific
// calibration and the test priming included) and every phase with its
// game rounds, but analyses and writes nothing. Backed by models that
// answer at once (the model server's synthetic respondents), it makes
// exactly the requests the run will make, in the order and with the
// prompts the run will send: the plan of a run is measured by rehearsing
// it, not by a second model of how the clients batch their questions.
func (e *Engine) Rehearse(ctx context.Context, sc *scenarios.Scenario) (Rehearsal, error) {
	var r Rehearsal
	cal, main := &lastCounts{}, &lastCounts{}
	ec := *e
	ec.Calibration = observers(e.Calibration, cal)
	sc, prep, err := ec.Prepare(ctx, sc)
	if err != nil {
		return r, err
	}
	b := e.Backends()
	p, err := NewPlan(sc, b)
	if err != nil {
		return r, err
	}
	prep.Apply(p)
	if err := b.Check(ctx); err != nil {
		return r, err
	}
	lay := Layout{ID: NewRunID(sc), Name: sc.Name, Plan: p, Shards: ShardCount(p.Study.Pool.Size(), sc.Run.Shards)}
	d, closeD, err := e.Open(ctx, lay)
	if err != nil {
		return r, err
	}
	lay.Dispatcher = d
	loop := &Loop{Layout: lay, Observer: observers(e.Observer, main)}
	_, err = loop.Run(ctx)
	if cerr := closeD(); err == nil && cerr != nil {
		err = cerr
	}
	r.Answers, r.Calibration = main.n, cal.n
	return r, err
}

func observers(o Observer, more Observer) Observer {
	if o == nil {
		return more
	}
	return Observers{o, more}
}

// lastCounts keeps the counts of the last batch it saw.
type lastCounts struct {
	NoObserver
	n Counts
}

func (l *lastCounts) Batch(_ *agent.Batch, n Counts) { l.n = n }
