package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
)

// Local is a Dispatcher that runs every task in this process, straight on
// the plan's shards of agents: the bench's no-bus baseline and the domain
// tests. Each task runs in its own goroutine as soon as it is dispatched;
// a task that fails fails the run.
type Local struct {
	plan   *Plan
	shards []*agent.Shard

	// tasks carries dispatched tasks to Deliver. Unbuffered: Dispatch
	// returns once Deliver has taken them, so none is lost.
	tasks    chan []Task
	inFlight atomic.Int64
}

var _ Dispatcher = (*Local)(nil)

// NewLocal instantiates the plan's agents in shards shards.
func NewLocal(p *Plan, shards int) *Local {
	l := &Local{plan: p, tasks: make(chan []Task)}
	for s := range shards {
		l.shards = append(l.shards, p.NewShard(s, shards))
	}
	return l
}

// Deliver runs the shards' agents and every dispatched task until ctx is
// done or a task fails.
func (l *Local) Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	for _, sh := range l.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.Run(ctx)
		}()
	}
	// Batches go to sink one at a time, as from a stream.
	var sinkMu sync.Mutex
	caughtUp()
	for {
		select {
		case <-ctx.Done():
			if c := context.Cause(ctx); !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
				return c
			}
			return nil
		case tasks := <-l.tasks:
			for _, t := range tasks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer l.inFlight.Add(-1)
					if err := l.serve(ctx, t, sink, &sinkMu); err != nil {
						cancel(err)
					}
				}()
			}
		}
	}
}

func (l *Local) serve(ctx context.Context, t Task, sink func(*agent.Batch) error, mu *sync.Mutex) error {
	if t.Shard < 0 || t.Shard >= len(l.shards) {
		return fmt.Errorf("task for shard %d outside the run's %d", t.Shard, len(l.shards))
	}
	sh := l.shards[t.Shard]
	task, ok := t.AgentTask(l.plan.Instrument)
	if !ok {
		return fmt.Errorf("shard %d: task names an unknown instrument", t.Shard)
	}
	batches, err := sh.Do(ctx, task)
	if err != nil {
		return fmt.Errorf("shard %d: %w", sh.ID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range batches {
		if err := sink(&batches[k]); err != nil {
			return err
		}
	}
	return nil
}

// Dispatch hands tasks to Deliver, which starts them at once.
func (l *Local) Dispatch(ctx context.Context, tasks []Task) error {
	l.inFlight.Add(int64(len(tasks)))
	select {
	case l.tasks <- tasks:
		return nil
	case <-ctx.Done():
		l.inFlight.Add(-int64(len(tasks)))
		return ctx.Err()
	}
}

// Idle reports whether no task is at work.
func (l *Local) Idle(context.Context) (bool, error) { return l.inFlight.Load() == 0, nil }

// OpenLocal is an Engine.Open that runs the tasks in memory (Local).
func OpenLocal(_ context.Context, lay Layout) (Dispatcher, func() error, error) {
	return NewLocal(lay.Plan, lay.Shards), func() error { return nil }, nil
}
