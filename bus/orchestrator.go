package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// Orchestrator is the orchestrator of a distributed run: it prepares the
// scenario through its Prepare port, registers the run, queues the tasks each phase still lacks (sim.Loop over a Queue),
// follows the answers to know when a phase is complete, and finally asks
// the analysis service (through the registry) to compute and write the
// results, or writes them itself. It holds nothing that cannot be
// rebuilt: killed and started again, it carries on where the run stands.
type Orchestrator struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	Reg *Registry
	Log *slog.Logger
	// Fresh discards whatever the scenario's run (NAME-SEED) stored
	// before and starts a new run, NAME-SEED-TIME-RANDOM (sim.NewRunID).
	Fresh bool
	Queue TaskQueueOptions
	// Stall is how long a phase may go without a new answer while no task
	// is queued before its missing work is handed out again; 0 means
	// twice the ack wait.
	Stall time.Duration
	// Observer follows the run, and when it is a sim.Stager is told of
	// the analysing and the writing after the answers; BadMessage is told
	// about every message that could not be used. Either may be nil.
	Observer   sim.Observer
	BadMessage func(error)
	// Answered, when set, is called once the loop is over, with its error
	// (nil: every answer is stored), before the results are written.
	Answered func(ctx context.Context, err error)
	// Start is when this orchestrator began (its preparation included);
	// zero is when Run is called. A resumed run keeps its first start.
	Start time.Time
	// RunBlock starts the provenance block of results this process
	// writes (see Analyst.RunBlock); nil writes none.
	RunBlock func(id, start string) *analysis.Run
	// Prepare settles the scenario in this process before its plan is
	// built (the persona data, any model-specific calibration:
	// sim.Engine.Prepare), so that the resolved scenario every host builds
	// its agents from holds what the run really uses.
	Prepare func(ctx context.Context, sc *scenarios.Scenario) (*scenarios.Scenario, sim.Preparation, error)
	// Models build the plan; Replies, when not nil, is the cluster's
	// shared reply bucket, whose replies Models keep in their local cache
	// once every answer is stored (after Answered).
	Models  OrchestratorModels
	Replies *KVStore
}

// OrchestratorModels are the models of the orchestrator's plan: it builds
// the plan from them, and copies the shared reply bucket into their cache.
type OrchestratorModels interface {
	sim.Backends
	Keep(ctx context.Context, each func(ctx context.Context, fn func(key string, val []byte) error) error)
}

// Orchestrator connects the orchestrator of a run to the cluster the flags
// name and opens the run registry, with q's replicas. Errors are those of
// Connect. Close closes the connection.
func (f *Flags) Orchestrator(ctx context.Context, log *slog.Logger, q TaskQueueOptions) (*Orchestrator, error) {
	nc, err := f.Connect(ctx, "run", log)
	if err != nil {
		return nil, err
	}
	o := &Orchestrator{NC: nc, Log: log, Queue: q}
	if o.JS, err = jetstream.New(nc); err == nil {
		o.Reg, err = OpenRegistry(ctx, o.JS, RegistryOptions{Replicas: q.Replicas})
	}
	if err != nil {
		Drain(nc)
		return nil, err
	}
	return o, nil
}

// Close delivers what the orchestrator published and closes its
// connection.
func (o *Orchestrator) Close() { Drain(o.NC) }

// Scenario is the scenario to run: sc, or with resume (--resume) the one
// the registered run resume was started with, which sc, when not nil,
// must be. A resume that names no registered run, or another scenario's,
// is ErrBadFlags; a stored scenario that no longer parses is that of
// scenarios.Parse.
func (o *Orchestrator) Scenario(ctx context.Context, resume string, sc *scenarios.Scenario) (*scenarios.Scenario, error) {
	if resume == "" {
		return sc, nil
	}
	rec, _, ok, err := o.Reg.Get(ctx, RunID(resume))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badFlags{fmt.Errorf("--resume %s: no such run in the registry", resume)}
	}
	rsc, err := scenarios.Parse([]byte(rec.Scenario), "run "+rec.ID)
	if err != nil {
		return nil, fmt.Errorf("run %s: stored scenario: %w", rec.ID, err)
	}
	if sc != nil && sim.RunID(sc) != sim.RunID(rsc) {
		return nil, badFlags{fmt.Errorf("--resume %s, but the scenario given is run %s", resume, sim.RunID(sc))}
	}
	return rsc, nil
}

