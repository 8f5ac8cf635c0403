package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/society-sim/society/agent"
)

// KeepRuns is how many ended runs a process keeps exporting: enough for a
// dashboard to show the last runs of an analysis service or agent host,
// few enough that a service following runs for months keeps its series
// bounded. An older ended run's series are deleted when another ends.
const KeepRuns = 4

// RunInfo identifies a run in society_run_info.
type RunInfo struct {
	// ID is the run's id (sim.NewRunID, or sim.RunID over NATS), the run label of its series.
	ID string
	// Scenario is the scenario's name and Seed its seed.
	Scenario string
	Seed     uint64
}

// Run holds the series of one run, each labelled with the run's id. Its
// methods are safe for concurrent use; a nil *Run does nothing.
type Run struct {
	m    *Metrics
	info RunInfo

	mu   sync.Mutex
	seen map[batchKey]struct{}
}

// Run starts exporting a run: society_run_info{run, scenario, seed} = 1.
// Starting a run whose id is
// exported already replaces its series: a run taken up again counts its
// answers from the start, as its analysis does. A nil *Metrics returns a
// nil *Run.
func (m *Metrics) Run(info RunInfo) *Run {
	if m == nil {
		return nil
	}
	r := &Run{m: m, info: info, seen: map[batchKey]struct{}{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.runs[info.ID]; ok {
		m.deleteRun(info.ID)
	}
	m.runs[info.ID] = r
	m.info.WithLabelValues(info.ID, orUnknown(info.Scenario), strconv.FormatUint(info.Seed, 10)).Set(1)
	return r
}

// End marks the run over. Its series stay, with their final values, until
// KeepRuns runs ended after it; then they are deleted. Later calls do
// nothing.
func (r *Run) End() {
	if r == nil {
		return
	}
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs[r.info.ID] != r {
		return // replaced by a newer start of the same run, or ended
	}
	for _, id := range m.ended {
		if id == r.info.ID {
			return
		}
	}
	m.ended = append(m.ended, r.info.ID)
	for len(m.ended) > KeepRuns {
		m.deleteRun(m.ended[0])
	}
}

// deleteRun removes every series of run id. The caller holds m.mu.
func (m *Metrics) deleteRun(id string) {
	l := prometheus.Labels{"run": id}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.info, m.agents, m.population, m.tasks, m.answers, m.expected, m.progress, m.pending,
		m.valuesSim, m.behaviorSim, m.cooperation, m.round} {
		v.DeletePartialMatch(l)
	}
	delete(m.runs, id)
	for i, e := range m.ended {
		if e == id {
			m.ended = append(m.ended[:i], m.ended[i+1:]...)
			break
		}
	}
}

// Batch counts an answer batch once: it reports false, and counts a
// redelivery instead, for a batch whose key (model, instrument, round,
// item, shard) it has seen before in this run, as the analysis ignores
// those too. It is called once per batch, so its cost does not grow with
// the answers.
func (r *Run) Batch(b *agent.Batch) bool {
	if r == nil {
		return false
	}
	k := batchKey{b.Model, b.Instrument, b.Round, b.Item, b.Shard}
	r.mu.Lock()
	_, dup := r.seen[k]
	if !dup {
		r.seen[k] = struct{}{}
	}
	r.mu.Unlock()
	if dup {
		r.m.redelivered.Inc()
		return false
	}
	valid := b.Valid()
	r.m.answers.WithLabelValues(r.info.ID, b.Model, b.Instrument, "valid").Add(float64(valid))
	r.m.answers.WithLabelValues(r.info.ID, b.Model, b.Instrument, "invalid").Add(float64(len(b.Invalid)))
	return true
}

// Progress records the run's answer counts: expected in all, valid and
// invalid so far.
func (r *Run) Progress(expected, valid, invalid int64) {
	if r == nil {
		return
	}
	r.m.expected.WithLabelValues(r.info.ID).Set(float64(expected))
	if expected > 0 {
		r.m.progress.WithLabelValues(r.info.ID).Set(float64(valid+invalid) / float64(expected))
	}
}

// TasksPublished counts n task messages for a model and instrument.
func (r *Run) TasksPublished(model, instrument string, n int) {
	if r == nil {
		return
	}
	r.m.tasks.WithLabelValues(r.info.ID, model, instrument).Add(float64(n))
}

// Agents sets how many agents are in a state (StateIdle, StateAnswering,
// StateFinished).
func (r *Run) Agents(state string, n int) {
	if r == nil {
		return
	}
	r.m.agents.WithLabelValues(r.info.ID, state).Set(float64(n))
}

// Population sets how many agents a strategy uses per dominant value code
// (SD … UN, none).
func (r *Run) Population(strategy string, byValue map[string]int) {
	if r == nil {
		return
	}
	for v, n := range byValue {
		r.m.population.WithLabelValues(r.info.ID, strategy, v).Set(float64(n))
	}
}

// NATSPending sets the run's answer messages not yet delivered to the
// analysis.
func (r *Run) NATSPending(n int64) {
	if r == nil {
		return
	}
	r.m.pending.WithLabelValues(r.info.ID).Set(float64(n))
}

// Similarity sets the values similarity of a model and strategy against a
// human reference.
func (r *Run) Similarity(model, strategy, reference string, v float64) {
	if r == nil {
		return
	}
	r.m.valuesSim.WithLabelValues(r.info.ID, model, strategy, reference).Set(v)
}

// BehaviorSimilarity sets the behaviour similarity of a model and strategy
// on a behaviour instrument against a reference.
func (r *Run) BehaviorSimilarity(model, strategy, instrument, reference string, v float64) {
	if r == nil {
		return
	}
	r.m.behaviorSim.WithLabelValues(r.info.ID, model, strategy, instrument, reference).Set(v)
}

// Cooperation records a game round: the round number and, per dominant
// value code, the share of players who contributed.
func (r *Run) Cooperation(game string, round int, byValue map[string]float64) {
	if r == nil {
		return
	}
	r.m.round.WithLabelValues(r.info.ID, game).Set(float64(round))
	for v, c := range byValue {
		r.m.cooperation.WithLabelValues(r.info.ID, game, v).Set(c)
	}
}
