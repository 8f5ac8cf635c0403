package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Flights is a run's fetch claims in a JetStream key-value bucket: the
// agent hosts of a run that need the same model reply at once claim its
// key, the first to create it asks the model and lands the reply there,
// and the others wait for it. So each distinct prompt (and, in sample
// mode, each block of samples) is paid for by one host, however many
// hosts ask it at once.
//
// An entry is a claim ('c') renewed by its holder, or a landed value
// ('v' and the value). Claims are taken with a create (only one host can
// create a key) and renewed or taken over with an update at the revision
// seen (only one host can win it): a claim whose holder was killed goes
// stale and a waiter takes it over. The bucket lives as long as the run
// (the orchestrator deletes it once every task is done, DeleteRunStreams
// with the run, PurgeTasks empties it for a resumed run, and a week's
// TTL bounds what a run that never ends leaves behind).
//
// Its methods are those of the model cache's flights port (llm.Flights),
// which it satisfies without this package importing llm.
type Flights struct {
	kv     jetstream.KeyValue
	bucket string
	err    error // why kv is nil
}

// FlightsBucket is the run's claims bucket.
func (s Subjects) FlightsBucket() string { return "society-flights-" + token(s.Run) }

// flightsMaxBytes bounds a run's claims bucket: landed values are the
// run's distinct replies (a distribution of a few hundred bytes, a block
// of sample replies of a few KiB), far below it for the largest built-in
// scenarios. A full bucket refuses claims, and hosts then fetch for
// themselves: a cost, never a wrong answer.
const flightsMaxBytes = 1 << 30

// OpenFlights opens (or creates) the run's claims bucket. The claims only
// save calls: when the bucket cannot be opened, it warns on log (when not
// nil) and returns Flights whose every claim fails, and the hosts fetch
// for themselves.
func OpenFlights(ctx context.Context, js jetstream.JetStream, s Subjects, log *slog.Logger) *Flights {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.FlightsBucket(),
		Description: "society fetch claims of run " + s.Run,
		History:     1,
		Storage:     jetstream.FileStorage,
		MaxBytes:    flightsMaxBytes,
		TTL:         7 * 24 * time.Hour,
	})
	if err != nil {
		if log != nil {
			log.Warn("fetch claims unavailable; hosts asking the same prompt at once each pay for it", "run", s.Run, "err", err)
		}
		return &Flights{bucket: s.FlightsBucket(), err: err}
	}
	return &Flights{kv: kv, bucket: s.FlightsBucket()}
}

const (
	claimMark  = 'c'
	landedMark = 'v'
)

// Claim creates key's claim (won), or returns the value landed under it,
// or the revision of the claim another holds.
func (f *Flights) Claim(ctx context.Context, key string) (val []byte, landed, won bool, rev uint64, err error) {
	if f.kv == nil {
		return nil, false, false, 0, fmt.Errorf("kv %s: %w", f.bucket, f.err)
	}
	for range 3 {
		rev, err = f.kv.Create(ctx, key, []byte{claimMark})
		if err == nil {
			return nil, false, true, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, false, 0, fmt.Errorf("kv %s create %s: %w", f.bucket, key, err)
		}
		e, err := f.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // dropped meanwhile: claim it again
		}
		if err != nil {
			return nil, false, false, 0, fmt.Errorf("kv %s get %s: %w", f.bucket, key, err)
		}
		if v := e.Value(); len(v) > 0 && v[0] == landedMark {
			return v[1:], true, false, e.Revision(), nil
		}
		return nil, false, false, e.Revision(), nil
	}
	return nil, false, false, 0, nil // claimed and dropped again and again: wait
}

// Beat renews a claim held at rev.
func (f *Flights) Beat(ctx context.Context, key string, rev uint64) (uint64, error) {
	n, err := f.kv.Update(ctx, key, []byte{claimMark}, rev)
	if err != nil {
		return 0, fmt.Errorf("kv %s renew %s: %w", f.bucket, key, err)
	}
	return n, nil
}

// Steal takes over a claim still at rev.
func (f *Flights) Steal(ctx context.Context, key string, rev uint64) (bool, uint64, error) {
	n, err := f.kv.Update(ctx, key, []byte{claimMark}, rev)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, 0, nil // renewed, landed or taken by another meanwhile
	}
	if err != nil {
		return false, 0, fmt.Errorf("kv %s take over %s: %w", f.bucket, key, err)
	}
	return true, n, nil
}

// Land stores the value fetched under key.
func (f *Flights) Land(ctx context.Context, key string, val []byte) error {
	b := make([]byte, 0, len(val)+1)
	b = append(append(b, landedMark), val...)
	if _, err := f.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("kv %s land %s: %w", f.bucket, key, err)
	}
	return nil
}

// Drop removes a claim without a value.
func (f *Flights) Drop(ctx context.Context, key string) error {
	if err := f.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("kv %s drop %s: %w", f.bucket, key, err)
	}
	return nil
}

// Landed returns the value landed under key, if any.
func (f *Flights) Landed(ctx context.Context, key string) ([]byte, bool, error) {
	if f.kv == nil {
		return nil, false, nil
	}
	e, err := f.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv %s get %s: %w", f.bucket, key, err)
	}
	if v := e.Value(); len(v) > 0 && v[0] == landedMark {
		return v[1:], true, nil
	}
	return nil, false, nil
}

// deleteFlights removes the run's claims bucket, if any.
func deleteFlights(ctx context.Context, js jetstream.JetStream, s Subjects) error {
	if err := js.DeleteKeyValue(ctx, s.FlightsBucket()); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete %s: %w", s.FlightsBucket(), err)
	}
	return nil
}

// flightsStream is the stream under the run's claims bucket.
func (s Subjects) flightsStream() string { return "KV_" + s.FlightsBucket() }
