package bus

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// HostModels are the models of one run on an agent host: the backends
// its agents ask, and their traffic as the host reports it.
type HostModels interface {
	sim.Backends
	HostStats(ctx context.Context, host string) HostStats
}

// AgentHost is the agent-host role: it learns runs from the registry and
// serves each running run's tasks with a Worker, instantiating a shard's
// agents the first time it gets one of the shard's tasks. It owns no
// shards: several hosts share a run's tasks, and any host can take over
// the tasks of one that left.
type AgentHost struct {
	JS          jetstream.JetStream
	Reg         *Registry
	Log         *slog.Logger
	Name        string
	Concurrency int
	Only        string // serve only this run; "" serves every run
	// Models builds the models of a run (whatever serves them, with
	// whatever cache), and the close of what it made. Their cache shares
	// its fetches with the run's other hosts through flights (the run's
	// claims bucket), so that a prompt asked by several hosts at once is
	// paid for once.
	Models func(run string, log *slog.Logger, flights *Flights) (HostModels, func())
	// Follow, when set, is told of each run the host starts serving (the
	// metrics' run label); it returns what to call when the host stops
	// serving it.
	Follow func(rec RunRecord, sc *scenarios.Scenario, p *sim.Plan) (end func())

	bad     atomic.Int64
	served  atomic.Int64
	answers atomic.Int64
	calls   atomic.Int64
}

// Served is the number of tasks the host served.
func (h *AgentHost) Served() int64 { return h.served.Load() }

// Bad is the number of unusable messages the host rejected.
func (h *AgentHost) Bad() int64 { return h.bad.Load() }

// String names the host in its summary line: the tasks it served, the
// messages it rejected, the tasks' answers and the model calls it made for
// the runs it stopped serving.
func (h *AgentHost) String() string {
	return fmt.Sprintf("agent host %s: %d tasks served, %d unusable messages rejected, %d answers, %d model calls",
		h.Name, h.served.Load(), h.bad.Load(), h.answers.Load(), h.calls.Load())
}

// Serve runs until ctx is done, then stops every run it serves, waits
// for their goroutines and logs what the host did (String's counts) as
// its last line, so that a log read apart from the summary line ends
// with them.
func (h *AgentHost) Serve(ctx context.Context) error {
	f := &runFollower{reg: h.Reg, log: h.Log, only: h.Only, bad: func() { h.bad.Add(1) },
		work: func(ctx context.Context, rec RunRecord, _ <-chan struct{}) {
			if err := h.serveRun(ctx, rec); err != nil {
				h.Log.Error("cannot serve run", "run", rec.ID, "err", err)
			}
		},
		over: func(rec RunRecord) {
			if rec.State != "" {
				h.Log.Info("run over", "run", rec.ID, "state", rec.State)
			}
		}}
	err := f.serve(ctx)
	h.Log.Info("agent host stopped", "tasks_served", h.served.Load(), "unusable_messages", h.bad.Load(),
		"answers", h.answers.Load(), "model_calls", h.calls.Load())
	return err
}

