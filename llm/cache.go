package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
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
//
// It has up to two tiers: the local store (a FileStore on this machine)
// and a shared one (the JetStream KV bucket of a run's cluster, which
// every agent host reads): a lookup asks the local store, then the shared
// one, and the model is asked only when both miss; a fetched reply is
// written to both, and one found only in the shared store is copied to
// the local one. The mode (see CacheMode) decides which of that is done.
type Cache struct {
	// store is the tiers as one Store with the mode applied; the client
	// reads it directly for lookups that are not counted.
	store  *tiers
	file   *FileStore // the file OpenCache opened, closed by Close
	hits   atomic.Int64
	misses atomic.Int64
	flight group[string, stored]
}

// CacheOption is a setting of NewCache.
type CacheOption func(*tiers)

// WithShared adds s as the shared tier, looked up after the local store
// and written with it. The shared tier only saves calls: when it fails (a
// full bucket, a lost connection) the lookup counts as its miss and the
// write is skipped, with a warning on the first failure (see
// SharedErrors), and the run goes on with the local store.
func WithShared(s Store) CacheOption { return func(t *tiers) { t.shared = s } }

// WithLogger sets where the cache warns (slog.Default() unless set).
func WithLogger(l *slog.Logger) CacheOption { return func(t *tiers) { t.log = l } }

// WithMode sets the cache's mode (CacheReadWrite unless set).
func WithMode(m CacheMode) CacheOption { return func(t *tiers) { t.mode = m } }

// NewCache returns a cache over the local store s (nil for none).
func NewCache(s Store, opts ...CacheOption) *Cache {
	t := &tiers{local: s, run: NewMemStore(), written: map[string]struct{}{}}
	for _, o := range opts {
		o(t)
	}
	return &Cache{store: t}
}

// OpenCache opens a process's cache: the FileStore in dir as its local
// tier (no file at all in CacheOff mode), and shared, when not nil, as its
// shared tier. When another process holds dir's file (a second run or
// agent host on the machine), this one keeps its replies in memory
// instead, warns on log (nil: slog.Default()), and shares them through
// the shared tier if any; more adds options (WithFlights). In CacheRead
// mode the file is opened read-only and nothing is created: a missing
// directory or file reads as empty.
// Errors are those of OpenFileStore other than ErrStoreLocked. Close
// releases the file.
func OpenCache(dir string, mode CacheMode, shared Store, log *slog.Logger, more ...CacheOption) (*Cache, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := append([]CacheOption{WithMode(mode), WithShared(shared), WithLogger(log)}, more...)
	if mode == CacheOff {
		return NewCache(nil, opts...), nil
	}
	fs, err := OpenFileStore(dir, FileStoreOptions{Logger: log, ReadOnly: mode == CacheRead})
	if mode == CacheRead && errors.Is(err, iofs.ErrNotExist) {
		return NewCache(nil, opts...), nil
	}
	if errors.Is(err, ErrStoreLocked) {
		log.Warn("model cache in use by another process; this process keeps its replies in memory", "err", err)
		return NewCache(NewMemStore(), opts...), nil
	}
	if err != nil {
		return nil, err
	}
	c := NewCache(fs, opts...)
	c.file = fs
	return c, nil
}

// Close commits the replies put to the file OpenCache opened, if any, and
// closes it, returning the first write of the file that failed (see
// FileStore.Close); the cache must not be used after.
func (c *Cache) Close() error {
	if c.file == nil {
		return nil
	}
	return c.file.Close()
}

// Keep writes val under key to the local store alone, when the mode
// writes the stores and the local store lacks key: how a run's
// orchestrator keeps on its machine the replies its agent hosts put in
// the shared tier, for later runs there. It reports whether it wrote.
func (c *Cache) Keep(ctx context.Context, key string, val []byte) (bool, error) {
	t := c.store
	if t.local == nil || (t.mode != CacheReadWrite && t.mode != CacheWrite) {
		return false, nil
	}
	if _, ok, err := t.local.Get(ctx, key); err != nil || ok {
		return false, err
	}
	return true, t.local.Put(ctx, key, val)
}

// Mode is the cache's mode.
func (c *Cache) Mode() CacheMode { return c.store.mode }

// SharedHits is the number of lookups the local store missed and the
// shared store answered.
func (c *Cache) SharedHits() int64 { return c.store.sharedHits.Load() }

