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

// Host is an agent host: it owns some shards of agents, receives their task
// events through one wildcard subscription (never one per agent), hands each
// event to the shard's agents and publishes their answers to the answer
// stream, one batch per item.
type Host struct {
	Conn     *nats.Conn
	Subjects Subjects
	Shards   []*agent.Shard
	// Instrument resolves an instrument name from a task.
	Instrument func(name string) (*questionnaires.Instrument, bool)
	// BadMessage is told about every task message that could not be used.
	BadMessage func(error)
	Logger     *slog.Logger

	ready chan struct{}
	once  sync.Once
}

// queueDepth is how many task events may wait per shard. A shard works one
// event at a time; the orchestrator publishes one event per instrument and
// round, so a small queue absorbs a whole questionnaire.
const queueDepth = 64

// Ready is closed once the host is subscribed and will receive tasks.
func (h *Host) Ready() <-chan struct{} {
	h.once.Do(func() { h.ready = make(chan struct{}) })
	return h.ready
}

// Run serves until ctx is done or a shard fails; it returns after every
// goroutine it started has exited.
func (h *Host) Run(ctx context.Context) error {
	h.Ready()
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(h.Conn, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return fmt.Errorf("agent host: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	queues := make(map[int]chan TaskMsg, len(h.Shards))
	for _, sh := range h.Shards {
		q := make(chan TaskMsg, queueDepth)
		queues[sh.ID] = q
		wg.Add(2)
		go func() {
			defer wg.Done()
			sh.Run(ctx)
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-q:
					if err := h.serve(ctx, js, sh, t); err != nil {
						cancel(err)
						return
					}
				}
			}
		}()
	}

	sub, err := h.Conn.Subscribe(h.Subjects.AllTasks(), func(m *nats.Msg) {
		t, err := DecodeTask(m.Data)
		if err != nil {
			h.bad(err)
			return
		}
		q, ok := queues[t.Shard]
		if !ok {
			return // another host's shard
		}
		select {
		case q <- t:
		case <-ctx.Done():
		}
	})
	if err != nil {
		cancel(err)
		wg.Wait()
		return fmt.Errorf("agent host: subscribe: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	if err := h.Conn.Flush(); err != nil {
		cancel(err)
	}
	close(h.ready)
	<-ctx.Done()
	sub.Unsubscribe()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (h *Host) bad(err error) {
	h.Logger.Warn("unusable task message", "err", err)
	if h.BadMessage != nil {
		h.BadMessage(err)
	}
}

func (h *Host) serve(ctx context.Context, js jetstream.JetStream, sh *agent.Shard, t TaskMsg) error {
	in, ok := h.Instrument(t.Instrument)
	if !ok {
		h.bad(fmt.Errorf("%w: unknown instrument %q", ErrBadMessage, t.Instrument))
		return nil
	}
	for _, it := range t.Items {
		if it < 0 || it >= len(in.Items) {
			h.bad(fmt.Errorf("%w: item %d out of range for %s", ErrBadMessage, it, t.Instrument))
			return nil
		}
	}
	task := taskOf(t, in)
	game, err := GameTask(t, sh, h.Instrument)
	if err != nil {
		h.bad(err)
		return nil
	}
	task.Game = game
	batches, err := sh.Do(ctx, task)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("shard %d: %w", sh.ID, err)
	}
	return h.publish(ctx, js, batches)
}

// taskOf is the agents' view of a task message whose instrument is in.
// Every host (Host, Worker) goes through it, so a field added to TaskMsg
// reaches the agents the same way everywhere.
func taskOf(t TaskMsg, in *questionnaires.Instrument) *agent.Task {
	return &agent.Task{Model: t.Model, Instrument: in, Items: t.Items, Round: t.Round, Style: agent.Style(t.Style)}
}

// publish sends the batches and waits for every acknowledgement.
func (h *Host) publish(ctx context.Context, js jetstream.JetStream, batches []agent.Batch) error {
	return publishBatches(ctx, js, h.Subjects, batches, h.Logger)
}

// publishStallWait is how long a publish may wait for a free place among
// the connection's unacknowledged publishes. Every shard of a host shares
// that window, and a million agents' shards publish ten thousand batches at
// once while their goroutines keep both cores busy: the default 200 ms
// turned back-pressure into a failed run.
const publishStallWait = 30 * time.Second

// payloadHeadroom is what a message's headers (the message id) may take
// of the server's max payload: ids are well under 1 KiB.
const payloadHeadroom = 1 << 10

// publishBatches sends the batches and waits for every acknowledgement; a
// batch whose publish fails for a transient reason (a timeout, a dropped or
// reconnecting connection, a server restarting) or stays unanswered while
// nothing is acknowledged is sent again with the same message id, which the
// stream de-duplicates, after a pause that grows. A busy machine makes this
// slower, never failed: only a refusal (a full stream), a batch that cannot
// fit the server's max payload or a closed connection ends it with an error.
// It returns nil when ctx ends.
func publishBatches(ctx context.Context, js jetstream.JetStream, subj Subjects, batches []agent.Batch, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every message must fit the server's max payload (1 MiB on a default
	// nats-server), headers included, whatever the models wrote.
	limit := int(js.Conn().MaxPayload()) - payloadHeadroom
	pending := make([]agent.Batch, 0, len(batches))
	for i := range batches {
		parts, err := SplitBatch(&batches[i], limit)
		if err != nil {
			return fmt.Errorf("publish answers: %w", err)
		}
		pending = append(pending, parts...)
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt%10 == 1 {
				log.Warn("answers not acknowledged yet; publishing them again", "run", subj.Run, "batches", len(pending), "attempt", attempt+1)
			}
			if !sleep(ctx, retryPause(attempt)) {
				return nil
			}
		}
		futures := make([]jetstream.PubAckFuture, len(pending))
		var again []agent.Batch
		for i := range pending {
			b := &pending[i]
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subj.Answers(b.Shard), Data: AppendBatch(nil, b)},
				jetstream.WithMsgID(MsgID(subj.Run, b)), jetstream.WithStallWait(publishStallWait))
			if err != nil {
				if !transient(err) {
					return fmt.Errorf("publish answers: %w", err)
				}
				again = append(again, *b)
				continue
			}
			futures[i] = f
		}
		idx, err := awaitAcks(ctx, futures, ackQuiet)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish answers: %w", err)
		}
		for _, i := range idx {
			again = append(again, pending[i])
		}
		pending = again
	}
	return nil
}