// serveRun serves one run's tasks until ctx is done.
func (h *AgentHost) serveRun(ctx context.Context, rec RunRecord) error {
	b, done := h.Models(rec.ID, h.Log.With("run", rec.ID), OpenFlights(ctx, h.JS, Subjects{Run: rec.ID}, h.Log))
	defer done()
	sc, p, err := sim.RecordPlan(rec.ID, []byte(rec.Scenario), rec.Prep, b, false)
	if err != nil {
		return err
	}
	if h.Follow != nil {
		defer h.Follow(rec, sc, p)()
	}
	h.Log.Info("serving run", "run", rec.ID, "agents", p.Study.Pool.Size(), "shards", rec.Shards)

	// The host's model traffic for the run goes to the registry about once
	// a second, before each task is acknowledged (so that the results,
	// written once every task is, count every request) and when it stops;
	// its calls count in the host's summary once it stops.
	st := &statsReporter{h: h, run: rec.ID, b: b, p: p, pre: &hostPrefetch{}}
	defer func() { h.calls.Add(st.seen.Calls) }()
	// Shards are instantiated on their first task and live as long as the
	// run: their agents' goroutines are started here and stopped with ctx.
	var (
		mu     sync.Mutex
		shards = map[int]*agent.Shard{}
		wg     sync.WaitGroup
	)
	defer wg.Wait()
	shard := func(_ context.Context, id int) (*agent.Shard, error) {
		if id < 0 || id >= rec.Shards {
			return nil, fmt.Errorf("shard %d outside the run's %d shards", id, rec.Shards)
		}
		mu.Lock()
		defer mu.Unlock()
		if sh, ok := shards[id]; ok {
			return sh, nil
		}
		sh := p.NewShard(id, rec.Shards)
		shards[id] = sh
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.Run(ctx)
		}()
		return sh, nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.loop(ctx)
	}()
	w := &Worker{
		JS: h.JS, Subjects: Subjects{Run: rec.ID}, Shard: shard,
		Instrument:  p.Instrument,
		Concurrency: h.Concurrency, Host: h.Name, Logger: h.Log,
		BadMessage: func(error) { h.bad.Add(1) },
		Settle:     func(ctx context.Context, _ TaskMsg) { st.put(ctx) },
		// Agents ask their items one after another: without a fetch
		// ahead only their current questions are in flight (one per
		// persona in distribution mode, one per agent in sample mode),
		// however large the models' concurrency. Each task's distinct
		// questions are fetched ahead as a single process fetches a
		// phase's, at the model's concurrency: in sample mode only the
		// samples of the task's agents (a share, sim.SharePrefetcher),
		// since the persona's other samples are other hosts' agents' to
		// read. Tasks served at once share their requests, and hosts
		// share replies through the run's fetch claims (a segment of
		// samples on the border of two tasks is paid for once) and the
		// cache's shared tier.
		Prefetch: func(ctx context.Context, t TaskMsg) func() {
			return sim.PrefetchTasks(ctx, p, []sim.Task{simTask(t)}, rec.Shards, true, st.pre.task(), h.Log.With("run", rec.ID))
		},
		Served: func(_ TaskMsg, answers int) {
			h.served.Add(1)
			h.answers.Add(int64(answers))
		},
	}
	return w.Run(ctx)
}

// statsReporter stores the host's model traffic for a run in the
// registry whenever it changed.
type statsReporter struct {
	h   *AgentHost
	run string
	b   HostModels
	p   *sim.Plan     // its test-primed models' tests are reported too
	pre *hostPrefetch // and the fetch ahead of its tasks

	mu   sync.Mutex
	last HostStats // the last stored
	seen HostStats // the last counted, stored or not
}

func (r *statsReporter) put(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.b.HostStats(ctx, r.h.Name)
	c.Tests = sim.FilledTests(r.p)
	if n := r.pre.count(); n.Planned > 0 {
		c.Prefetch = &n
	}
	r.seen = c
	if reflect.DeepEqual(c, r.last) {
		return
	}
	if err := r.h.Reg.PutHostStats(ctx, r.run, c); err != nil {
		r.h.Log.Debug("report model traffic", "run", r.run, "err", err)
		return
	}
	r.last = c
}

// loop reports about once a second until ctx is done, then once more.
func (r *statsReporter) loop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.put(fctx)
			cancel()
			return
		case <-tick.C:
			r.put(ctx)
		}
	}
}

// simTask is the sim task of a questionnaire task message (TaskOf's
// inverse, a game round's memories apart).
func simTask(t TaskMsg) sim.Task {
	return sim.Task{Shard: t.Shard, Model: t.Model, Instrument: t.Instrument, Items: t.Items, Round: t.Round, Style: agent.Style(t.Style)}
}
