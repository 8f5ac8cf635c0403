package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
)

// A single-process run uses the roles of a distributed one: its tasks land
// in the run's work-queue stream (which captures every message on the
// task subjects) and a bus.Worker serves them, so that a task is never
// lost for want of a listener, exactly as between machines.

// localQueue is the task delivery of a single-process run of agents
// agents: one delivery, since a task that fails fails the run, as it
// always has; in memory; and room for a whole phase of game rounds, whose
// messages carry each agent's memory (8 bytes, 11 as JSON), with margin.
func localQueue(agents int) bus.TaskQueueOptions {
	return bus.TaskQueueOptions{MaxDeliver: 1, MaxBytes: int64(agents)*16 + 64<<20}
}

// maxLocalTasks bounds the tasks a single-process run serves at once: the
// server keeps at most 512 waiting pull requests per consumer, and a few
// hundred shards at work keep every core busy.
const maxLocalTasks = 256

// serveLocal serves the tasks of a single-process run with the host's
// shards until ctx is done or a task fails; it returns after every
// goroutine it started has exited.
func serveLocal(ctx context.Context, js jetstream.JetStream, host *bus.Host) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	byID := make(map[int]*agent.Shard, len(host.Shards))
	var wg sync.WaitGroup
	for _, sh := range host.Shards {
		byID[sh.ID] = sh
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.Run(ctx)
		}()
	}
	w := &bus.Worker{
		JS: js, Subjects: host.Subjects, Instrument: host.Instrument, BadMessage: host.BadMessage, Logger: host.Logger,
		Concurrency: min(len(host.Shards), maxLocalTasks),
		Shard: func(_ context.Context, id int) (*agent.Shard, error) {
			sh, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("no shard %d in this run", id)
			}
			return sh, nil
		},
		// A task that fails fails the run at once.
		Dead: func(d bus.DeadLetter) { cancel(errors.New(d.String())) },
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
