package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseCacheMode(t *testing.T) {
	for _, m := range []CacheMode{CacheReadWrite, CacheRead, CacheWrite, CacheOff} {
		got, err := ParseCacheMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseCacheMode(%q): got %v, %v; want %v", m.String(), got, err, m)
		}
	}
	for _, bad := range []string{"", "rw", "READ", "none"} {
		if _, err := ParseCacheMode(bad); err == nil || !strings.Contains(err.Error(), "read-write, read, write, off") {
			t.Errorf("ParseCacheMode(%q): got %v, want an error listing the modes", bad, err)
		}
	}
}

// TestCacheModes runs each mode over a store holding an old reply for
// key old: what the run reads, what it fetches, and what the store holds
// after it.
func TestCacheModes(t *testing.T) {
	ctx := context.Background()
	old, fresh := keyHash("old"), keyHash("fresh")
	for _, tc := range []struct {
		mode CacheMode
		// oldHit: the stored reply is used; stored: what the store
		// holds for old and fresh after the run ("" = nothing).
		oldHit               bool
		storedOld, storedNew string
	}{
		{CacheReadWrite, true, "stored", "fetched"},
		{CacheRead, true, "stored", ""},
		{CacheWrite, false, "fetched", "fetched"},
		{CacheOff, false, "stored", ""},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			store := NewMemStore()
			store.Put(ctx, old, []byte("stored"))
			c := NewCache(store, WithMode(tc.mode))
			var fetches atomic.Int64
			fetch := func(context.Context) ([]byte, error) { fetches.Add(1); return []byte("fetched"), nil }
			for _, key := range []string{old, fresh} {
				// Twice: the second lookup of a key is served by the
				// first's reply in every mode, stored or not.
				for range 2 {
					if _, _, err := c.Do(ctx, key, nil, fetch); err != nil {
						t.Fatal(err)
					}
				}
			}
			wantFetches := int64(1)
			if !tc.oldHit {
				wantFetches = 2
			}
			if got := fetches.Load(); got != wantFetches {
				t.Errorf("got %d fetches, want %d", got, wantFetches)
			}
			for key, want := range map[string]string{old: tc.storedOld, fresh: tc.storedNew} {
				v, ok, _ := store.Get(ctx, key)
				if got := map[bool]string{true: string(v)}[ok]; got != want {
					t.Errorf("store holds %q for %s, want %q", got, key[:6], want)
				}
			}
			if v, _, _ := c.Get(ctx, old); tc.oldHit && string(v) != "stored" || !tc.oldHit && string(v) != "fetched" {
				t.Errorf("Get(old): got %q", v)
			}
		})
	}
}

// A lookup asks the local store, then the shared one; a reply found only
// in the shared store is copied to the local one, and a fetched reply is
// written to both.
func TestCacheTiers(t *testing.T) {
	ctx := context.Background()
	local, shared := NewMemStore(), NewMemStore()
	inShared, inNeither := keyHash("shared"), keyHash("neither")
	shared.Put(ctx, inShared, []byte("from shared"))
	c := NewCache(local, WithShared(shared))
	var fetches atomic.Int64
	fetch := func(context.Context) ([]byte, error) { fetches.Add(1); return []byte("fetched"), nil }

	v, hit, err := c.Do(ctx, inShared, nil, fetch)
	if err != nil || !hit || string(v) != "from shared" || fetches.Load() != 0 {
		t.Fatalf("key in the shared store: got %q, hit %v, %v after %d fetches; want its value, no fetch", v, hit, err, fetches.Load())
	}
	if v, ok, _ := local.Get(ctx, inShared); !ok || string(v) != "from shared" {
		t.Errorf("local store after a shared hit: got %q, %v; want the value copied", v, ok)
	}
	if c.SharedHits() != 1 {
		t.Errorf("got %d shared hits, want 1", c.SharedHits())
	}
	if _, _, err := c.Do(ctx, inNeither, nil, fetch); err != nil || fetches.Load() != 1 {
		t.Fatalf("key in neither: %v after %d fetches, want 1 fetch", err, fetches.Load())
	}
	for name, s := range map[string]*MemStore{"local": local, "shared": shared} {
		if v, ok, _ := s.Get(ctx, inNeither); !ok || string(v) != "fetched" {
			t.Errorf("%s store after a fetch: got %q, %v; want the fetched value", name, v, ok)
		}
	}
	// Without a local store (a cache that is off on disk), the shared
	// tier still serves.
	c = NewCache(nil, WithShared(shared))
	if v, hit, err := c.Do(ctx, inShared, nil, fetch); err != nil || !hit || string(v) != "from shared" {
		t.Errorf("no local store: got %q, hit %v, %v; want the shared value", v, hit, err)
	}
}

// brokenStore fails every call, as a full bucket or a lost connection does.
type brokenStore struct{}

func (brokenStore) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("nats: connection closed")
}

func (brokenStore) Put(context.Context, string, []byte) error {
	return errors.New("nats: maximum bytes exceeded")
}

// A failing shared tier costs calls, never the run: the reply is fetched
// and kept locally, and the failures are counted.
func TestCacheSharedFailing(t *testing.T) {
	ctx := context.Background()
	local := NewMemStore()
	c := NewCache(local, WithShared(brokenStore{}), WithLogger(slog.New(slog.DiscardHandler)))
	key := keyHash("k")
	v, hit, err := c.Do(ctx, key, nil, func(context.Context) ([]byte, error) { return []byte("fetched"), nil })
	if err != nil || hit || string(v) != "fetched" {
		t.Fatalf("got %q, hit %v, %v; want the fetched value", v, hit, err)
	}
	if v, ok, _ := local.Get(ctx, key); !ok || string(v) != "fetched" {
		t.Errorf("local store: got %q, %v; want the fetched value", v, ok)
	}
	// Two lookups (before the flight and in it) and one write.
	if got := c.SharedErrors(); got != 3 {
		t.Errorf("got %d shared failures counted, want 3", got)
	}
}

// ctxStore holds one value and fails a lookup whose context has ended,
// as a JetStream bucket does.
type ctxStore struct{ MemStore }

func (s *ctxStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("kv get %s: %w", key, err)
	}
	return s.MemStore.Get(ctx, key)
}

// A shared lookup cut short by the caller's context is that context's
// error, not a miss: a fetch ahead stopped at its task's end took it for
// one and asked the model for replies the shared tier held (in a rerun
// served from the hosts' caches, 1 to 14 calls counted that never
// reached the server).
func TestCacheSharedCancelled(t *testing.T) {
	shared := &ctxStore{MemStore: *NewMemStore()}
	key := keyHash("k")
	shared.Put(context.Background(), key, []byte("stored"))
	c := NewCache(NewMemStore(), WithShared(shared), WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, ok, err := c.Get(ctx, key); !errors.Is(err, context.Canceled) || ok {
		t.Errorf("Get with its context ended: got %q, %v, %v; want context.Canceled", v, ok, err)
	}
	if got := c.SharedErrors(); got != 0 {
		t.Errorf("got %d shared failures counted, want 0: the store did not fail", got)
	}
	if v, ok, err := c.Get(context.Background(), key); err != nil || !ok || string(v) != "stored" {
		t.Errorf("Get: got %q, %v, %v; want the stored value", v, ok, err)
	}
}
