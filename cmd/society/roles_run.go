package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
)

// The orchestrator of a distributed run: it registers the run, queues the
// tasks each phase still lacks, follows the answers to know when a phase is
// complete, and finally asks the analysis service (through the registry)
// to compute and write the results. It holds nothing that cannot be
// rebuilt: killed and started again, it carries on where the run stands.

// distConfig configures a distributed run.
type distConfig struct {
	NATS *bus.Flags
	// Scenario is the study to run; nil with Resume, which names a
	// registered run instead.
	Scenario *scenarios.Scenario
	Resume   string
	// Out, when set, makes the orchestrator write the results directory
	// itself, from the answers it followed, instead of waiting for the
	// analysis service.
	Out string
	// Force lets Out replace whatever it names (see checkOut).
	Force bool
	// Fresh discards whatever the run stored before.
	Fresh    bool
	Queue    bus.TaskQueueOptions
	CacheDir string
	// Stall is how long a phase may go without a new answer while no task
	// is queued before its missing work is handed out again; 0 means
	// twice the ack wait.
	Stall    time.Duration
	Progress io.Writer // nil: no progress bar
	Log      *slog.Logger
	// Stderr takes what a calibration run before the main run prints.
	Stderr io.Writer
}

// distResult is what a finished distributed run reports.
type distResult struct {
	ID      string
	Record  bus.RunRecord
	Outcome *analysis.Outcome // nil when the results did not fit the record
	Elapsed time.Duration
}

