package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVStore keeps cached model replies in a JetStream key-value bucket, so
// that every agent host of a run (and every later run against the same
// NATS server) shares them: a reply paid for once is never paid for again.
//
// Its Get and Put have the signatures of the model cache's store port
// (llm.Store), which it satisfies without this package importing llm.
type KVStore struct {
	kv     jetstream.KeyValue
	bucket string
}

// NewKVStore creates, or opens and updates, the bucket. It is kept on disk
// (file storage), since the cache must outlive a run, and bounded by
// maxBytes (which must be positive): a full bucket makes Put fail loudly
// instead of growing until the server's disk is gone. One revision per key
// is kept, since a key's value never changes meaning.
func NewKVStore(ctx context.Context, js jetstream.JetStream, bucket string, maxBytes int64) (*KVStore, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("kv bucket %s: max bytes %d: must be positive", bucket, maxBytes)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "society model reply cache",
		History:     1,
		Storage:     jetstream.FileStorage,
		MaxBytes:    maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", bucket, err)
	}
	return &KVStore{kv: kv, bucket: bucket}, nil
}

// Get returns the value of key; a missing (or deleted) key is ok false with
// a nil error. Keys are limited to the characters JetStream allows
// ([-/_=.a-zA-Z0-9]); the cache's hex keys always are.
func (s *KVStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv %s get %s: %w", s.bucket, key, err)
	}
	return e.Value(), true, nil
}

// Put stores val under key.
func (s *KVStore) Put(ctx context.Context, key string, val []byte) error {
	if _, err := s.kv.Put(ctx, key, val); err != nil {
		return fmt.Errorf("kv %s put %s: %w", s.bucket, key, err)
	}
	return nil
}

// Each calls fn with every key of the bucket and its value, until fn
// returns an error, which Each returns. The values come in one stream (a
// watch of the bucket's current entries), not a request per key: the
// orchestrator copies a bucket of tens of thousands of replies at a run's
// end. Keys deleted while it reads are passed over.
func (s *KVStore) Each(ctx context.Context, fn func(key string, val []byte) error) error {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("kv %s watch: %w", s.bucket, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("kv %s watch: ended before the current entries", s.bucket)
			}
			if e == nil {
				return nil // every current entry has been passed
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}
