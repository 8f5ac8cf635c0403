package metrics

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// LiveSampleMax bounds the agents whose answers the live values
// similarity reads: 20,000 agents estimate a 10×10 correlation matrix to
// about ±0.01, and scoring them takes milliseconds.
const LiveSampleMax = 20000

// Live follows one run for the metrics (it is the run's sim.Observer):
// it turns the run's events into metrics and, while the run lasts (Run),
// computes the values similarity so far and polls the answer backlog.
//
// It keeps what the live figures need: which agents answer (per
// shard, for society_agents) and a copy of the sampled agents' answers to
// value instruments. It copies answers from the batches the analysis
// stores rather than reading the analysis's collector, whose sheets are
// written under its own lock.
type Live struct {
	m         *Metrics
	sampleMax int

	// run is the run's series, set by Start; read it with runSeries.
	run *Run
	// answersOnly: the process reads the run's answers but not its tasks
	// (FollowAnswers).
	answersOnly bool

	mu          sync.Mutex
	finished    bool
	study       *analysis.Study
	ref         *analysis.Reference
	stride      int // the sample is agents 0, stride, 2·stride, …
	sampled     int
	sheets      map[liveKey]*liveSheet
	shardSize   []int
	outstanding []int // items still to answer per shard
	agents      int
	answering   int
	backlog     backlogger // nil: no backlog to poll
}

type liveKey struct {
	model, instrument string
	round             int
}

// liveSheet is the sampled agents' answers to one value instrument, in the
// collector's encoding (0 = missing or invalid).
type liveSheet struct {
	model    string
	keyOf    []int
	codes    []uint8  // [sample index × items + item]
	received []uint16 // items received per sampled agent
	want     uint16   // items asked
}

// backlogger is a run's dispatcher that can tell the answers its
// consumers have yet to take (the NATS work queue does).
type backlogger interface {
	Backlog(ctx context.Context) (int64, error)
}

// NewLive follows a run on m, reading the answers of at most sampleMax
// agents for the live values similarity (LiveSampleMax when 0).
func NewLive(m *Metrics, sampleMax int) *Live {
	if sampleMax <= 0 {
		sampleMax = LiveSampleMax
	}
	return &Live{m: m, sampleMax: sampleMax, sheets: map[liveKey]*liveSheet{}}
}

var _ sim.Observer = (*Live)(nil)

// FollowAnswers makes l follow a run whose answers this process reads but
// whose tasks it never sees (the analysis service): it cannot tell which
// agents are answering, so it leaves society_agents to the orchestrator
// rather than report every agent idle. Call it before Start.
func (l *Live) FollowAnswers() *Live {
	l.answersOnly = true
	return l
}

// Start learns the run's layout.
func (l *Live) Start(lay sim.Layout) {
	st := lay.Plan.Study
	n := st.Pool.Size()
	run := l.m.Run(RunInfo{ID: lay.ID, Scenario: lay.Name, Seed: lay.Plan.Seed})
	for _, m := range st.Models {
		l.m.ModelInfo(m.Name, m.Backend, m.Mode, m.Synthetic)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.run = run
	l.study = st
	l.stride = max(1, (n+l.sampleMax-1)/l.sampleMax)
	l.sampled = (n + l.stride - 1) / l.stride
	refName := analysis.DefaultReference
	if len(st.References) > 0 {
		refName = st.References[0]
	}
	if ref, err := analysis.LookupReference(refName); err == nil {
		l.ref = &ref
	}
	for _, pl := range st.Plans {
		keyOf, ok := valueKeys(pl)
		if !ok {
			continue
		}
		l.sheets[liveKey{pl.Model, pl.Instrument.Name, pl.Round}] = &liveSheet{model: pl.Model, keyOf: keyOf,
			codes: make([]uint8, l.sampled*len(keyOf)), received: make([]uint16, l.sampled), want: uint16(len(pl.Items))}
	}
	l.shardSize = lay.ShardSizes()
	l.outstanding = make([]int, lay.Shards)
	l.agents = n
	l.backlog, _ = lay.Dispatcher.(backlogger)
	if l.backlog != nil {
		run.NATSPending(0) // nothing is published before the first phase
	}
	l.setAgents()
	for _, s := range st.Pool.Strategies {
		counts := map[string]int{}
		for p, c := range s.Counts {
			counts[population.Persona(p).Code()] = c
		}
		run.Population(s.Name, counts)
	}
}

// valueKeys returns the value each item of a plan's instrument measures,
// or false when some item measures none (not a value instrument), the
// rule the analysis uses.
func valueKeys(pl analysis.Plan) ([]int, bool) {
	keyOf := make([]int, len(pl.Instrument.Items))
	for i, it := range pl.Instrument.Items {
		v, err := values.Parse(it.Key)
		if err != nil || !v.Valid() {
			return nil, false
		}
		keyOf[i] = int(v)
	}
	return keyOf, len(keyOf) > 0
}

// runSeries returns the run's series (nil before Start).
func (l *Live) runSeries() *Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run
}

// setAgents sets society_agents; the caller holds l.mu.
func (l *Live) setAgents() {
	if l.answersOnly {
		return
	}
	if l.finished {
		l.run.Agents(StateIdle, 0)
		l.run.Agents(StateAnswering, 0)
		l.run.Agents(StateFinished, l.agents)
		return
	}
	l.run.Agents(StateIdle, l.agents-l.answering)
	l.run.Agents(StateAnswering, l.answering)
	l.run.Agents(StateFinished, 0)
}

