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
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
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
	// CacheMode is what the run does with the model cache; the cluster's
	// shared reply bucket (at most SharedCacheBytes, 0 for the default)
	// is its shared tier, and is copied to the cache's file at the end.
	CacheMode        llm.CacheMode
	SharedCacheBytes int64
	// Stall is how long a phase may go without a new answer while no task
	// is queued before its missing work is handed out again; 0 means
	// twice the ack wait.
	Stall    time.Duration
	Progress io.Writer // nil: no progress bar
	Log      *slog.Logger
	// Stderr takes what a calibration run before the main run prints.
	Stderr io.Writer
	// Observer follows the run (the metrics) besides the progress bar;
	// BadMessage is told about every message that could not be used.
	// Either may be nil.
	Observer   sim.Observer
	BadMessage func(error)
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
		if sc != nil && sim.RunID(sc) != sim.RunID(rsc) {
			return nil, fmt.Errorf("%w: --resume %s, but the scenario given is run %s", errUsage, cfg.Resume, sim.RunID(sc))
		}
		if sc == nil {
			if err := checkOut(cfg.Out, rsc.Name, cfg.Force); err != nil {
				return nil, err
			}
		}
		sc = rsc
	}
	// As in a single-process run: the persona data and any model-specific
	// calibration (run in this process) are settled first, so that the
	// resolved scenario every host builds its agents from holds what the
	// run really uses.
	replies := openReplies(ctx, js, cfg.CacheMode, cfg.SharedCacheBytes, log)
	var shared llm.Store
	if replies != nil {
		shared = replies
	}
	e, closeEngine := newEngine(runConfig{CacheDir: cfg.CacheDir, CacheMode: cfg.CacheMode, CacheShared: shared, Log: cfg.Stderr})
	defer closeEngine()
	sc, prep, err := e.Prepare(ctx, sc)
	if err != nil {
		return nil, err
	}
	models := newModelSets(cfg.CacheDir, nil, nil).withCache(cfg.CacheMode, shared)
	defer models.close()
	b := models.set()
	p, err := sim.NewPlan(sc, b)
	if err != nil {
		return nil, err
	}
	prep.Apply(p)
	id := bus.RunID(sim.RunID(sc))
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
	if exists && rec.Scenario != string(p.Resolved) {
		return nil, fmt.Errorf("%w: run %s is registered with a different scenario (same name and seed, other settings); change the name or the seed, or pass --fresh to discard the stored run", errBadInput, id)
	}
	n := p.Study.Pool.Size()
	shards := sim.ShardCount(n, sc.Run.Shards)
	epoch := 1
	if exists {
		shards, epoch = rec.Shards, rec.Epoch+1
		log.Info("resuming run", "run", id, "state", rec.State, "epoch", epoch)
	}
	expectedBytes := int64(n)*int64(p.TotalItems())*2 + 64<<20
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
	prepRaw := prep.Encode()
	if exists && prepRaw == nil {
		prepRaw = rec.Prep // settled by the run's first start
	}
	first := analysis.RunTime(start)
	if exists && rec.Start != "" {
		first = rec.Start // a resumed run started when it first did
	}
	rec = bus.RunRecord{ID: id, Scenario: string(p.Resolved), Shards: shards, Epoch: epoch, State: bus.RunRunning, Prep: prepRaw, Start: first}
	if exists {
		_, err = reg.Update(ctx, rec, rev)
	} else {
		_, err = reg.Create(ctx, rec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (is another orchestrator starting the same run?)", err)
	}

	o := &orchestrator{cfg: cfg, log: log, nc: nc, js: js, reg: reg, subj: subj, p: p, id: id, epoch: epoch, start: first}
	stall := cfg.Stall
	if stall <= 0 {
		stall = 2 * cfg.Queue.Backoff()[0]
	}
	bar := newProgressBar(cfg.Progress, id)
	queue := &bus.Queue{JS: js, Subjects: subj, Epoch: epoch, Logger: log, Bad: func(err error) {
		o.bad.Add(1)
		if cfg.BadMessage != nil {
			cfg.BadMessage(err)
		}
	}}
	obs := sim.Observers{bar}
	if cfg.Observer != nil {
		obs = append(obs, cfg.Observer)
	}
	loop := &sim.Loop{Layout: sim.Layout{ID: id, Name: sc.Name, Plan: p, Shards: shards, Dispatcher: queue},
		Observer: obs, Stall: stall, Log: log}
	o.col, err = loop.Run(ctx)
	bar.finish()
	if err != nil {
		if ctx.Err() == nil {
			o.fail(err)
		}
		return nil, err
	}
	if replies != nil {
		b.keepShared(ctx, replies)
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
	cfg   distConfig
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	reg   *bus.Registry
	subj  bus.Subjects
	p     *sim.Plan
	id    string
	epoch int
	start string // the run's first start (bus.RunRecord.Start)
	col   *analysis.Collector
	bad   atomic.Int64
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
	outcome, err := o.p.Study.Compute(ctx, o.col)
	if err != nil {
		return bus.RunRecord{}, err
	}
	var llm analysis.LLMCounts
	if stats, err := o.reg.HostStats(ctx, o.id, nil); err == nil {
		for _, s := range stats {
			llm.Calls, llm.CacheHits, llm.Retries = llm.Calls+s.Calls, llm.CacheHits+s.CacheHits, llm.Retries+s.Retries
			llm.AnswersReused += s.AnswersReused
		}
	}
	outcome.Results.LLM = llm
	outcome.Results.Finish(distributedRun(o.id, o.start), time.Now())
	if err := results.Write(ctx, dir, &analysis.Output{Outcome: outcome, Collector: o.col, Study: o.p.Study, Scenario: o.p.Resolved}); err != nil {
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
		printSummary(w, &sim.Result{Outcome: r.Outcome, Elapsed: r.Elapsed}, r.Record.Dir)
	} else {
		fmt.Fprintf(w, "Run %s done in %.1fs.\nResults: %s\n", r.ID, r.Elapsed.Seconds(), r.Record.Dir)
	}
	if r.Record.Host != "" {
		fmt.Fprintf(w, "(written on %s)\n", r.Record.Host)
	}
}
