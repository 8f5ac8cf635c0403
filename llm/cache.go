package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// Store keeps cached replies by key. Keys are lowercase hex strings, safe as
// file names and as JetStream KV keys. Get reports a missing key with
// ok false and a nil error. Implementations must be safe for concurrent use.
type Store interface {
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	Put(ctx context.Context, key string, val []byte) error
}

// Cache is the content-addressed reply cache: a model is never paid twice
// for the same answer. Keys are built by the client from everything that
// changes a model's output (see cacheKey); values are the parsed replies as
// JSON. Concurrent misses of one key share one fetch.
type Cache struct {
	store  Store
	hits   atomic.Int64
	misses atomic.Int64
	flight group[stored]
}

// NewCache returns a cache over s.
func NewCache(s Store) *Cache { return &Cache{store: s} }

// Hits is the number of lookups answered by the store.
func (c *Cache) Hits() int64 { return c.hits.Load() }

// Misses is the number of lookups the store could not answer.
func (c *Cache) Misses() int64 { return c.misses.Load() }

// Get looks key up and counts the hit or miss.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := c.store.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("cache get %s: %w", key, err)
	}
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok, nil
}

// Put stores val under key.
func (c *Cache) Put(ctx context.Context, key string, val []byte) error {
	if err := c.store.Put(ctx, key, val); err != nil {
		return fmt.Errorf("cache put %s: %w", key, err)
	}
	return nil
}

// Do returns the value of key, calling fetch and storing its result on a
// miss; hit reports that the value came from the store rather than a fetch
// (a caller that waited for another's fetch did not hit). Concurrent
// callers missing the same key wait for one fetch. valid
// decides whether a stored value can be used (a value this version cannot
// decode, or a file torn by a crash, is fetched again); nil accepts all.
func (c *Cache) Do(ctx context.Context, key string, valid func([]byte) bool, fetch func(ctx context.Context) ([]byte, error)) (val []byte, hit bool, err error) {
	lookup := func() ([]byte, bool, error) {
		v, ok, err := c.store.Get(ctx, key)
		if err != nil {
			return nil, false, fmt.Errorf("cache get %s: %w", key, err)
		}
		return v, ok && (valid == nil || valid(v)), nil
	}
	if v, ok, err := lookup(); err != nil || ok {
		if ok {
			c.hits.Add(1)
		}
		return v, ok, err
	}
	c.misses.Add(1)
	r, err := c.flight.do(ctx, key, func() (stored, error) {
		// A fetch of this key may have finished between the lookup and
		// this flight: look again rather than pay twice.
		if v, ok, err := lookup(); err != nil || ok {
			return stored{v, ok}, err
		}
		v, err := fetch(ctx)
		if err != nil {
			return stored{}, err
		}
		return stored{val: v}, c.Put(ctx, key, v)
	})
	return r.val, r.hit, err
}

// stored is a value with whether it came from the store.
type stored struct {
	val []byte
	hit bool
}

// group runs one call per key at a time; callers of a key in flight wait
// for its result. The call runs on the first caller's goroutine with that
// caller's context: when it fails because that context ended, waiters whose
// own context is still live run the call again themselves.
type group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
	// waiting counts the callers waiting for another's call, so that a
	// test can tell when every caller has joined a call in flight.
	waiting atomic.Int64
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (g *group[T]) do(ctx context.Context, key string, fn func() (T, error)) (T, error) {
	for {
		g.mu.Lock()
		if g.calls == nil {
			g.calls = map[string]*call[T]{}
		}
		if c, ok := g.calls[key]; ok {
			g.waiting.Add(1)
			g.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				g.waiting.Add(-1)
				var zero T
				return zero, ctx.Err()
			}
			g.waiting.Add(-1)
			if c.err != nil && isContextErr(c.err) && ctx.Err() == nil {
				continue
			}
			return c.val, c.err
		}
		c := &call[T]{done: make(chan struct{})}
		g.calls[key] = c
		g.mu.Unlock()

		func() {
			defer func() {
				g.mu.Lock()
				delete(g.calls, key)
				g.mu.Unlock()
				close(c.done)
			}()
			c.val, c.err = fn()
		}()
		return c.val, c.err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// MemStore is a Store in memory, for one process and one run.
type MemStore struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

var _ Store = (*MemStore)(nil)

// Get returns a copy of the value of key.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), v...), true, nil
}

// Put stores a copy of val.
func (s *MemStore) Put(_ context.Context, key string, val []byte) error {
	s.mu.Lock()
	s.m[key] = append([]byte(nil), val...)
	s.mu.Unlock()
	return nil
}

// Len is the number of keys held.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// DirStore is a Store with one file per key under dir/xx/key, where xx is
// the key's first two characters (so that no directory grows to millions of
// entries). Files are written to a temporary name and renamed, so a reader
// never sees half a value; a value torn by a machine crash fails to decode
// and is fetched again by the cache. It outlives runs and processes.
type DirStore struct {
	dir string
}

var _ Store = (*DirStore)(nil)

// NewDirStore opens (creating it if needed) a store in dir.
func NewDirStore(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("cache dir: empty path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	return &DirStore{dir: dir}, nil
}

// DefaultCacheDir is where replies are cached unless the user says
// otherwise: society/cache under the user's cache directory
// ($XDG_CACHE_HOME or ~/.cache on Linux), so that it outlives any one run
// and results directory.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default cache dir: %w", err)
	}
	return filepath.Join(d, "society", "cache"), nil
}

// Dir is the store's directory.
func (s *DirStore) Dir() string { return s.dir }

func (s *DirStore) path(key string) (string, error) {
	if len(key) < 3 {
		return "", fmt.Errorf("cache key %q: too short", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '=') {
			return "", fmt.Errorf("cache key %q: character %s not allowed", key, strconv.QuoteRune(rune(c)))
		}
	}
	return filepath.Join(s.dir, key[:2], key), nil
}

// Get reads the value of key.
func (s *DirStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, false, err
	}
	v, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// Put writes the value of key atomically.
func (s *DirStore) Put(_ context.Context, key string, val []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(val)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// keyHash is the content address of a cache entry: SHA-256 over the parts,
// each length-prefixed so that no two different part lists collide.
func keyHash(parts ...string) string {
	h := sha256.New()
	var n [20]byte
	for _, p := range parts {
		h.Write(strconv.AppendInt(n[:0], int64(len(p)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}
