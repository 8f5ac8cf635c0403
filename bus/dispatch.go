package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
)

// The run's work queue as sim's Dispatcher: tasks go to the run's task
// stream, agent hosts (or a worker in this process) serve them, and the
// answers come back from the run's answer stream.

// TaskOf is the wire form of a sim task.
func TaskOf(t sim.Task) TaskMsg {
	m := TaskMsg{Model: t.Model, Instrument: t.Instrument, Items: t.Items, Round: t.Round, Shard: t.Shard, Style: string(t.Style)}
	if g := t.Game; g != nil {
		m.Game = &GameMsg{Decision: g.Decision, First: g.First, Memories: agent.AppendMemories(nil, g.Memories),
			RateShown: g.RateShown, Rate: g.Rate}
	}
	return m
}

// wireTasks encodes tasks, refusing one larger than the server takes (a
// game round carries every agent's memory).
func wireTasks(nc *nats.Conn, tasks []sim.Task) ([]TaskMsg, error) {
	out := make([]TaskMsg, len(tasks))
	for i, t := range tasks {
		out[i] = TaskOf(t)
		if t.Game == nil {
			continue
		}
		if size, limit := int64(len(EncodeTask(out[i]))), nc.MaxPayload(); size > limit {
			return nil, fmt.Errorf("publish tasks: a game round for shard %d is %d bytes, more than the server's %d; use more shards (run.shards)", t.Shard, size, limit)
		}
	}
	return out, nil
}

// queued is the number of tasks in the run's queue, delivered or not: a
// work queue drops a task only when a host acknowledges it, after its
// answers are stored.
func queued(ctx context.Context, js jetstream.JetStream, s Subjects) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ictx, s.TaskStream())
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.Msgs, nil
}

// backlog is the number of answer messages the run's consumers have yet
// to receive or acknowledge.
func backlog(ctx context.Context, js jetstream.JetStream, s Subjects) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return 0, fmt.Errorf("answer backlog: %w", err)
	}
	var n uint64
	lister := st.ListConsumers(ctx)
	for info := range lister.Info() {
		n += info.NumPending + uint64(info.NumAckPending)
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("answer backlog: %w", err)
	}
	return int64(n), nil
}

// Queue is the dispatcher of a distributed run's orchestrator: agent hosts
// on the cluster serve the tasks, and the answers are followed from the
// stream's first message, so that a resumed run knows what it has. A task
// that every delivery failed (a dead letter, recorded by a host or, for a
// host that died, by Queue from the server's advisory) fails the run.
type Queue struct {
	JS       jetstream.JetStream
	Subjects Subjects
	// Epoch numbers the orchestrator's starts of the run; a task's wave
	// (its message id) is unique to the start and the dispatch.
	Epoch  int
	Logger *slog.Logger
	// Bad is told about every message that could not be used; may be nil.
	Bad func(error)

	mu   sync.Mutex
	wave int
}

var _ sim.Dispatcher = (*Queue)(nil)

func (q *Queue) log() *slog.Logger {
	if q.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return q.Logger
}

func (q *Queue) bad(err error) {
	if q.Bad != nil {
		q.Bad(err)
	}
}

// Deliver follows the run's answers and its dead letters until ctx is
// done or a task is dead.
func (q *Queue) Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	// The advisories are heard before anything else starts: once caught
	// up, no task's last delivery goes unnoticed.
	stop, err := q.deliveriesExhausted(ctx)
	if err != nil {
		return err
	}
	reader := &AnswerReader{JS: q.JS, Subjects: q.Subjects, Logger: q.Logger, Sink: sink, Bad: q.bad, CaughtUp: caughtUp}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := reader.Follow(ctx); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := q.watchDead(ctx); err != nil {
			cancel(err)
		}
	}()
	<-ctx.Done()
	stop()
	if c := context.Cause(ctx); !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
		return c
	}
	return nil
}

// Dispatch queues the tasks as a new wave.
func (q *Queue) Dispatch(ctx context.Context, tasks []sim.Task) error {
	msgs, err := wireTasks(q.JS.Conn(), tasks)
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.wave++
	wave := fmt.Sprintf("e%d-w%d", q.Epoch, q.wave)
	q.mu.Unlock()
	q.log().Info("queueing tasks", "run", q.Subjects.Run, "tasks", len(msgs), "wave", wave)
	return PublishTasks(ctx, q.JS, q.Subjects, wave, msgs, q.Logger)
}

// Idle reports whether the run's queue holds no task.
func (q *Queue) Idle(ctx context.Context) (bool, error) {
	n, err := queued(ctx, q.JS, q.Subjects)
	return n == 0, err
}

// Backlog is the number of answer messages the run's consumers have yet
// to take (society_nats_pending).
func (q *Queue) Backlog(ctx context.Context) (int64, error) { return backlog(ctx, q.JS, q.Subjects) }

// watchDead fails the run on the first dead-letter record.
func (q *Queue) watchDead(ctx context.Context) error {
	for ctx.Err() == nil {
		cons, err := q.JS.OrderedConsumer(ctx, q.Subjects.DeadStream(), jetstream.OrderedConsumerConfig{})
		if err != nil {
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		errc := make(chan error, 1)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			d, err := DecodeDeadLetter(m.Data())
			if err != nil {
				q.bad(err)
				return
			}
			select {
			case errc <- fmt.Errorf("run %s: %s", q.Subjects.Run, d):
			default:
			}
		})
		if err != nil {
			if !sleep(ctx, time.Second) {
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
func (q *Queue) deliveriesExhausted(ctx context.Context) (func(), error) {
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", q.Subjects.TaskStream(), TaskConsumer)
	var wg sync.WaitGroup
	sub, err := q.JS.Conn().Subscribe(subject, func(m *nats.Msg) {
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
			st, err := q.JS.Stream(ctx, q.Subjects.TaskStream())
			if err != nil {
				return
			}
			raw, err := st.GetMsg(ctx, adv.StreamSeq)
			if err != nil {
				return
			}
			t, err := DecodeTask(raw.Data)
			if err != nil {
				return
			}
			d := DeadLetter{Task: t, Deliveries: adv.Deliveries,
				Reason: "no host finished it: every host that took it stopped or hung"}
			if err := PublishDeadLetter(ctx, q.JS, q.Subjects, d); err != nil && ctx.Err() == nil {
				q.log().Error("record dead letter", "run", q.Subjects.Run, "err", err)
			}
		}()
	})
	if err == nil {
		err = q.JS.Conn().Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe to delivery advisories: %w", err)
	}
	return func() { sub.Unsubscribe(); wg.Wait() }, nil
}
