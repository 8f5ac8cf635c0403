package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
)

// StreamOptions bounds the answer stream.
type StreamOptions struct {
	// MaxBytes is the stream's explicit size limit. With DiscardNew a full
	// stream rejects new answers (publishers see the error and the run fails
	// loudly) instead of silently dropping old ones.
	MaxBytes int64
	// File keeps answers on disk (multi-process runs that must survive a
	// restart); the default keeps them in memory.
	File bool
	// Duplicates is the de-duplication window; it must outlast any retry.
	Duplicates time.Duration
	// Replicas is the stream's replication in a cluster; 0 means 1.
	Replicas int
}

// EnsureAnswerStream creates (or updates) the run's answer stream.
func EnsureAnswerStream(ctx context.Context, js jetstream.JetStream, s Subjects, o StreamOptions) (jetstream.Stream, error) {
	if o.MaxBytes == 0 {
		o.MaxBytes = 512 << 20
	}
	if o.Duplicates == 0 {
		o.Duplicates = 10 * time.Minute
	}
	storage := jetstream.MemoryStorage
	if o.File {
		storage = jetstream.FileStorage
	}
	var st jetstream.Stream
	err := retry(ctx, nil, "answer stream", func(ctx context.Context) (err error) {
		st, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        s.Stream(),
			Description: "society answers of run " + s.Run,
			Subjects:    []string{s.AllAnswers()},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    o.MaxBytes,
			Storage:     storage,
			Duplicates:  o.Duplicates,
			MaxMsgSize:  8 << 20,
			Replicas:    max(o.Replicas, 1),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("answer stream %s: %w", s.Stream(), err)
	}
	return st, nil
}

// ConsumeAnswers reads every answer batch of the run's stream from the
// start, in order, and hands each to sink until ctx is done. Messages this
// version cannot decode are passed to bad and skipped. Because it always
// replays from the first message, an analysis that restarts loses nothing;
// the sink must treat a batch it has seen as a no-op.
func ConsumeAnswers(ctx context.Context, js jetstream.JetStream, s Subjects, sink func(*agent.Batch) error, bad func(error)) error {
	var cons jetstream.Consumer
	err := retry(ctx, nil, "answer consumer", func(ctx context.Context) (err error) {
		cons, err = js.OrderedConsumer(ctx, s.Stream(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{s.AllAnswers()},
		})
		return err
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("answer consumer: %w", err)
	}
	errc := make(chan error, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		b, err := DecodeBatch(m.Data())
		if err != nil {
			if bad != nil {
				bad(err)
			}
			return
		}
		if err := sink(b); err != nil {
			select {
			case errc <- err:
			default:
			}
		}
	})
	if err != nil {
		return fmt.Errorf("answer consumer: %w", err)
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("consume answers: %w", err)
	}
}
