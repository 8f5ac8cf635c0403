package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// metricsServer is a running /metrics endpoint. Every role (run, agents,
// analyze) starts one the same way with startMetrics.
type metricsServer struct {
	Metrics *metrics.Metrics
	Addr    net.Addr

	cancel context.CancelFunc
	done   chan error
}

// startMetrics serves the program's metrics on addr (host:port; a bare
// :port binds 127.0.0.1) until close is called. An empty addr starts
// nothing and returns nil, whose methods do nothing.
func startMetrics(ctx context.Context, addr string, stderr io.Writer) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%w: --metrics %q: want HOST:PORT or :PORT", errUsage, addr)
	}
	ln, err := metrics.Listen(addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &metricsServer{Metrics: metrics.New(reg, buildInfo()), Addr: ln.Addr(), done: make(chan error, 1)}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() { s.done <- metrics.Serve(ctx, ln, reg) }()
	fmt.Fprintf(stderr, "society: metrics on http://%s/metrics\n", s.Addr)
	return s, nil
}

// close stops the server and waits for it.
func (s *metricsServer) close() error {
	if s == nil {
		return nil
	}
	s.cancel()
	return <-s.done
}

// linger keeps serving for d (or until ctx is done), so that a scrape after
// the work is over still sees the final values.
func (s *metricsServer) linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	if s == nil || d <= 0 {
		return
	}
	fmt.Fprintf(stderr, "society: serving final metrics on http://%s/metrics for %s (interrupt to stop)\n", s.Addr, d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func buildInfo() metrics.BuildInfo {
	b := metrics.BuildInfo{Version: "devel"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			b.Revision = s.Value
		}
	}
	return b
}

// runStart describes a run to its observers once its agents and answer
// stream exist (runHooks.Start).
type runStart struct {
	Study     *analysis.Study
	Shards    []*agent.Shard
	JetStream jetstream.JetStream
	Subjects  bus.Subjects
}

// runMetrics follows one `society run` for the metrics endpoint: it turns
// the pipeline's hooks into metrics and, while the run lasts, computes the
// values similarity so far and polls the answer stream's backlog. A nil
// *runMetrics (no --metrics) does nothing.
type runMetrics struct {
	srv  *metricsServer
	live *liveRun

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// liveEvery is how often the values similarity so far and the NATS backlog
// are refreshed: a few seconds is live enough for a dashboard and keeps
// the cost of the sample negligible beside the run.
const liveEvery = 2 * time.Second

// startRunMetrics starts the endpoint on addr (none when addr is empty) and
// the run's live figures.
func startRunMetrics(ctx context.Context, addr string, stderr io.Writer) (*runMetrics, error) {
	srv, err := startMetrics(ctx, addr, stderr)
	if err != nil || srv == nil {
		return nil, err
	}
	r := &runMetrics{srv: srv, live: newLiveRun(srv.Metrics, liveSampleMax)}
	var lctx context.Context
	lctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.live.run(lctx, liveEvery)
	}()
	return r, nil
}

// hooks are the pipeline hooks that feed the metrics.
func (r *runMetrics) hooks() runHooks {
	if r == nil {
		return runHooks{}
	}
	m := r.srv.Metrics
	return runHooks{
		Start:      r.live.start,
		Publish:    r.live.publish,
		Batch:      r.live.batch,
		Progress:   m.Progress,
		BadMessage: m.BadMessage,
		Round:      m.Cooperation,
		Model:      m,
	}
}

// finish stops the live figures and publishes the run's final ones: every
// agent finished and, when the run succeeded, the similarities of
// results.json for the whole population.
func (r *runMetrics) finish(res *runResult) {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.live.finish(res)
}

// linger keeps serving after the run (see metricsServer.linger).
func (r *runMetrics) linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	if r != nil {
		r.srv.linger(ctx, d, stderr)
	}
}

// close stops the endpoint.
func (r *runMetrics) close() error {
	if r == nil {
		return nil
	}
	r.finish(nil) // no-op after a finish; stops the live figures otherwise
	return r.srv.close()
}

// liveSampleMax bounds the agents whose answers the live values
// similarity reads: 20,000 agents estimate a 10×10 correlation matrix to
// about ±0.01, and scoring them takes milliseconds.
const liveSampleMax = 20000

