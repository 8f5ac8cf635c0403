package main

import (
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// batchObserver is a run's observer told about every stored batch.
type batchObserver func(*agent.Batch)

func (f batchObserver) Start(sim.Layout)                   {}
func (f batchObserver) Phase(sim.PhaseStart)               {}
func (f batchObserver) Batch(b *agent.Batch, _ sim.Counts) { f(b) }

// buildPlan is the plan of sc with the model backends a run makes, closed
// when the test ends.
func buildPlan(t testing.TB, sc *scenarios.Scenario) (*sim.Plan, error) {
	t.Helper()
	models := newModelSets(t.TempDir(), nil, nil)
	t.Cleanup(models.close)
	return sim.NewPlan(sc, models.backends())
}
