package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Host is an agent host's shards and what serving them needs: the
// connection, the run's subjects, how an instrument is found from a task's
// name and who hears of unusable task messages. A Worker serves them from
// the run's work queue.
type Host struct {
	Conn     *nats.Conn
	Subjects Subjects
	Shards   []*agent.Shard
	// Instrument resolves an instrument name from a task.
	Instrument func(name string) (*questionnaires.Instrument, bool)
	// BadMessage is told about every task message that could not be used.
	BadMessage func(error)
	Logger     *slog.Logger
}

// taskOf is the agents' view of a task message whose instrument is in.
// Every task a Worker serves goes through it, so a field added to TaskMsg
// reaches the agents in one place.
func taskOf(t TaskMsg, in *questionnaires.Instrument) *agent.Task {
	return &agent.Task{Model: t.Model, Instrument: in, Items: t.Items, Round: t.Round, Style: agent.Style(t.Style)}
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
