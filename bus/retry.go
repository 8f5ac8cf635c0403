package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Waiting on a busy machine. On a loaded machine the server answers late:
// a JetStream request outlives the client's fixed request timeout, an
// acknowledgement comes after a fixed wait, an in-process connection that
// was not read in time is dropped and reconnects. None of these says that
// the work cannot be done, so none of them fails a run: requests are tried
// again while the connection lives, and waits for acknowledgements end only
// when nothing at all has been acknowledged for a while (no progress), and
// then the missing messages are published again under the same ids, which
// the streams de-duplicate. Only an answer that refuses (a full stream, a
// bad request) or a closed connection ends the wait with an error.

// transient reports whether err can be mended by waiting and trying again:
// a timeout, a connection that is down or reconnecting, a stream that does
// not answer yet. A server without JetStream (nothing answers its API) is
// not transient: the run fails at once naming it.
func transient(err error) bool {
	if err == nil || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrNoResponders) {
		return false
	}
	for _, t := range []error{
		context.DeadlineExceeded, nats.ErrTimeout, nats.ErrDisconnected, nats.ErrConnectionReconnecting,
		jetstream.ErrNoStreamResponse, jetstream.ErrTooManyStalledMsgs, jetstream.ErrAsyncPublishTimeout,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled ||
		api.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabledForAccount {
		return false
	}
	return !Permanent(err)
}

// retryPause is the wait before attempt n+1 (n ≥ 1): it grows by a quarter
// second per attempt up to five seconds, so that a restarting server has
// time to come back and a busy one is not flooded.
func retryPause(n int) time.Duration {
	return min(time.Duration(n)*250*time.Millisecond, 5*time.Second)
}

// retry calls fn until it succeeds, fails with an error that is not
// transient, or ctx ends (then it returns fn's last error). Every tenth
// attempt is logged, and the first.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(ctx context.Context) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		if attempt%10 == 1 {
			log.Warn(what+": the server is slow or reconnecting; trying again", "attempt", attempt, "err", err)
		}
		if !sleep(ctx, retryPause(attempt)) {
			return err
		}
	}
}

// ackQuiet is how long a publisher waits without a single acknowledgement
// before it publishes its unacknowledged messages again. Any acknowledgement
// starts the wait afresh, so a server that is slow but working is waited
// for as long as it keeps acknowledging.
const ackQuiet = 30 * time.Second

// awaitAcks waits for the acknowledgement of every future (nil futures are
// skipped). It returns the indexes of the futures to publish again: those
// that failed with a transient error, and those still unanswered after
// quiet passed without any acknowledgement. An error that is not transient
// is returned at once; so is ctx's error when it ends.
func awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture, quiet time.Duration) ([]int, error) {
	var again []int
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	stalled := false
	for i, f := range futures {
		if f == nil {
			continue
		}
		if stalled {
			// Nothing moved for a whole quiet period: take what has been
			// answered meanwhile and publish the rest again.
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if !transient(err) {
					return nil, err
				}
				again = append(again, i)
			default:
				again = append(again, i)
			}
			continue
		}
		select {
		case <-f.Ok():
			timer.Reset(quiet)
		case err := <-f.Err():
			if !transient(err) {
				return nil, err
			}
			again = append(again, i)
		case <-timer.C:
			stalled = true
			again = append(again, i)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return again, nil
}
