package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/sim"
)

// analysisService is the analysis role: for every running run it rebuilds
// the answers from the run's stream with its own durable consumer,
// publishes progress, and when the orchestrator marks the run complete and
// every answer is in, computes the results and writes the results
// directory under out, recording where in the registry.
type analysisService struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	reg  *bus.Registry
	log  *slog.Logger
	name string // this service's name: its consumers' and the record's
	out  string
	only string
	// metrics, when set, follows each run as the orchestrator's does.
	metrics *metrics.Metrics

	bad     atomic.Int64
	written atomic.Int64

	mu   sync.Mutex
	runs map[string]*analysisRun
	wg   sync.WaitGroup
}

type analysisRun struct {
	cancel   context.CancelFunc
	once     sync.Once
	complete chan struct{} // closed when the registry says the run is complete
}

func (r *analysisRun) markComplete() { r.once.Do(func() { close(r.complete) }) }

// maxRecordResults bounds the results.json kept in a run's record; a
// larger one is only in the results directory.
const maxRecordResults = 512 << 10

// consumerName is the durable consumer of this service on a run's answers.
func (a *analysisService) consumerName() string { return "analysis_" + bus.RunID(a.name) }

func (a *analysisService) serve(ctx context.Context) error {
	a.runs = map[string]*analysisRun{}
	err := a.reg.Watch(ctx, func(rec bus.RunRecord) { a.update(ctx, rec) },
		func(err error) {
			a.bad.Add(1)
			a.log.Warn("unreadable run record", "err", err)
		})
	a.mu.Lock()
	for _, r := range a.runs {
		r.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

func (a *analysisService) update(ctx context.Context, rec bus.RunRecord) {
	if a.only != "" && rec.ID != bus.RunID(a.only) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.runs[rec.ID]
	active := rec.State == bus.RunRunning || rec.State == bus.RunComplete
	switch {
	case active && cur == nil:
		rctx, cancel := context.WithCancel(ctx)
		cur = &analysisRun{cancel: cancel, complete: make(chan struct{})}
		a.runs[rec.ID] = cur
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.analyse(rctx, rec, cur); err != nil && rctx.Err() == nil {
				a.log.Error("analysis of run failed", "run", rec.ID, "err", err)
				a.record(rec, func(r *bus.RunRecord) bool {
					r.State, r.Error = bus.RunFailed, "analysis: "+err.Error()
					return true
				})
			}
		}()
	case !active && cur != nil:
		cur.cancel()
		delete(a.runs, rec.ID)
	}
	if cur != nil && rec.State == bus.RunComplete {
		cur.markComplete()
	}
}

// analyse follows one run until its results are written or ctx ends.
func (a *analysisService) analyse(ctx context.Context, rec bus.RunRecord, r *analysisRun) error {
	models := newModelSets("", nil, nil)
	defer models.close()
	sc, p, err := sim.RecordPlan(rec.ID, []byte(rec.Scenario), rec.Prep, models.backends(), true)
	if err != nil {
		return err
	}
	col := analysis.NewCollector(p.Study.Pool.Size(), p.Study.Plans)
	live := followRun(ctx, a.metrics, sim.Layout{ID: rec.ID, Name: sc.Name, Plan: p, Shards: rec.Shards})
	defer live.finish(nil)
	subj := bus.Subjects{Run: rec.ID}
	var bad atomic.Int64
	reader := &bus.AnswerReader{JS: a.js, Subjects: subj, Logger: a.log, Sink: live.sink(col),
		Bad: func(error) { bad.Add(1); a.bad.Add(1) }}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := reader.Consume(rctx, a.consumerName()); err != nil {
			cancel(err)
		}
	}()
	a.log.Info("analysing run", "run", rec.ID, "agents", p.Study.Pool.Size())

	progress := func(state bus.RunState, dir string) {
		e, v, i := col.Counts()
		a.nc.Publish(subj.Results(), bus.EncodeProgress(bus.Progress{Run: rec.ID, Expected: e, Valid: v, Invalid: i,
			Bad: bad.Load(), State: state, Dir: dir, Host: a.name}))
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	complete, answered := r.complete, col.Done()
	for complete != nil || answered != nil {
		select {
		case <-rctx.Done():
			if err := context.Cause(rctx); err != nil {
				return err
			}
			return rctx.Err()
		case <-tick.C:
			progress(bus.RunRunning, "")
			if answered == nil && complete != nil && a.completeNow(rctx, rec.ID) {
				complete = nil
			}
		case <-complete:
			complete = nil
		case <-answered:
			answered = nil
			progress(bus.RunRunning, "")
		}
	}

	dir, err := filepath.Abs(filepath.Join(a.out, rec.ID))
	if err != nil {
		return err
	}
	llmCounts, hosts := a.hostTraffic(ctx, rec.ID)
	if traffic, models := hostsTraffic(hosts, p.Study.Models); len(traffic) > 0 {
		p.Study.Traffic, p.Study.Models = traffic, models
	}
	outcome, err := p.Study.Compute(ctx, col)
	if err != nil {
		return err
	}
	outcome.Results.LLM = llmCounts
	live.finish(outcome)
	if err := results.Write(ctx, dir, &analysis.Output{Outcome: outcome, Collector: col, Study: p.Study, Scenario: p.Resolved}); err != nil {
		return err
	}
	results, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	if len(results) > maxRecordResults || !json.Valid(results) {
		results = nil
	}
	a.written.Add(1)
	a.log.Info("results written", "run", rec.ID, "dir", dir)
	progress(bus.RunDone, dir)
	// Only a run still complete is done: an orchestrator that took the
	// run up again meanwhile marks it complete again when it is, and this
	// service writes it again then.
	a.record(rec, func(r *bus.RunRecord) bool {
		if r.State != bus.RunComplete {
			return false
		}
		r.State, r.Dir, r.Host, r.Results, r.Error = bus.RunDone, dir, a.name, results, ""
		return true
	})
	return nil
}

// record updates the run's record unless the run is over meanwhile.
func (a *analysisService) record(rec bus.RunRecord, fn func(*bus.RunRecord) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errStale := errors.New("run moved on")
	_, err := a.reg.Modify(ctx, rec.ID, func(r *bus.RunRecord) error {
		if r.State != bus.RunComplete && r.State != bus.RunRunning || !fn(r) {
			return errStale
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		a.log.Error("update run record", "run", rec.ID, "err", err)
	}
}

// String names the service in its summary line.
func (a *analysisService) String() string {
	return fmt.Sprintf("analysis service %s: %d results written, %d unusable messages rejected", a.name, a.written.Load(), a.bad.Load())
}

// hostTraffic adds up the model traffic the agent hosts reported for a run.
// Hosts report about once a second, so a host that died just after its
// last call may have left its last second out.
func (a *analysisService) hostTraffic(ctx context.Context, run string) (analysis.LLMCounts, []bus.HostStats) {
	var out analysis.LLMCounts
	stats, err := a.reg.HostStats(ctx, run, func(error) { a.bad.Add(1) })
	if err != nil {
		a.log.Warn("read the hosts' model traffic", "run", run, "err", err)
		return out, nil
	}
	for _, s := range stats {
		out.Calls += s.Calls
		out.CacheHits += s.CacheHits
		out.Retries += s.Retries
	}
	return out, stats
}

// completeNow reads whether the registry says the run is complete: the
// watch that normally tells may lag behind a server restart by seconds.
func (a *analysisService) completeNow(ctx context.Context, run string) bool {
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rec, _, ok, err := a.reg.Get(gctx, run)
	return err == nil && ok && rec.State == bus.RunComplete
}
