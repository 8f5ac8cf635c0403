package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
)

// A single-process run uses the roles of a distributed one: its tasks go
// through the run's work queue to a bus.Worker, so that a task is never
// lost for want of a listener, exactly as between machines.

// maxLocalTasks bounds the tasks a single-process run serves at once: the
// server keeps at most 512 waiting pull requests per consumer, and a few
// hundred shards at work keep every core busy.
const maxLocalTasks = 256

// serveLocal serves the tasks of a single-process run with the host's
// shards until ctx is done; it returns after every goroutine it started
// has exited.
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
	}
	// A task fails the run at once, as it did when the run had one host.
	w.Dead = func(d bus.DeadLetter) { cancel(errors.New(d.String())) }
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

// localQueue is the task delivery of a single-process run: one delivery,
// since a failed task fails the run.
var localQueue = bus.TaskQueueOptions{MaxDeliver: 1}

// localWaves numbers the phases a process queues, for the tasks' ids.
var localWaves atomic.Int64

// queuePhase queues a phase's tasks on the run's work queue: one per plan
// and shard, or the phase's own messages (a game round) for each shard.
func queuePhase(ctx context.Context, js jetstream.JetStream, subj bus.Subjects, ph phase, styles map[string]agent.Style, shards, agents int) error {
	tasks := missingTasks(ph, newBatchSet(), styles, shards, agents)
	for _, t := range tasks {
		if n := len(bus.EncodeTask(t)); n > maxTaskBytes {
			return fmt.Errorf("publish tasks: a task for shard %d is %d bytes, more than %d; use more shards (run.shards)", t.Shard, n, maxTaskBytes)
		}
	}
	return bus.PublishTasks(ctx, js, subj, "local-"+strconv.FormatInt(localWaves.Add(1), 10), tasks, nil)
}

// maxTaskBytes is the largest task message: the embedded server's payload
// limit (bus.StartServer), which a game round's memories must fit.
const maxTaskBytes = 8 << 20