// Stored names the run of sc when the registry records it done, every
// answer stored, and fresh does not discard it: rerun, it requests
// nothing. Otherwise, and when the registry cannot be read, it is "".
func (o *Orchestrator) Stored(ctx context.Context, sc *scenarios.Scenario, fresh bool) string {
	rec, _, ok, err := o.Reg.Get(ctx, RunID(sim.RunID(sc)))
	if err != nil || !ok || fresh || rec.State != RunDone {
		return ""
	}
	return rec.ID
}

// Orchestrated is what a finished distributed run reports.
type Orchestrated struct {
	ID      string
	Record  RunRecord
	Outcome *analysis.Outcome // nil when the results did not fit the record
	// Elapsed is the time since the orchestrator's Start, to the results.
	Elapsed time.Duration
	// Stored marks results written again from what a run done already
	// stored: no task was handed out, and their times, wall time and model
	// traffic are those of the run that answered.
	Stored bool
}

// Note is, for results written again from a run done already (Stored),
// a paragraph saying so, to print above their summary; "" otherwise.
func (r *Orchestrated) Note() string {
	if !r.Stored {
		return ""
	}
	when := ""
	if r.Outcome != nil && r.Outcome.Results.Run != nil {
		run := r.Outcome.Results.Run
		when = fmt.Sprintf(" (%s to %s, %.1f s)", run.Start, run.End, run.WallSeconds)
	}
	return fmt.Sprintf("Run %s was done already: nothing was asked now. Below are its stored results, written again:\n"+
		"the times, calls and tokens they show are those of the run that answered%s.\n\n", r.ID, when)
}

