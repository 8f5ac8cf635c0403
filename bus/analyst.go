package bus

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

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/sim"
)

// Analyst is the analysis role: for every running run it rebuilds the
// answers from the run's stream with its own durable consumer, publishes
// progress, and when the orchestrator marks the run complete and every
// answer is in, computes the results and writes the results directory
// under Out, recording where in the registry.
type Analyst struct {
	NC   *nats.Conn
	JS   jetstream.JetStream
	Reg  *Registry
	Log  *slog.Logger
	Name string // this service's name: its consumers' and the record's
	Out  string
	Only string
	// Backends builds a run's models, only to describe them: the analyst
	// calls no model. done closes what it made.
	Backends func() (b sim.Backends, done func())
	// Follow, when set, follows each run it analyses as the orchestrator's
	// observer does (the metrics): given the run's layout and collector, it
	// returns the sink the run's answers are stored through (col.Add and
	// whatever counts them once col holds them) and finish, called with
	// the outcome once computed and with nil when the analysis ends.
	Follow func(ctx context.Context, l sim.Layout, col *analysis.Collector) (sink func(*agent.Batch) error, finish func(*analysis.Outcome))
	// RunBlock starts the provenance block of the run id that started at
	// start (its record's; "" when the record has none); nil writes none.
	RunBlock func(id, start string) *analysis.Run

	bad     atomic.Int64
	written atomic.Int64
	// wrote holds the ids of the runs whose results this service wrote.
	wrote sync.Map
}

// maxRecordResults bounds the results.json kept in a run's record; a
// larger one is only in the results directory.
const maxRecordResults = 512 << 10

// recordedResults is the results.json written in dir as a run's record
// keeps it: nil when larger than maxRecordResults or not JSON. The error
// is the file's when it cannot be read.
func recordedResults(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordResults || !json.Valid(b) {
		return nil, nil
	}
	return b, nil
}

// consumerName is the durable consumer of this service on a run's answers.
func (a *Analyst) consumerName() string { return "analysis_" + RunID(a.Name) }

// Serve runs until ctx is done, then stops every run it follows, waits
// for their goroutines and logs what the service did (String's counts)
// as its last line.
func (a *Analyst) Serve(ctx context.Context) error {
	f := &runFollower{reg: a.Reg, log: a.Log, only: a.Only, bad: func() { a.bad.Add(1) },
		work: func(ctx context.Context, rec RunRecord, complete <-chan struct{}) {
			if err := a.analyse(ctx, rec, complete); err != nil && ctx.Err() == nil {
				a.Log.Error("analysis of run failed", "run", rec.ID, "err", err)
				a.record(rec, func(r *RunRecord) bool {
					r.State, r.Error = RunFailed, "analysis: "+err.Error()
					return true
				})
			}
		}, over: a.standDown}
	err := f.serve(ctx)
	a.Log.Info("analysis service stopped", "results_written", a.written.Load(), "unusable_messages", a.bad.Load())
	return err
}

// standDown logs that the service stopped following a run it did not
// finish itself, and why: another process (an orchestrator given --out,
// another analysis service) wrote the results, the run failed, or it was
// removed from the registry. Whether it wrote them itself is what it
// remembers, not the record's host name, which two processes on one
// machine share.
func (a *Analyst) standDown(rec RunRecord) {
	_, own := a.wrote.Load(rec.ID)
	switch {
	case rec.State == RunDone && own:
		// Its own results: "results written" said so.
	case rec.State == RunDone:
		a.Log.Info("standing down from run: its results were written by another process", "run", rec.ID, "host", rec.Host, "dir", rec.Dir)
	case rec.State == RunFailed:
		a.Log.Info("standing down from run: the run failed", "run", rec.ID, "err", rec.Error)
	default:
		a.Log.Info("standing down from run: removed from the registry", "run", rec.ID)
	}
}