func runDistributed(ctx context.Context, cfg distConfig) (*distResult, error) {
	start := time.Now()
	log := cfg.Log
	nc, err := connectNATS(ctx, cfg.NATS, "run", log)
	if err != nil {
		return nil, err
	}
	defer bus.Drain(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	reg, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{Replicas: cfg.Queue.Replicas})
	if err != nil {
		return nil, err
	}

	sc := cfg.Scenario
	if cfg.Resume != "" {
		rec, _, ok, err := reg.Get(ctx, bus.RunID(cfg.Resume))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: --resume %s: no such run in the registry", errUsage, cfg.Resume)
		}
		rsc, err := scenarios.Parse([]byte(rec.Scenario), "run "+rec.ID)
		if err != nil {
			return nil, fmt.Errorf("run %s: stored scenario: %w", rec.ID, err)
		}
		if sc != nil && runID(sc) != runID(rsc) {
			return nil, fmt.Errorf("%w: --resume %s, but the scenario given is run %s", errUsage, cfg.Resume, runID(sc))
		}
		if sc == nil {
			if err := checkOut(cfg.Out, rsc.Name, cfg.Force); err != nil {
				return nil, err
			}
		}
		sc = rsc
	}
	// As in a single-process run: the persona data and any model-specific
	// calibration are settled first, so that the resolved scenario every
	// host builds its agents from holds what the run really uses.
	sc, prep, err := prepareRun(ctx, runConfig{Scenario: sc, CacheDir: cfg.CacheDir, Log: cfg.Stderr})
	if err != nil {
		return nil, err
	}
	p, err := buildPlan(sc, cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	prep.apply(p)
	defer p.backends.close()
	id := bus.RunID(runID(sc))
	subj := bus.Subjects{Run: id}

	// Register, or take up, the run.
	rec, rev, exists, err := reg.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if exists && cfg.Fresh {
		log.Info("discarding what the run stored before (--fresh)", "run", id)
		if err := bus.DeleteRunStreams(ctx, js, subj); err != nil {
			return nil, err
		}
		if err := reg.Delete(ctx, id); err != nil {
			return nil, err
		}
		exists = false
	}
	if exists && rec.Scenario != string(p.resolved) {
		return nil, fmt.Errorf("%w: run %s is registered with a different scenario (same name and seed, other settings); change the name or the seed, or pass --fresh to discard the stored run", errBadInput, id)
	}
	n := p.study.Pool.Size()
	shards := shardCount(n, sc.Run.Shards)
	epoch := 1
	if exists {
		shards, epoch = rec.Shards, rec.Epoch+1
		log.Info("resuming run", "run", id, "state", rec.State, "epoch", epoch)
	}
	expectedBytes := int64(n)*int64(totalItems(p))*2 + 64<<20
	if _, err := bus.EnsureAnswerStream(ctx, js, subj, bus.StreamOptions{MaxBytes: expectedBytes, File: true,
		Duplicates: 2 * time.Hour, Replicas: cfg.Queue.Replicas}); err != nil {
		return nil, err
	}
	q := cfg.Queue
	q.File = true
	if err := bus.EnsureTaskQueue(ctx, js, subj, q); err != nil {
		return nil, err
	}
	if exists {
		if err := bus.PurgeTasks(ctx, js, subj); err != nil {
			return nil, err
		}
		if err := reg.ClearHostStats(ctx, id); err != nil {
			return nil, err
		}
	}
	prepRaw := encodePrep(prep)
	if exists && prepRaw == nil {
		prepRaw = rec.Prep // settled by the run's first start
	}
	rec = bus.RunRecord{ID: id, Scenario: string(p.resolved), Shards: shards, Epoch: epoch, State: bus.RunRunning, Prep: prepRaw}
	if exists {
		_, err = reg.Update(ctx, rec, rev)
	} else {
		_, err = reg.Create(ctx, rec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (is another orchestrator starting the same run?)", err)
	}

	o := &orchestrator{cfg: cfg, log: log, nc: nc, js: js, reg: reg, subj: subj, p: p, id: id, shards: shards, epoch: epoch,
		col: analysis.NewCollector(n, p.study.Plans), have: newBatchSet()}
	err = o.run(ctx)
	if err != nil {
		if ctx.Err() == nil {
			o.fail(err)
		}
		return nil, err
	}
	var final bus.RunRecord
	if cfg.Out != "" {
		final, err = o.writeOwn(ctx, cfg.Out)
	} else {
		final, err = o.await(ctx)
	}
	if err != nil {
		return nil, err
	}
	res := &distResult{ID: id, Record: final, Elapsed: time.Since(start)}
	if len(final.Results) > 0 {
		var r analysis.Results
		if err := json.Unmarshal(final.Results, &r); err == nil {
			res.Outcome = &analysis.Outcome{Results: r}
		}
	}
	return res, nil
}

type orchestrator struct {
	cfg    distConfig
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	reg    *bus.Registry
	subj   bus.Subjects
	p      *plan
	id     string
	shards int
	epoch  int
	wave   int
	col    *analysis.Collector
	have   *batchSet
	bad    atomic.Int64
}

// run drives the phases until every answer is stored.
func (o *orchestrator) run(ctx context.Context) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)

	caughtUp := make(chan struct{})
	reader := &bus.AnswerReader{JS: o.js, Subjects: o.subj, Logger: o.log,
		Sink: func(b *agent.Batch) error {
			if err := o.col.Add(b); err != nil {
				return err
			}
			o.have.add(b)
			return nil
		},
		Bad:      func(error) { o.bad.Add(1) },
		CaughtUp: func() { close(caughtUp) },
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := reader.Follow(runCtx); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := o.watchDead(runCtx); err != nil {
			cancel(err)
		}
	}()
	stopAdvisories, err := o.deliveriesExhausted(runCtx)
	if err != nil {
		return err
	}
	defer func() {
		cancel(nil) // first: an advisory's dead letter may be waiting for the server
		stopAdvisories()
	}()

	select {
	case <-caughtUp:
	case <-runCtx.Done():
		return cause(runCtx)
	}
	if e, v, i := o.col.Counts(); v+i > 0 {
		o.log.Info("answers already stored", "run", o.id, "stored", v+i, "expected", e)
	}

	bar := newProgressBar(o.cfg.Progress, o.id)
	defer bar.finish()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	stall := o.cfg.Stall
	if stall <= 0 {
		stall = 2 * o.cfg.Queue.Backoff()[0]
	}
	for _, ph := range o.p.phases {
		if ph.before != nil {
			if err := ph.before(runCtx, o.col); err != nil {
				return err
			}
		}
		if err := o.publish(runCtx, ph); err != nil {
			return err
		}
		lastCount, lastMove := int64(-1), time.Now()
		for !o.phaseDone(ph) {
			select {
			case <-o.col.Notify():
			case <-runCtx.Done():
				return cause(runCtx)
			case <-tick.C:
				e, v, i := o.col.Counts()
				bar.update(v+i, e)
				if v+i != lastCount {
					lastCount, lastMove = v+i, time.Now()
					continue
				}
				if time.Since(lastMove) < stall {
					continue
				}
				lastMove = time.Now()
				if queued, err := o.queued(runCtx); err == nil && queued == 0 && !o.phaseDone(ph) {
					o.log.Warn("answers are missing and no task is queued; handing the missing work out again", "run", o.id)
					if err := o.publish(runCtx, ph); err != nil {
						return err
					}
				}
			}
		}
	}
	e, v, i := o.col.Counts()
	bar.update(v+i, e)
	return nil
}

