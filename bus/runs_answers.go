package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
)

// AnswerReader says how to read a run's answer stream.
type AnswerReader struct {
	JS       jetstream.JetStream
	Subjects Subjects
	// Sink stores a batch; it must treat a batch it has seen as a no-op.
	// An error rejects the batch (answers the run did not plan) like an
	// unreadable message: it goes to Bad and reading goes on.
	Sink func(*agent.Batch) error
	// Bad is told about every message that was rejected; may be nil.
	Bad func(error)
	// CaughtUp, when set, is called once every answer stored when reading
	// began has gone to Sink.
	CaughtUp func()
	Logger   *slog.Logger
}

func (r *AnswerReader) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *AnswerReader) take(data []byte) bool {
	b, err := DecodeBatch(data)
	if err == nil {
		err = r.Sink(b)
	}
	if err != nil {
		r.log().Warn("rejected answer message", "run", r.Subjects.Run, "err", err)
		if r.Bad != nil {
			r.Bad(err)
		}
		return false
	}
	return true
}

// caughtUp calls CaughtUp once.
type caughtUp struct {
	once sync.Once
	fn   func()
}

func (c *caughtUp) done() {
	if c.fn != nil {
		c.once.Do(c.fn)
	}
}

// Follow reads the stream from its first message with an ordered consumer
// (nothing stored on the server) until ctx is done, reopening it when the
// server restarts. The orchestrator follows the answers this way to know
// when a phase is complete and which tasks a resumed run still lacks.
func (r *AnswerReader) Follow(ctx context.Context) error {
	cu := &caughtUp{fn: r.CaughtUp}
	st, err := waitStream(ctx, r.JS, r.Subjects.Stream(), r.log())
	if err != nil || st == nil {
		return err
	}
	if st.CachedInfo().State.Msgs == 0 {
		cu.done()
	}
	var cons jetstream.Consumer
	err = retry(ctx, r.log(), "answer consumer", func(ctx context.Context) (err error) {
		cons, err = r.JS.OrderedConsumer(ctx, r.Subjects.Stream(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{r.Subjects.AllAnswers()},
		})
		return err
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("answer consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r.take(m.Data())
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
			cu.done()
		}
	}, jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log().Debug("answer consumer", "run", r.Subjects.Run, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("answer consumer: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

// Consume reads the stream with the durable consumer name, acknowledging
// each batch once Sink has it. The consumer is created afresh, delivering
// from the stream's first message: a restarted analysis rebuilds all it
// had from the stream, and since Sink ignores what it has seen, nothing is
// lost or counted twice. Reading survives server restarts.
func (r *AnswerReader) Consume(ctx context.Context, name string) error {
	cu := &caughtUp{fn: r.CaughtUp}
	st, err := waitStream(ctx, r.JS, r.Subjects.Stream(), r.log())
	if err != nil || st == nil {
		return err
	}
	err = retry(ctx, r.log(), "answer consumer", func(ctx context.Context) error {
		if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("answer consumer %s: %w", name, err)
	}
	if st.CachedInfo().State.Msgs == 0 {
		cu.done()
	}
	var cons jetstream.Consumer
	err = retry(ctx, r.log(), "answer consumer", func(ctx context.Context) (err error) {
		cons, err = st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   "society analysis of run " + r.Subjects.Run,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: r.Subjects.AllAnswers(),
			AckWait:       time.Minute,
			MaxAckPending: 4096,
			// A consumer whose analysis is gone for good is cleaned away.
			InactiveThreshold: 24 * time.Hour,
			Replicas:          st.CachedInfo().Config.Replicas,
		})
		return err
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("answer consumer %s: %w", name, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if r.take(m.Data()) {
			m.Ack()
		} else {
			m.Term()
		}
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
			cu.done()
		}
	}, jetstream.PullMaxMessages(1024), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log().Debug("answer consumer", "run", r.Subjects.Run, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("answer consumer %s: %w", name, err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

// waitStream returns the stream, waiting while the server is unreachable;
// nil with a nil error means ctx ended first.
func waitStream(ctx context.Context, js jetstream.JetStream, name string, log *slog.Logger) (jetstream.Stream, error) {
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := js.Stream(sctx, name)
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if attempt == 0 {
			log.Warn("answer stream not reachable yet", "stream", name, "err", err)
		}
		if !sleep(ctx, time.Second) {
			return nil, nil
		}
	}
}