// analyse follows one run until its results are written or ctx ends.
func (a *Analyst) analyse(ctx context.Context, rec RunRecord, complete <-chan struct{}) error {
	b, done := a.Backends()
	defer done()
	sc, p, err := sim.RecordPlan(rec.ID, []byte(rec.Scenario), rec.Prep, b, true)
	if err != nil {
		return err
	}
	col := analysis.NewCollector(p.Study.Pool.Size(), p.Study.Plans)
	sink, finish := col.Add, func(*analysis.Outcome) {}
	if a.Follow != nil {
		sink, finish = a.Follow(ctx, sim.Layout{ID: rec.ID, Name: sc.Name, Plan: p, Shards: rec.Shards}, col)
	}
	defer finish(nil)
	subj := Subjects{Run: rec.ID}
	var bad atomic.Int64
	reader := &AnswerReader{JS: a.JS, Subjects: subj, Logger: a.Log, Sink: sink,
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
	a.Log.Info("analysing run", "run", rec.ID, "agents", p.Study.Pool.Size())

	progress := func(state RunState, dir string) {
		e, v, i := col.Counts()
		a.NC.Publish(subj.Results(), EncodeProgress(Progress{Run: rec.ID, Expected: e, Valid: v, Invalid: i,
			Bad: bad.Load(), State: state, Dir: dir, Host: a.Name}))
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	answered := col.Done()
	for complete != nil || answered != nil {
		select {
		case <-rctx.Done():
			if err := context.Cause(rctx); err != nil {
				return err
			}
			return rctx.Err()
		case <-tick.C:
			progress(RunRunning, "")
			if answered == nil && complete != nil && a.completeNow(rctx, rec.ID) {
				complete = nil
			}
		case <-complete:
			complete = nil
		case <-answered:
			answered = nil
			progress(RunRunning, "")
		}
	}

	dir, err := filepath.Abs(filepath.Join(a.Out, rec.ID))
	if err != nil {
		return err
	}
	f := &finishing{id: rec.ID, plan: p, col: col, start: rec.Start, produced: currentProduced(ctx, a.Reg, rec.ID),
		b: b, runBlock: a.RunBlock, reg: a.Reg, log: a.Log, bad: func(error) { a.bad.Add(1) }, computed: finish}
	produced, err := f.produce(ctx, dir)
	if err != nil {
		return err
	}
	results, err := recordedResults(dir)
	if err != nil {
		return err
	}
	a.written.Add(1)
	a.wrote.Store(rec.ID, true)
	a.Log.Info("results written", "run", rec.ID, "dir", dir)
	progress(RunDone, dir)
	// Only a run still complete is done: an orchestrator that took the
	// run up again meanwhile marks it complete again when it is, and this
	// service writes it again then.
	a.record(rec, func(r *RunRecord) bool {
		if r.State != RunComplete {
			return false
		}
		r.State, r.Dir, r.Host, r.Results, r.Error, r.Produced = RunDone, dir, a.Name, results, "", produced
		return true
	})
	return nil
}

// record updates the run's record unless the run is over meanwhile.
func (a *Analyst) record(rec RunRecord, fn func(*RunRecord) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errStale := errors.New("run moved on")
	_, err := a.Reg.Modify(ctx, rec.ID, func(r *RunRecord) error {
		if r.State != RunComplete && r.State != RunRunning || !fn(r) {
			return errStale
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		a.Log.Error("update run record", "run", rec.ID, "err", err)
	}
}

// String names the service in its summary line.
func (a *Analyst) String() string {
	return fmt.Sprintf("analysis service %s: %d results written, %d unusable messages rejected", a.Name, a.written.Load(), a.bad.Load())
}

// completeNow reads whether the registry says the run is complete: the
// watch that normally tells may lag behind a server restart by seconds.
func (a *Analyst) completeNow(ctx context.Context, run string) bool {
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rec, _, ok, err := a.Reg.Get(gctx, run)
	return err == nil && ok && rec.State == RunComplete
}
