package main

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
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/sim"
)

// agentHost is the agent-host role: it learns runs from the registry and
// serves each running run's tasks with a bus.Worker, instantiating a
// shard's agents the first time it gets one of the shard's tasks. It owns
// no shards: several hosts share a run's tasks, and any host can take over
// the tasks of one that left.
type agentHost struct {
	js          jetstream.JetStream
	reg         *bus.Registry
	log         *slog.Logger
	name        string
	concurrency int
	cacheDir    string
	only        string           // serve only this run; "" serves every run
	metrics     *metrics.Metrics // nil: no --metrics

	bad    atomic.Int64
	served atomic.Int64

	mu   sync.Mutex
	runs map[string]*hostRun
	wg   sync.WaitGroup
}

// hostRun is one run served by the host.
type hostRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// serve runs until ctx is done, then stops every run it serves and waits
// for their goroutines.
func (h *agentHost) serve(ctx context.Context) error {
	h.runs = map[string]*hostRun{}
	err := h.reg.Watch(ctx, func(rec bus.RunRecord) { h.update(ctx, rec) },
		func(err error) {
			h.bad.Add(1)
			h.log.Warn("unreadable run record", "err", err)
		})
	h.mu.Lock()
	for _, r := range h.runs {
		r.cancel()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return err
}

// update starts serving a run that is running and stops serving one that
// is over.
func (h *agentHost) update(ctx context.Context, rec bus.RunRecord) {
	if h.only != "" && rec.ID != bus.RunID(h.only) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.runs[rec.ID]
	active := rec.State == bus.RunRunning || rec.State == bus.RunComplete
	switch {
	case active && cur == nil:
		rctx, cancel := context.WithCancel(ctx)
		r := &hostRun{cancel: cancel, done: make(chan struct{})}
		h.runs[rec.ID] = r
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer close(r.done)
			if err := h.serveRun(rctx, rec); err != nil {
				h.log.Error("cannot serve run", "run", rec.ID, "err", err)
			}
		}()
	case !active && cur != nil:
		cur.cancel()
		delete(h.runs, rec.ID)
		if rec.State != "" {
			h.log.Info("run over", "run", rec.ID, "state", rec.State)
		}
	}
}

// serveRun serves one run's tasks until ctx is done.
func (h *agentHost) serveRun(ctx context.Context, rec bus.RunRecord) error {
	models := newModelSets(h.cacheDir, modelObserver(h.metrics), h.log.With("run", rec.ID))
	defer models.close()
	b := models.set()
	sc, p, err := sim.RecordPlan(rec.ID, []byte(rec.Scenario), rec.Prep, b, false)
	if err != nil {
		return err
	}
	defer h.metrics.Run(metrics.RunInfo{ID: rec.ID, Scenario: sc.Name, Seed: p.Seed}).End()
	h.log.Info("serving run", "run", rec.ID, "agents", p.Study.Pool.Size(), "shards", rec.Shards)

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
	// The host's model traffic for the run goes to the registry about once
	// a second and when it stops, for the analysis to report.
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.reportStats(ctx, rec.ID, b)
	}()
	w := &bus.Worker{
		JS: h.js, Subjects: bus.Subjects{Run: rec.ID}, Shard: shard,
		Instrument:  p.Instrument,
		Concurrency: h.concurrency, Host: h.name, Logger: h.log,
		BadMessage: func(error) { h.bad.Add(1) },
		Served:     func(bus.TaskMsg) { h.served.Add(1) },
	}
	return w.Run(ctx)
}

// reportStats stores the host's model traffic for a run whenever it
// changed, until ctx is done, and once more then.
func (h *agentHost) reportStats(ctx context.Context, run string, b *backends) {
	var last bus.HostStats
	put := func(ctx context.Context) {
		c := b.hostStats(ctx, h.name)
		if reflect.DeepEqual(c, last) {
			return
		}
		if err := h.reg.PutHostStats(ctx, run, c); err != nil {
			h.log.Debug("report model traffic", "run", run, "err", err)
			return
		}
		last = c
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			put(fctx)
			cancel()
			return
		case <-tick.C:
			put(ctx)
		}
	}
}
