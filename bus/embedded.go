package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
)

// A single-process run uses the roles of a distributed one around an
// embedded server: its tasks land in the run's work-queue stream (which
// captures every message on the task subjects) and a Worker in this
// process serves them with the run's shards, so that a task is never lost
// for want of a listener, exactly as between machines.

// Embedded opens single-process runs (sim.Engine.Open) on an embedded
// NATS server of their own.
type Embedded struct {
	// MaxPayload is the server's max payload; zero is its default.
	MaxPayload int32
	// Bad is told about every message that could not be decoded.
	Bad    func(error)
	Logger *slog.Logger
}

// localQueue is the task delivery of a single-process run of agents
// agents: one delivery, since a task that fails fails the run, as it
// always has; in memory; and room for a whole phase of game rounds, whose
// messages carry each agent's memory (8 bytes, 11 as JSON), with margin.
func localQueue(agents int) TaskQueueOptions {
	return TaskQueueOptions{MaxDeliver: 1, MaxBytes: int64(agents)*16 + 64<<20}
}

// maxLocalTasks bounds the tasks a single-process run serves at once: the
// server keeps at most 512 waiting pull requests per consumer, and a few
// hundred shards at work keep every core busy.
const maxLocalTasks = 256

// Open starts the server and the run's streams and instantiates its
// shards; close drains the connection and stops the server.
func (e Embedded) Open(ctx context.Context, lay sim.Layout) (sim.Dispatcher, func() error, error) {
	srv, err := StartServer(ServerOptions{MaxPayload: e.MaxPayload})
	if err != nil {
		return nil, nil, err
	}
	nc, err := srv.Connect("society-run")
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	closeAll := func() error {
		err := nc.Drain()
		if errors.Is(err, nats.ErrConnectionClosed) {
			err = nil
		}
		nc.Close()
		srv.Shutdown()
		if err != nil {
			return fmt.Errorf("drain nats: %w", err)
		}
		return nil
	}
	d, err := e.open(ctx, nc, lay)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return d, closeAll, nil
}

func (e Embedded) open(ctx context.Context, nc *nats.Conn, lay sim.Layout) (*Local, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	p := lay.Plan
	n := p.Study.Pool.Size()
	subj := Subjects{Run: lay.ID}
	expectedBytes := int64(n)*int64(p.TotalItems())*2 + 64<<20
	if _, err := EnsureAnswerStream(ctx, js, subj, StreamOptions{MaxBytes: expectedBytes}); err != nil {
		return nil, err
	}
	if err := EnsureTaskQueue(ctx, js, subj, localQueue(n)); err != nil {
		return nil, err
	}
	l := &Local{JS: js, Subjects: subj, Plan: p, Bad: e.Bad, Logger: e.Logger}
	for s := range lay.Shards {
		l.Shards = append(l.Shards, p.NewShard(s, lay.Shards))
	}
	return l, nil
}

// Local is the dispatcher of a single-process run: a Worker in this
// process serves the tasks with the run's shards, and the answers are
// read from the stream's first message. A task that fails fails the run.
type Local struct {
	JS       jetstream.JetStream
	Subjects Subjects
	Plan     *sim.Plan
	Shards   []*agent.Shard
	Bad      func(error)
	Logger   *slog.Logger

	mu   sync.Mutex
	wave int
}

var _ sim.Dispatcher = (*Local)(nil)

// Deliver serves the tasks and reads the answers until ctx is done or a
// task fails; nothing is stored before it starts.
func (l *Local) Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := l.serve(ctx); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := ConsumeAnswers(ctx, l.JS, l.Subjects, sink, l.Bad); err != nil {
			cancel(err)
		}
	}()
	caughtUp()
	<-ctx.Done()
	wg.Wait()
	if c := context.Cause(ctx); !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
		return c
	}
	return nil
}

// serve serves the run's tasks with its shards until ctx is done or a
// task fails; it returns after every goroutine it started has exited.
func (l *Local) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	byID := make(map[int]*agent.Shard, len(l.Shards))
	var wg sync.WaitGroup
	for _, sh := range l.Shards {
		byID[sh.ID] = sh
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.Run(ctx)
		}()
	}
	w := &Worker{
		JS: l.JS, Subjects: l.Subjects, Instrument: l.Plan.Instrument, BadMessage: l.Bad, Logger: l.Logger,
		Concurrency: min(len(l.Shards), maxLocalTasks),
		Shard: func(_ context.Context, id int) (*agent.Shard, error) {
			sh, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("no shard %d in this run", id)
			}
			return sh, nil
		},
		// A task that fails fails the run at once.
		Dead: func(d DeadLetter) { cancel(errors.New(d.String())) },
	}
	err := w.Run(ctx)
	cancel(nil)
	wg.Wait()
	if err != nil {
		return err
	}
	if c := context.Cause(ctx); !errors.Is(c, context.Canceled) {
		return c
	}
	return nil
}

// Dispatch queues the tasks as the run's next wave.
func (l *Local) Dispatch(ctx context.Context, tasks []sim.Task) error {
	msgs, err := wireTasks(l.JS.Conn(), tasks)
	if err != nil {
		return err
	}
	l.mu.Lock()
	wave := fmt.Sprint("phase", l.wave)
	l.wave++
	l.mu.Unlock()
	return PublishTasks(ctx, l.JS, l.Subjects, wave, msgs, nil)
}

// Idle reports whether the run's queue holds no task.
func (l *Local) Idle(ctx context.Context) (bool, error) {
	n, err := queued(ctx, l.JS, l.Subjects)
	return n == 0, err
}

// Backlog is the number of answer messages the run's consumers have yet
// to take (society_nats_pending).
func (l *Local) Backlog(ctx context.Context) (int64, error) { return backlog(ctx, l.JS, l.Subjects) }