func (o *orchestrator) phaseDone(ph phase) bool {
	for _, pl := range ph.plans {
		if !o.col.Complete(pl) {
			return false
		}
	}
	return true
}

// publish queues the phase's missing tasks as a new wave.
func (o *orchestrator) publish(ctx context.Context, ph phase) error {
	tasks := missingTasks(ph, o.have, o.p.styles, o.shards, o.p.study.Pool.Size())
	if len(tasks) == 0 {
		return nil
	}
	o.wave++
	wave := fmt.Sprintf("e%d-w%d", o.epoch, o.wave)
	o.log.Info("queueing tasks", "run", o.id, "tasks", len(tasks), "wave", wave)
	return bus.PublishTasks(ctx, o.js, o.subj, wave, tasks, o.log)
}

// queued is the number of tasks in the queue, delivered or not: a work
// queue drops a task only when a host acknowledges it, after its answers
// are stored.
func (o *orchestrator) queued(ctx context.Context) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := o.js.Stream(ictx, o.subj.TaskStream())
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.Msgs, nil
}

// watchDead fails the run on the first dead-letter record.
func (o *orchestrator) watchDead(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := o.js.OrderedConsumer(ctx, o.subj.DeadStream(), jetstream.OrderedConsumerConfig{})
		if err != nil {
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		errc := make(chan error, 1)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			d, err := bus.DecodeDeadLetter(m.Data())
			if err != nil {
				o.bad.Add(1)
				return
			}
			select {
			case errc <- fmt.Errorf("run %s: %s", o.id, d):
			default:
			}
		})
		if err != nil {
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			cc.Stop()
			return nil
		case err := <-errc:
			cc.Stop()
			return err
		}
	}
	return nil
}

// deliveriesExhausted turns the server's advisory about a task delivered
// MaxDeliver times without an acknowledgement (every host that took it
// died or hung) into a dead letter: a host that fails a task records it
// itself, but one that dies cannot.
func (o *orchestrator) deliveriesExhausted(ctx context.Context) (func(), error) {
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", o.subj.TaskStream(), bus.TaskConsumer)
	var wg sync.WaitGroup
	sub, err := o.nc.Subscribe(subject, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries int    `json:"deliveries"`
		}
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := o.js.Stream(ctx, o.subj.TaskStream())
			if err != nil {
				return
			}
			raw, err := st.GetMsg(ctx, adv.StreamSeq)
			if err != nil {
				return
			}
			t, err := bus.DecodeTask(raw.Data)
			if err != nil {
				return
			}
			d := bus.DeadLetter{Task: t, Deliveries: adv.Deliveries,
				Reason: "no host finished it: every host that took it stopped or hung"}
			if err := bus.PublishDeadLetter(ctx, o.js, o.subj, d); err != nil && ctx.Err() == nil {
				o.log.Error("record dead letter", "run", o.id, "err", err)
			}
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to delivery advisories: %w", err)
	}
	return func() { sub.Unsubscribe(); wg.Wait() }, nil
}

