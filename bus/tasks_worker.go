package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Worker serves one run's tasks on an agent host. It keeps no state about
// which shards are its own: it pulls whatever task is next from the run's
// shared consumer and asks Shard for that shard's agents, which any host
// can instantiate since agents are fully determined by the scenario. So
// hosts can join, leave or die at any time.
type Worker struct {
	JS       jetstream.JetStream
	Subjects Subjects
	// Shard returns the started shard id of the run; an error means the
	// task can never be served here (a shard outside the run).
	Shard func(ctx context.Context, id int) (*agent.Shard, error)
	// Instrument resolves an instrument name from a task.
	Instrument func(name string) (*questionnaires.Instrument, bool)
	// Concurrency is how many tasks the worker serves at once; 0 means 2.
	// Tasks of the same shard wait for each other inside the shard.
	Concurrency int
	// Host names this host in dead-letter records.
	Host string
	// BadMessage is told about every task message that could not be used.
	BadMessage func(error)
	// Settle, when set, is called after a task's answers are stored and
	// before the task is acknowledged: what the host must have recorded
	// by the time the run's orchestrator sees every task done (its model
	// traffic) is recorded here.
	Settle func(ctx context.Context, t TaskMsg)
	// Served, when set, is called after each task whose answers are
	// stored, with the number of answers.
	Served func(t TaskMsg, answers int)
	// Prefetch, when set, starts fetching ahead what the agents of a task
	// will ask, just before they ask it; the task's answers stored, the
	// worker calls stop, which must end the fetch and wait for it. It
	// must not change an answer, only how soon it comes.
	Prefetch func(ctx context.Context, t TaskMsg) (stop func())
	// Dead, when set, is told about each task this worker recorded as a
	// dead letter (a single-process run fails on it at once).
	Dead   func(d DeadLetter)
	Logger *slog.Logger
}

// errUnservable marks a task that no delivery can mend.
var errUnservable = errors.New("task cannot be served")

// Run serves tasks until ctx is done; it returns after every goroutine it
// started has exited. A task in hand when ctx ends is handed back to the
// server at once, for another host to take.
func (w *Worker) Run(ctx context.Context) error {
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	cons, err := w.consumer(ctx)
	if err != nil || cons == nil {
		return err
	}
	cfg := cons.CachedInfo().Config
	beat := max(cfg.AckWait/4, 50*time.Millisecond)
	var wg sync.WaitGroup
	for range max(w.Concurrency, 2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, cons, cfg, beat)
		}()
	}
	wg.Wait()
	return nil
}

// consumer binds to the hosts' consumer, waiting while the server is
// unreachable; nil with a nil error means ctx ended first.
func (w *Worker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := w.JS.Consumer(cctx, w.Subjects.TaskStream(), TaskConsumer)
		cancel()
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if attempt == 0 {
			w.Logger.Warn("task queue not reachable yet", "run", w.Subjects.Run, "err", err)
		}
		if !sleep(ctx, time.Second) {
			return nil, nil
		}
	}
}

func (w *Worker) loop(ctx context.Context, cons jetstream.Consumer, cfg jetstream.ConsumerConfig, beat time.Duration) {
	failures := 0
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				failures = 0
				continue
			}
			// The server restarts, or the run's queue was removed: wait
			// and ask again.
			if failures == 0 {
				w.Logger.Warn("pull tasks", "run", w.Subjects.Run, "err", err)
			}
			failures++
			sleep(ctx, min(time.Duration(failures)*200*time.Millisecond, 2*time.Second))
			continue
		}
		failures = 0
		w.handle(ctx, m, cfg, beat)
	}
}