// Phase records the game rounds played so far and marks every shard's
// agents as answering.
func (l *Live) Phase(ph sim.PhaseStart) {
	run := l.runSeries()
	for _, r := range ph.Rounds {
		run.Cooperation(r.Game, r.Round, r.ByValue)
	}
	shards := ph.Shards
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pl := range ph.Plans {
		run.TasksPublished(pl.Model, pl.Instrument.Name, shards)
		for s := 0; s < min(shards, len(l.outstanding)); s++ {
			if l.outstanding[s] == 0 {
				l.answering += l.shardSize[s]
			}
			l.outstanding[s] += len(pl.Items)
		}
	}
	l.setAgents()
}

// Batch counts a stored batch, sets the run's answer counts and copies the
// sampled agents' answers. Its work is proportional to the sampled agents in the
// batch, not to the batch.
func (l *Live) Batch(b *agent.Batch, n sim.Counts) {
	run := l.runSeries()
	run.Progress(n.Expected, n.Valid, n.Invalid)
	if !run.Batch(b) {
		return // seen before: counted as a redelivery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := b.Shard; s >= 0 && s < len(l.outstanding) && l.outstanding[s] > 0 {
		l.outstanding[s]--
		if l.outstanding[s] == 0 {
			l.answering -= l.shardSize[s]
			l.setAgents()
		}
	}
	sh, ok := l.sheets[liveKey{b.Model, b.Instrument, b.Round}]
	if !ok || b.Item < 0 || b.Item >= len(sh.keyOf) {
		return
	}
	items := len(sh.keyOf)
	first := (b.First + l.stride - 1) / l.stride * l.stride
	for a := first; a < b.First+len(b.Codes); a += l.stride {
		k := a / l.stride
		if k >= l.sampled {
			break
		}
		sh.codes[k*items+b.Item] = b.Codes[a-b.First]
		sh.received[k]++
	}
}

// Run refreshes the live figures every interval until ctx is done.
func (l *Live) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.Refresh(ctx) // transient while the run starts or ends
		}
	}
}

// Refresh sets the live figures now: the values similarity so far and the
// answer backlog. An error is the backlog's: it leaves its gauge as it
// was.
func (l *Live) Refresh(ctx context.Context) error {
	l.similarity()
	return l.pending(ctx)
}

// liveMinAgents is the fewest complete respondents a live similarity is
// computed from: fewer give a correlation matrix too noisy to show.
const liveMinAgents = 50

// similarity sets the values similarity so far of every model and
// strategy, from the sampled agents who answered every item of a value
// instrument, against the scenario's first reference.
func (l *Live) similarity() {
	type snap struct {
		model    string
		keyOf    []int
		codes    []uint8
		complete []bool
	}
	l.mu.Lock()
	if l.study == nil || l.ref == nil || l.finished {
		l.mu.Unlock()
		return
	}
	st, ref, stride, run := l.study, l.ref, l.stride, l.run
	var snaps []snap
	for _, sh := range l.sheets {
		s := snap{model: sh.model, keyOf: sh.keyOf, codes: append([]uint8(nil), sh.codes...), complete: make([]bool, len(sh.received))}
		for k, r := range sh.received {
			s.complete[k] = r >= sh.want
		}
		snaps = append(snaps, s)
	}
	l.mu.Unlock()

	var raw, mrat [values.N]float64
	acc := analysis.NewCorrAccumulator(values.N)
	for _, s := range snaps {
		items := len(s.keyOf)
		for si, strat := range st.Pool.Strategies {
			acc.Reset()
			for k, ok := range s.complete {
				a := k * stride
				if !ok || !st.Pool.In(si, a) {
					continue
				}
				if !analysis.ValueScores(s.keyOf, s.codes[k*items:(k+1)*items], raw[:], mrat[:]) {
					continue
				}
				if ref.Centering == "raw" {
					acc.Add(raw[:])
				} else {
					acc.Add(mrat[:])
				}
			}
			if acc.N() < liveMinAgents {
				continue
			}
			sim, err := analysis.ValuesSimilarityBy(st.MDS, acc.Corr(), ref.R)
			if err != nil || math.IsNaN(sim) {
				continue
			}
			run.Similarity(s.model, strat.Name, ref.Name, sim)
		}
	}
}

// pending sets the answer messages the analysis has yet to receive, from
// the stream's consumers. An error leaves the gauge as it was: the run may
// be starting or ending, and the next tick tries again.
func (l *Live) pending(ctx context.Context) error {
	l.mu.Lock()
	b, finished := l.backlog, l.finished
	l.mu.Unlock()
	if b == nil || finished {
		return nil
	}
	n, err := b.Backlog(ctx)
	if err != nil {
		return err
	}
	l.runSeries().NATSPending(n)
	return nil
}

// Finish publishes the final figures: agents finished, nothing pending
// and, after a successful run (out not nil), the similarities of
// results.json; then it ends the run's series (Run.End). Later calls do
// nothing.
func (l *Live) Finish(out *analysis.Outcome) {
	l.mu.Lock()
	if l.finished {
		l.mu.Unlock()
		return
	}
	l.finished = true
	l.backlog = nil
	l.setAgents()
	run := l.run
	l.mu.Unlock()
	defer run.End()
	if out == nil {
		return
	}
	run.NATSPending(0)
	r := &out.Results
	// An endpoint served by society model-server is known synthetic only
	// from its replies.
	for _, m := range r.Models {
		l.m.ModelInfo(m.Name, m.Backend, m.Mode, m.Synthetic)
	}
	for _, row := range r.ValueStructure {
		if v := float64(row.ValuesSimilarity); !math.IsNaN(v) {
			run.Similarity(row.Model, row.Strategy, row.Reference, v)
		}
	}
	for _, row := range r.ValueBehavior {
		if v := float64(row.BehaviorSimilarity); !math.IsNaN(v) {
			run.BehaviorSimilarity(row.Model, row.Strategy, row.Instrument, row.Reference, v)
		}
	}
}