// SharedErrors is the number of lookups and writes of the shared store
// that failed (and were passed over).
func (c *Cache) SharedErrors() int64 { return c.store.sharedErrs.Load() }

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
		// A reply another process of the run fetched, or read from
		// the store first, is an answer reused, not a call saved.
		if ok && c.store.usedElsewhere(ctx, key, v) {
			return v, false, nil
		}
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
			return stored{v, ok && !c.store.usedElsewhere(ctx, key, v)}, err
		}
		// Another process of the run may be fetching it too: one of
		// them asks the model (shareFetch).
		v, _, err := c.store.shareFetch(ctx, key, fetch)
		if err != nil {
			return stored{}, err
		}
		return stored{val: v}, c.Put(ctx, key, v)
	})
	return r.val, r.hit, err
}

// Elsewhere reports whether the value of key was fetched, or first read
// from a store, in this run by another process sharing the cache's
// flights (WithFlights): its answers here are answers reused, neither a
// call of this process nor one saved.
func (c *Cache) Elsewhere(key string) bool { return c.store.isElsewhere(key) }

// ShareFetch fetches the value of key once among the processes sharing
// the cache's flights (see Flights), without storing it: elsewhere says
// another process fetched it. Without flights it calls fetch.
func (c *Cache) ShareFetch(ctx context.Context, key string, fetch func(ctx context.Context) ([]byte, error)) (val []byte, elsewhere bool, err error) {
	return c.store.shareFetch(ctx, key, fetch)
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
type group[K comparable, T any] struct {
	mu    sync.Mutex
	calls map[K]*call[T]
	// waiting counts the callers waiting for another's call, so that a
	// test can tell when every caller has joined a call in flight.
	waiting atomic.Int64
	// spare keeps calls nobody joined for reuse: one allocation less
	// per sample-mode Ask.
	spare sync.Pool
}

// call is a call in flight. done is made by the first caller that waits
// for it (under group.mu), so that a call nobody joins, as almost every
// sample-mode Ask is, costs no channel; the call's owner closes it, when
// made, once val and err are set.
type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (g *group[K, T]) do(ctx context.Context, key K, fn func() (T, error)) (T, error) {
	for {
		g.mu.Lock()
		if g.calls == nil {
			g.calls = map[K]*call[T]{}
		}
		if c, ok := g.calls[key]; ok {
			if c.done == nil {
				c.done = make(chan struct{})
			}
			done := c.done
			g.waiting.Add(1)
			g.mu.Unlock()
			select {
			case <-done:
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
		c, _ := g.spare.Get().(*call[T])
		if c == nil {
			c = &call[T]{}
		}
		g.calls[key] = c
		g.mu.Unlock()

		var (
			val T
			err error
		)
		func() {
			defer func() {
				g.mu.Lock()
				delete(g.calls, key)
				done := c.done
				g.mu.Unlock()
				if done != nil {
					close(done)
					return
				}
				// Nobody found the call while it was in calls (a
				// waiter makes done under g.mu), and nobody can now:
				// it is this caller's alone to reuse.
				*c = call[T]{}
				g.spare.Put(c)
			}()
			val, err = fn()
			c.val, c.err = val, err
		}()
		return val, err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// CacheMode says what a run does with the persistent stores (the local
// and shared tiers) of its cache.
type CacheMode int

const (
	// CacheReadWrite uses stored replies and stores new ones: the
	// default, with which a rerun costs no model calls.
	CacheReadWrite CacheMode = iota
	// CacheRead uses stored replies but never writes the stores: replies
	// fetched by the run are kept in memory for the run only.
	CacheRead
	// CacheWrite refreshes the stores: replies stored before the run are
	// never used; every reply the run needs is fetched and stored,
	// replacing the old one (and then used for the rest of the run).
	CacheWrite
	// CacheOff neither reads nor writes the stores: replies are kept in
	// memory for the run only.
	CacheOff
)

var cacheModes = [...]string{CacheReadWrite: "read-write", CacheRead: "read", CacheWrite: "write", CacheOff: "off"}

// String is the mode's name, as ParseCacheMode reads it.
func (m CacheMode) String() string {
	if m < 0 || int(m) >= len(cacheModes) {
		return "CacheMode(" + strconv.Itoa(int(m)) + ")"
	}
	return cacheModes[m]
}

// ParseCacheMode reads a mode name: read-write, read, write or off.
func ParseCacheMode(s string) (CacheMode, error) {
	for m, name := range cacheModes {
		if s == name {
			return CacheMode(m), nil
		}
	}
	return 0, fmt.Errorf("cache mode %q: want one of read-write, read, write, off", s)
}

// tiers is a cache's stores seen as one Store, with the mode applied.
type tiers struct {
	local, shared Store // either may be nil
	mode          CacheMode
	sharedHits    atomic.Int64
	sharedErrs    atomic.Int64
	log           *slog.Logger
	// run holds the replies of this run in modes that do not write
	// them to the stores (read, off), so that a reply is fetched once
	// per run all the same.
	run *MemStore
	// written holds the keys this run stored in write mode: those, and
	// only those, are read back from the stores. About 100 bytes per
	// reply written.
	mu      sync.Mutex
	written map[string]struct{}
	// flights share fetches with the run's other processes (nil: none);
	// elsewhere holds the keys whose values they fetched, own those this
	// process fetched and landed for them.
	flights        Flights
	elsewhere, own sync.Map
	firstUse       group[string, bool]
}

var _ Store = (*tiers)(nil)

func (t *tiers) Get(ctx context.Context, key string) ([]byte, bool, error) {
	switch t.mode {
	case CacheOff:
		return t.run.Get(ctx, key)
	case CacheRead:
		if v, ok, _ := t.run.Get(ctx, key); ok {
			return v, true, nil
		}
		return t.lookup(ctx, key, false)
	case CacheWrite:
		t.mu.Lock()
		_, ok := t.written[key]
		t.mu.Unlock()
		if !ok {
			return nil, false, nil
		}
		return t.lookup(ctx, key, false)
	}
	return t.lookup(ctx, key, true)
}

// lookup asks the local store, then the shared one; promote writes a value
// found only in the shared store to the local one.
func (t *tiers) lookup(ctx context.Context, key string, promote bool) ([]byte, bool, error) {
	if t.local != nil {
		v, ok, err := t.local.Get(ctx, key)
		if err != nil || ok {
			return v, ok, err
		}
	}
	if t.shared == nil {
		return nil, false, nil
	}
	v, ok, err := t.shared.Get(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			// Not a miss: the caller gave up. Taken for one, a fetch
			// ahead stopped at its task's end went on to ask the model
			// for replies the shared tier held (counted as calls,
			// never sent).
			return nil, false, ctx.Err()
		}
		t.sharedFailed(ctx, "get", err)
		return nil, false, nil
	}
	if !ok {
		return nil, false, nil
	}
	t.sharedHits.Add(1)
	if promote && t.local != nil {
		if err := t.local.Put(ctx, key, v); err != nil {
			return nil, false, err
		}
	}
	return v, true, nil
}

func (t *tiers) Put(ctx context.Context, key string, val []byte) error {
	switch t.mode {
	case CacheOff, CacheRead:
		return t.run.Put(ctx, key, val)
	}
	if t.local != nil {
		if err := t.local.Put(ctx, key, val); err != nil {
			return err
		}
	}
	if t.shared != nil {
		if err := t.shared.Put(ctx, key, val); err != nil {
			t.sharedFailed(ctx, "put", err)
		}
	}
	if t.mode == CacheWrite {
		t.mu.Lock()
		t.written[key] = struct{}{}
		t.mu.Unlock()
	}
	return nil
}

// sharedFailed counts a failure of the shared store, and warns of the
// first. A failure because the caller's context ended is not the store's.
func (t *tiers) sharedFailed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	if t.sharedErrs.Add(1) == 1 {
		l := t.log
		if l == nil {
			l = slog.Default()
		}
		l.Warn("shared model cache failed; going on without it for this reply (further failures are counted, not logged)", "op", op, "err", err)
	}
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

// keyHash is the content address of a cache entry: SHA-256 over the parts,
// each length-prefixed so that no two different part lists collide.
func keyHash(parts ...string) string {
	// The parts (a prompt is a few KiB) are laid out in a reused buffer
	// and hashed at once: hashing them one by one copied each into a new
	// byte slice, 5 µs of a sample-mode call's client CPU.
	bp := keyBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	if cap(b) <= maxKeyBuf {
		*bp = b
		keyBufs.Put(bp)
	}
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// keyBufs holds keyHash's buffers; one grown past maxKeyBuf (a prompt of
// unusual length) is left to the collector.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxKeyBuf = 64 << 10