func (w *Worker) handle(ctx context.Context, m jetstream.Msg, cfg jetstream.ConsumerConfig, beat time.Duration) {
	t, err := DecodeTask(m.Data())
	if err == nil {
		err = checkTaskBounds(t)
	}
	if err != nil {
		// Not a task this version can read: never deliver it again.
		w.bad(err)
		m.Term()
		return
	}
	deliveries := 1
	if md, err := m.Metadata(); err == nil {
		deliveries = int(md.NumDelivered)
	}
	if deliveries > 1 {
		w.Logger.Info("task delivered again (a host stopped, hung or failed it)", "run", w.Subjects.Run, "shard", t.Shard, "deliveries", deliveries)
	}

	// Heartbeats keep the task ours while the model works.
	hbCtx, stopBeat := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		tick := time.NewTicker(beat)
		defer tick.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-tick.C:
				m.InProgress()
			}
		}
	}()
	answers, err := w.serve(ctx, t)
	stopBeat()
	hb.Wait()

	switch {
	case ctx.Err() != nil:
		// Shutting down: hand the task back at once. A plain NAK would
		// follow the consumer's BackOff schedule; an explicit delay
		// overrides it.
		m.NakWithDelay(time.Millisecond)
	case err == nil:
		if w.Settle != nil {
			w.Settle(ctx, t)
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.DoubleAck(actx)
		cancel()
		if err != nil {
			// The answers are stored; a redelivery only repeats them, and
			// the stream drops the repeat.
			w.Logger.Warn("ack task", "run", w.Subjects.Run, "shard", t.Shard, "err", err)
		}
		if w.Served != nil {
			w.Served(t, answers)
		}
	case errors.Is(err, errUnservable) || permanent(err) || deliveries >= cfg.MaxDeliver && cfg.MaxDeliver > 0:
		w.Logger.Error("task failed for good", "run", w.Subjects.Run, "shard", t.Shard, "deliveries", deliveries, "err", err)
		d := DeadLetter{Task: t, Deliveries: deliveries, Reason: err.Error(), Host: w.Host}
		if perr := PublishDeadLetter(ctx, w.JS, w.Subjects, d); perr != nil {
			w.Logger.Error("record dead letter", "run", w.Subjects.Run, "err", perr)
			m.Nak()
			return
		}
		m.Term()
		if w.Dead != nil {
			w.Dead(d)
		}
	default:
		delay := cfg.AckWait
		if n := len(cfg.BackOff); n > 0 {
			delay = cfg.BackOff[min(deliveries-1, n-1)]
		}
		w.Logger.Warn("task failed; it will be delivered again", "run", w.Subjects.Run, "shard", t.Shard,
			"deliveries", deliveries, "retry_in", delay, "err", err)
		m.NakWithDelay(delay)
	}
}

// serve answers a task and stores its answers, and returns how many
// there were.
func (w *Worker) serve(ctx context.Context, t TaskMsg) (int, error) {
	in, ok := w.Instrument(t.Instrument)
	if !ok {
		return 0, fmt.Errorf("%w: unknown instrument %q", errUnservable, t.Instrument)
	}
	for _, it := range t.Items {
		if it >= len(in.Items) {
			return 0, fmt.Errorf("%w: item %d out of range for %s", errUnservable, it, t.Instrument)
		}
	}
	sh, err := w.Shard(ctx, t.Shard)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errUnservable, err)
	}
	task := taskOf(t, in)
	if task.Game, err = GameTask(t, sh, w.Instrument); err != nil {
		return 0, fmt.Errorf("%w: %v", errUnservable, err)
	}
	if w.Prefetch != nil && task.Game == nil {
		defer w.Prefetch(ctx, t)()
	}
	batches, err := sh.Do(ctx, task)
	if err != nil {
		return 0, fmt.Errorf("shard %d: %w", t.Shard, err)
	}
	answers := 0
	for _, b := range batches {
		answers += len(b.Codes)
	}
	return answers, publishBatches(ctx, w.JS, w.Subjects, batches, w.Logger)
}

// permanent reports whether an error in err's chain says that no delivery
// can mend the task: a model endpoint that refused the request for good (a
// rejected key, an exhausted quota, a missing model) refuses it on every
// host, and redeliveries would only delay the run's failure by minutes.
func permanent(err error) bool {
	var p interface{ PermanentFailure() bool }
	return errors.As(err, &p) && p.PermanentFailure()
}

func (w *Worker) bad(err error) {
	w.Logger.Warn("unusable task message", "run", w.Subjects.Run, "err", err)
	if w.BadMessage != nil {
		w.BadMessage(err)
	}
}