// Run prepares sc (Prepare), builds its plan from Models and runs it
// until its results are written: into out by this process when out is
// set, otherwise by an analysis service. A run registered with another
// scenario under the same name and seed is sim.ErrBadInput.
func (o *Orchestrator) Run(ctx context.Context, sc *scenarios.Scenario, out string) (*Orchestrated, error) {
	sc, prep, err := o.Prepare(ctx, sc)
	if err != nil {
		return nil, err
	}
	p, err := sim.NewPlan(sc, o.Models)
	if err != nil {
		return nil, err
	}
	prep.Apply(p)
	id := RunID(sim.RunID(sc))
	subj := Subjects{Run: id}

	// Register, or take up, the run.
	rec, rev, exists, err := o.Reg.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if exists && o.Fresh {
		o.Log.Info("discarding what the run stored before (--fresh)", "run", id)
		if err := DeleteRunStreams(ctx, o.JS, subj); err != nil {
			return nil, err
		}
		if err := o.Reg.Delete(ctx, id); err != nil {
			return nil, err
		}
		exists = false
	}
	if o.Fresh {
		// A fresh run is a new run, named as a single-process run is
		// (NAME-SEED-TIME-RANDOM): its metrics, results and --resume
		// are its own, never those of an earlier start of the scenario.
		id = RunID(sim.NewRunID(sc))
		subj = Subjects{Run: id}
	}
	if exists && rec.Scenario != string(p.Resolved) {
		return nil, fmt.Errorf("%w: run %s is registered with a different scenario (same name and seed, other settings); change the name or the seed, or pass --fresh to discard the stored run", sim.ErrBadInput, id)
	}
	n := p.Study.Pool.Size()
	shards := sim.ShardCount(n, sc.Run.Shards)
	epoch := 1
	if exists {
		shards, epoch = rec.Shards, rec.Epoch+1
		o.Log.Info("resuming run", "run", id, "state", rec.State, "epoch", epoch)
	}
	expectedBytes := int64(n)*int64(p.TotalItems())*2 + 64<<20
	if _, err := EnsureAnswerStream(ctx, o.JS, subj, StreamOptions{MaxBytes: expectedBytes, File: true,
		Duplicates: 2 * time.Hour, Replicas: o.Queue.Replicas}); err != nil {
		return nil, err
	}
	q := o.Queue
	q.File = true
	if err := EnsureTaskQueue(ctx, o.JS, subj, q); err != nil {
		return nil, err
	}
	if exists {
		if err := PurgeTasks(ctx, o.JS, subj); err != nil {
			return nil, err
		}
		if err := o.Reg.ClearHostStats(ctx, id); err != nil {
			return nil, err
		}
	}
	prepRaw := prep.Encode()
	if exists && prepRaw == nil {
		prepRaw = rec.Prep // settled by the run's first start
	}
	start := o.Start
	if start.IsZero() {
		start = time.Now()
	}
	first := analysis.RunTime(start)
	if exists && rec.Start != "" {
		first = rec.Start // a resumed run started when it first did
	}
	// What the results last written recorded stays until a task is
	// handed out (forgetProduced).
	produced := rec.Produced
	rec = RunRecord{ID: id, Scenario: string(p.Resolved), Shards: shards, Epoch: epoch, State: RunRunning, Prep: prepRaw, Start: first,
		Produced: produced}
	if exists {
		_, err = o.Reg.Update(ctx, rec, rev)
	} else {
		_, err = o.Reg.Create(ctx, rec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (is another orchestrator starting the same run?)", err)
	}

	r := &orchestration{log: o.Log, nc: o.NC, reg: o.Reg, subj: subj, p: p, id: id, epoch: epoch, start: first, runBlock: o.RunBlock, models: o.Models}
	stall := o.Stall
	if stall <= 0 {
		stall = 2 * o.Queue.Backoff()[0]
	}
	queue := &Queue{JS: o.JS, Subjects: subj, Epoch: epoch, Logger: o.Log, Bad: func(err error) {
		r.bad.Add(1)
		if o.BadMessage != nil {
			o.BadMessage(err)
		}
	}}
	var obs sim.Observer = sim.NoObserver{}
	if o.Observer != nil {
		obs = o.Observer
	}
	var d sim.Dispatcher = queue
	var forget *forgetProduced
	if produced != nil {
		forget = &forgetProduced{Dispatcher: queue, reg: o.Reg, id: id, epoch: epoch}
		d = forget
	}
	// The hosts fetch ahead of the answers: their reports show it.
	pf := &prefetchFollower{ctx: ctx, reg: o.Reg, run: id, obs: obs}
	loop := &sim.Loop{Layout: sim.Layout{ID: id, Name: sc.Name, Plan: p, Shards: shards, Dispatcher: d},
		Observer: sim.Observers{obs, pf}, Stall: stall, Log: o.Log}
	stopFollow := pf.follow()
	r.col, err = loop.Run(ctx)
	if err != nil {
		stopFollow()
	}
	if o.Answered != nil {
		o.Answered(ctx, err)
	}
	if err == nil && o.Replies != nil {
		o.Models.Keep(ctx, o.Replies.Each)
	}
	if err == nil {
		// The hosts' traffic is complete once every task is settled.
		if serr := TasksSettled(ctx, o.JS, subj, 2*o.Queue.Backoff()[0]); serr != nil && ctx.Err() == nil {
			o.Log.Warn("the results may not count every model request", "run", id, "err", serr)
		}
		// The hosts' last reports are in: the fetch ahead ends with its
		// final counts.
		stopFollow()
		// Every task is done: the hosts' fetch claims are no longer
		// needed, and the server reserves storage for their bucket.
		if derr := deleteFlights(ctx, o.JS, subj); derr != nil {
			o.Log.Debug("delete fetch claims", "run", id, "err", derr)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			r.fail(err)
		}
		return nil, err
	}
	// The steps after the answers, here or in the analysis service, take
	// seconds on a large run: the observer is told, as a single process's.
	sim.Stage(obs, sim.StageAnalysing)
	r.obs = obs
	var final RunRecord
	if out != "" {
		final, err = r.writeOwn(ctx, out)
	} else {
		final, err = r.await(ctx)
	}
	if err != nil {
		return nil, err
	}
	res := &Orchestrated{ID: id, Record: final, Elapsed: time.Since(start), Stored: forget != nil && !forget.handedOut()}
	if len(final.Results) > 0 {
		var r analysis.Results
		if err := json.Unmarshal(final.Results, &r); err == nil {
			res.Outcome = &analysis.Outcome{Results: r}
		}
	}
	return res, nil
}

// orchestration is one run's orchestrator state.
type orchestration struct {
	log   *slog.Logger
	nc    *nats.Conn
	reg   *Registry
	subj  Subjects
	p     *sim.Plan
	id    string
	epoch int
	start string // the run's first start (RunRecord.Start)
	col   *analysis.Collector
	obs   sim.Observer
	bad   atomic.Int64

	runBlock func(id, start string) *analysis.Run
	models   sim.Backends // describe the models in the run block
}

// await marks the run complete, which asks the analysis service to compute
// and write the results, and waits until it has.
func (o *orchestration) await(ctx context.Context) (RunRecord, error) {
	if _, err := o.reg.Modify(ctx, o.id, func(r *RunRecord) error {
		r.State = RunComplete
		return nil
	}); err != nil {
		return RunRecord{}, err
	}
	o.log.Info("every answer is stored; waiting for the analysis service to write the results", "run", o.id)
	var heard atomic.Bool
	sub, err := o.nc.Subscribe(o.subj.Results(), func(m *nats.Msg) {
		if _, err := DecodeProgress(m.Data); err == nil {
			heard.Store(true)
		}
	})
	if err == nil {
		defer sub.Unsubscribe()
	}
	hinted := time.Now()
	for {
		rec, _, ok, err := o.reg.Get(ctx, o.id)
		switch {
		case err != nil:
			o.log.Debug("read run record", "run", o.id, "err", err)
		case !ok:
			return RunRecord{}, fmt.Errorf("run %s: removed from the registry while finishing", o.id)
		case rec.Epoch != o.epoch:
			return RunRecord{}, fmt.Errorf("run %s: taken over by another orchestrator (epoch %d)", o.id, rec.Epoch)
		case rec.State == RunDone:
			return rec, nil
		case rec.State == RunFailed:
			return rec, fmt.Errorf("run %s: %s", o.id, rec.Error)
		}
		if !heard.Load() && time.Since(hinted) > 5*time.Second {
			o.log.Warn("no analysis service has reported on this run yet; start one with 'society analyze --nats URL'", "run", o.id)
			hinted = time.Now()
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return RunRecord{}, ctx.Err()
		}
	}
}

// writeOwn computes the results from the answers the orchestrator
// followed and writes them to dir, as the analysis service would, and
// records the run done.
func (o *orchestration) writeOwn(ctx context.Context, dir string) (RunRecord, error) {
	// The hosts' traffic, per model too, as the analysis service reports
	// it, and the calibration's that this process made.
	writing := func(*analysis.Outcome) { sim.Stage(o.obs, sim.StageWriting) }
	f := &finishing{id: o.id, plan: o.p, col: o.col, start: o.start, produced: currentProduced(ctx, o.reg, o.id),
		b: o.models, runBlock: o.runBlock, reg: o.reg, log: o.log, computed: writing}
	produced, err := f.produce(ctx, dir)
	if err != nil {
		return RunRecord{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	results, _ := recordedResults(dir)
	host, _ := os.Hostname()
	return o.reg.Modify(ctx, o.id, func(r *RunRecord) error {
		if r.Epoch != o.epoch {
			return fmt.Errorf("run %s: taken over by another orchestrator (epoch %d)", o.id, r.Epoch)
		}
		r.State, r.Dir, r.Host, r.Results, r.Error, r.Produced = RunDone, abs, host, results, "", produced
		return nil
	})
}

// fail records the run's failure in the registry, for every role to see.
func (o *orchestration) fail(err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, merr := o.reg.Modify(ctx, o.id, func(r *RunRecord) error {
		if r.Epoch != o.epoch {
			return errors.New("taken over")
		}
		r.State, r.Error = RunFailed, err.Error()
		return nil
	}); merr != nil {
		o.log.Error("record the run's failure", "run", o.id, "err", merr)
	}
}