// liveRun keeps what the live figures need: which agents answer (per
// shard, for society_agents) and a copy of the sampled agents' answers to
// value instruments. It copies answers from the batches the analysis
// stores rather than reading the analysis's collector, whose sheets are
// written under its own lock.
type liveRun struct {
	m         *metrics.Metrics
	sampleMax int

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
	js          jetstream.JetStream
	stream      string
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

func newLiveRun(m *metrics.Metrics, sampleMax int) *liveRun {
	return &liveRun{m: m, sampleMax: sampleMax, sheets: map[liveKey]*liveSheet{}}
}

// start learns the run's layout (runHooks.Start).
func (l *liveRun) start(rs runStart) {
	st := rs.Study
	n := st.Pool.Size()
	l.m.NewRun()
	l.mu.Lock()
	defer l.mu.Unlock()
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
	l.shardSize = make([]int, len(rs.Shards))
	for i, sh := range rs.Shards {
		l.shardSize[i] = len(sh.Agents)
	}
	l.outstanding = make([]int, len(rs.Shards))
	l.agents = n
	l.js, l.stream = rs.JetStream, rs.Subjects.Stream()
	l.setAgents()
	for _, s := range st.Pool.Strategies {
		counts := map[string]int{}
		for p, c := range s.Counts {
			counts[population.Persona(p).Code()] = c
		}
		l.m.Population(s.Name, counts)
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

func (l *liveRun) setAgents() {
	if l.finished {
		l.m.Agents(metrics.StateIdle, 0)
		l.m.Agents(metrics.StateAnswering, 0)
		l.m.Agents(metrics.StateFinished, l.agents)
		return
	}
	l.m.Agents(metrics.StateIdle, l.agents-l.answering)
	l.m.Agents(metrics.StateAnswering, l.answering)
	l.m.Agents(metrics.StateFinished, 0)
}

// publish marks every shard's agents as answering (runHooks.Publish).
func (l *liveRun) publish(plans []analysis.Plan, shards int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pl := range plans {
		l.m.TasksPublished(pl.Model, pl.Instrument.Name, shards)
		for s := 0; s < min(shards, len(l.outstanding)); s++ {
			if l.outstanding[s] == 0 {
				l.answering += l.shardSize[s]
			}
			l.outstanding[s] += len(pl.Items)
		}
	}
	l.setAgents()
}

// batch counts a stored batch and copies the sampled agents' answers
// (runHooks.Batch). Its work is proportional to the sampled agents in the
// batch, not to the batch.
func (l *liveRun) batch(b *agent.Batch) {
	if !l.m.Batch(b) {
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

// run refreshes the live figures every interval until ctx is done.
func (l *liveRun) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.similarity()
			_ = l.pending(ctx) // transient while the run starts or ends

		}
	}
}

// liveMinAgents is the fewest complete respondents a live similarity is
// computed from: fewer give a correlation matrix too noisy to show.
const liveMinAgents = 50

// similarity sets the values similarity so far of every model and
// strategy, from the sampled agents who answered every item of a value
// instrument, against the scenario's first reference.
func (l *liveRun) similarity() {
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
	st, ref, stride := l.study, l.ref, l.stride
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
			l.m.Similarity(s.model, strat.Name, ref.Name, sim)
		}
	}
}

// pending sets the answer messages the analysis has yet to receive, from
// the stream's consumers. An error leaves the gauge as it was: the run may
// be starting or ending, and the next tick tries again.
func (l *liveRun) pending(ctx context.Context) error {
	l.mu.Lock()
	js, stream, finished := l.js, l.stream, l.finished
	l.mu.Unlock()
	if js == nil || finished {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("answer backlog: %w", err)
	}
	var n uint64
	lister := st.ListConsumers(ctx)
	for info := range lister.Info() {
		n += info.NumPending + uint64(info.NumAckPending)
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("answer backlog: %w", err)
	}
	l.m.NATSPending(int64(n))
	return nil
}

// finish publishes the final figures: agents finished, nothing pending
// and, after a successful run, the similarities of results.json.
func (l *liveRun) finish(res *runResult) {
	l.mu.Lock()
	if l.finished {
		l.mu.Unlock()
		return
	}
	l.finished = true
	l.js = nil
	l.setAgents()
	l.mu.Unlock()
	if res == nil || res.Outcome == nil {
		return
	}
	l.m.NATSPending(0)
	r := &res.Outcome.Results
	for _, row := range r.ValueStructure {
		if v := float64(row.ValuesSimilarity); !math.IsNaN(v) {
			l.m.Similarity(row.Model, row.Strategy, row.Reference, v)
		}
	}
	for _, row := range r.ValueBehavior {
		if v := float64(row.BehaviorSimilarity); !math.IsNaN(v) {
			l.m.BehaviorSimilarity(row.Model, row.Strategy, row.Instrument, row.Reference, v)
		}
	}
}

// modelObserver is what the OpenAI-compatible client reports its requests
// to; *metrics.Metrics is one.
type modelObserver interface {
	ObserveRequest(model, outcome string, seconds float64)
	ObserveQueueWait(model string, seconds float64)
	InFlight(model string, delta int)
	Tokens(model string, prompt, completion int)
	CacheLookup(model string, hit bool)
	Coverage(model string, mass float64)
}

var _ modelObserver = (*metrics.Metrics)(nil)