// await marks the run complete, which asks the analysis service to compute
// and write the results, and waits until it has.
func (o *orchestrator) await(ctx context.Context) (bus.RunRecord, error) {
	if _, err := o.reg.Modify(ctx, o.id, func(r *bus.RunRecord) error {
		r.State = bus.RunComplete
		return nil
	}); err != nil {
		return bus.RunRecord{}, err
	}
	o.log.Info("every answer is stored; waiting for the analysis service to write the results", "run", o.id)
	var heard atomic.Bool
	sub, err := o.nc.Subscribe(o.subj.Results(), func(m *nats.Msg) {
		if _, err := bus.DecodeProgress(m.Data); err == nil {
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
			return bus.RunRecord{}, fmt.Errorf("run %s: removed from the registry while finishing", o.id)
		case rec.Epoch != o.epoch:
			return bus.RunRecord{}, fmt.Errorf("run %s: taken over by another orchestrator (epoch %d)", o.id, rec.Epoch)
		case rec.State == bus.RunDone:
			return rec, nil
		case rec.State == bus.RunFailed:
			return rec, fmt.Errorf("run %s: %s", o.id, rec.Error)
		}
		if !heard.Load() && time.Since(hinted) > 5*time.Second {
			o.log.Warn("no analysis service has reported on this run yet; start one with 'society analyze --nats URL'", "run", o.id)
			hinted = time.Now()
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return bus.RunRecord{}, ctx.Err()
		}
	}
}

// writeOwn computes the results from the answers the orchestrator
// followed and writes them to dir, as the analysis service would, and
// records the run done.
func (o *orchestrator) writeOwn(ctx context.Context, dir string) (bus.RunRecord, error) {
	outcome, err := o.p.study.Compute(ctx, o.col)
	if err != nil {
		return bus.RunRecord{}, err
	}
	var llm analysis.LLMCounts
	if stats, err := o.reg.HostStats(ctx, o.id, nil); err == nil {
		for _, s := range stats {
			llm.Calls, llm.CacheHits, llm.Retries = llm.Calls+s.Calls, llm.CacheHits+s.CacheHits, llm.Retries+s.Retries
		}
	}
	outcome.Results.LLM = llm
	if err := results.Write(ctx, dir, &analysis.Output{Outcome: outcome, Collector: o.col, Study: o.p.study, Scenario: o.p.resolved}); err != nil {
		return bus.RunRecord{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	results, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil || len(results) > maxRecordResults {
		results = nil
	}
	host, _ := os.Hostname()
	return o.reg.Modify(ctx, o.id, func(r *bus.RunRecord) error {
		if r.Epoch != o.epoch {
			return fmt.Errorf("run %s: taken over by another orchestrator (epoch %d)", o.id, r.Epoch)
		}
		r.State, r.Dir, r.Host, r.Results, r.Error = bus.RunDone, abs, host, results, ""
		return nil
	})
}

// fail records the run's failure in the registry, for every role to see.
func (o *orchestrator) fail(err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, merr := o.reg.Modify(ctx, o.id, func(r *bus.RunRecord) error {
		if r.Epoch != o.epoch {
			return errors.New("taken over")
		}
		r.State, r.Error = bus.RunFailed, err.Error()
		return nil
	}); merr != nil {
		o.log.Error("record the run's failure", "run", o.id, "err", merr)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// printDistSummary tells where the analysis service wrote the results.
func printDistSummary(w io.Writer, r *distResult) {
	if r.Outcome != nil {
		printSummary(w, &runResult{Outcome: r.Outcome, Elapsed: r.Elapsed}, r.Record.Dir)
	} else {
		fmt.Fprintf(w, "Run %s done in %.1fs.\nResults: %s\n", r.ID, r.Elapsed.Seconds(), r.Record.Dir)
	}
	if r.Record.Host != "" {
		fmt.Fprintf(w, "(written on %s)\n", r.Record.Host)
	}
}
