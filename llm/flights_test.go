package llm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// memFlights is Flights in memory, as bus.Flights keeps them in a
// JetStream bucket: one entry per key, a claim or a landed value, and a
// revision that changes at every write.
type memFlights struct {
	mu      sync.Mutex
	rev     uint64
	entries map[string]*flightEntry
}

type flightEntry struct {
	rev    uint64
	landed bool
	val    []byte
}

var errWrongRev = errors.New("wrong revision")

func newMemFlights() *memFlights { return &memFlights{entries: map[string]*flightEntry{}} }

func (f *memFlights) write(key string, landed bool, val []byte) uint64 {
	f.rev++
	f.entries[key] = &flightEntry{rev: f.rev, landed: landed, val: val}
	return f.rev
}

func (f *memFlights) Claim(_ context.Context, key string) ([]byte, bool, bool, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[key]
	switch {
	case !ok:
		return nil, false, true, f.write(key, false, nil), nil
	case e.landed:
		return e.val, true, false, e.rev, nil
	}
	return nil, false, false, e.rev, nil
}

func (f *memFlights) Beat(_ context.Context, key string, rev uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[key]; !ok || e.rev != rev {
		return 0, errWrongRev
	}
	return f.write(key, false, nil), nil
}

func (f *memFlights) Steal(ctx context.Context, key string, rev uint64) (bool, uint64, error) {
	n, err := f.Beat(ctx, key, rev)
	return err == nil, n, nil
}

func (f *memFlights) Land(_ context.Context, key string, val []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.write(key, true, val)
	return nil
}

func (f *memFlights) Drop(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entries, key)
	return nil
}

func (f *memFlights) Landed(_ context.Context, key string) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[key]; ok && e.landed {
		return e.val, true, nil
	}
	return nil, false, nil
}

// TestCacheFlightsFetchOnce: two processes (two caches over one shared
// store and one run's flights) missing the same key at once make one
// fetch; the other process gets the value as fetched elsewhere, neither
// a hit nor a fetch of its own, and so does a lookup of it later from
// the shared store; the process that fetched it never counts it
// elsewhere.
func TestCacheFlightsFetchOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		shared, fl := NewMemStore(), newMemFlights()
		a := NewCache(NewMemStore(), WithShared(shared), WithFlights(fl))
		b := NewCache(NewMemStore(), WithShared(shared), WithFlights(fl))
		var fetches atomic.Int64
		release := make(chan struct{})
		fetch := func(ctx context.Context) ([]byte, error) {
			fetches.Add(1)
			<-release // the model is slow: the other process asks meanwhile
			return []byte("reply"), nil
		}
		type got struct {
			val []byte
			hit bool
			err error
		}
		res := make([]got, 2)
		var wg sync.WaitGroup
		for i, c := range []*Cache{a, b} {
			wg.Go(func() {
				v, hit, err := c.Do(ctx, "k", nil, fetch)
				res[i] = got{v, hit, err}
			})
		}
		synctest.Wait() // one fetches, the other waits on its claim
		close(release)
		wg.Wait()
		if n := fetches.Load(); n != 1 {
			t.Fatalf("got %d fetches, want 1", n)
		}
		for i, r := range res {
			if r.err != nil || r.hit || string(r.val) != "reply" {
				t.Errorf("process %d: got %q, hit %v, err %v; want the reply, no hit", i, r.val, r.hit, r.err)
			}
		}
		if a.Elsewhere("k") == b.Elsewhere("k") {
			t.Errorf("elsewhere: a %v, b %v; want exactly one process to have it from the other", a.Elsewhere("k"), b.Elsewhere("k"))
		}
		// A third process of the run finds it in the shared store: the
		// run's reply, not a call saved.
		c := NewCache(NewMemStore(), WithShared(shared), WithFlights(fl))
		if _, hit, err := c.Do(ctx, "k", nil, fetch); err != nil || hit || !c.Elsewhere("k") {
			t.Errorf("third process: got hit %v, elsewhere %v, err %v; want the run's reply from elsewhere", hit, c.Elsewhere("k"), err)
		}
		// The fetching process reads its own reply back: never elsewhere.
		fetcher := a
		if a.Elsewhere("k") {
			fetcher = b
		}
		if _, _, err := fetcher.Do(ctx, "k", nil, fetch); err != nil || fetcher.Elsewhere("k") {
			t.Errorf("the fetching process: elsewhere %v, err %v; want its own", fetcher.Elsewhere("k"), err)
		}
	})
}

// TestCacheFlightsSavedOnce: a reply both processes of a run find in
// their stores (a rerun) is one call saved, by the first to use it; the
// other's use is an answer reused.
func TestCacheFlightsSavedOnce(t *testing.T) {
	ctx := t.Context()
	shared, fl := NewMemStore(), newMemFlights()
	if err := shared.Put(ctx, "k", []byte("reply")); err != nil {
		t.Fatal(err)
	}
	fetch := func(context.Context) ([]byte, error) { t.Error("fetched a stored reply"); return nil, nil }
	hits := 0
	for i := range 2 {
		c := NewCache(NewMemStore(), WithShared(shared), WithFlights(fl))
		_, hit, err := c.Do(ctx, "k", nil, fetch)
		if err != nil {
			t.Fatal(err)
		}
		if hit {
			hits++
		}
		if c.Elsewhere("k") != (i == 1) {
			t.Errorf("process %d: elsewhere %v, want %v", i, c.Elsewhere("k"), i == 1)
		}
	}
	if hits != 1 {
		t.Errorf("got %d calls saved over two processes, want 1", hits)
	}
}

// slowClaim holds its first claim's answer, once made, until release is
// closed: another use of the key meanwhile finds the claim held.
type slowClaim struct {
	*memFlights
	held    atomic.Bool
	release chan struct{}
}

func (f *slowClaim) Claim(ctx context.Context, key string) ([]byte, bool, bool, uint64, error) {
	v, landed, won, rev, err := f.memFlights.Claim(ctx, key)
	if f.held.CompareAndSwap(false, true) {
		<-f.release
	}
	return v, landed, won, rev, err
}

// TestCacheFlightsOwnUseAtOnce: two uses of a stored reply at once in one
// process (an agent's question and the fetch ahead) share the process's
// claim: its own claim never makes the reply another process's, which
// would leave the run's call saved uncounted.
func TestCacheFlightsOwnUseAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		shared := NewMemStore()
		if err := shared.Put(ctx, "k", []byte("reply")); err != nil {
			t.Fatal(err)
		}
		fl := &slowClaim{memFlights: newMemFlights(), release: make(chan struct{})}
		c := NewCache(NewMemStore(), WithShared(shared), WithFlights(fl))
		fetch := func(context.Context) ([]byte, error) { t.Error("fetched a stored reply"); return nil, nil }
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, hit, err := c.Do(ctx, "k", nil, fetch); err != nil || !hit {
					t.Errorf("got hit %v, err %v; want a hit", hit, err)
				}
			})
			synctest.Wait()
		}
		close(fl.release)
		wg.Wait()
		if c.Elsewhere("k") {
			t.Error("the process's own claim made its reply another's")
		}
	})
}

// TestCacheFlightsTakeOver: a claim whose holder was killed (it never
// renews nor lands it) is taken over once it has gone unrenewed for
// flightStale, and the waiter fetches the reply itself; a holder that
// renews its claim keeps it however long its fetch takes.
func TestCacheFlightsTakeOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		fl := newMemFlights()
		if _, _, won, _, _ := fl.Claim(ctx, "dead"); !won {
			t.Fatal("setup claim lost")
		}
		c := NewCache(NewMemStore(), WithFlights(fl))
		start := time.Now()
		v, hit, err := c.Do(ctx, "dead", nil, func(context.Context) ([]byte, error) { return []byte("mine"), nil })
		if err != nil || hit || string(v) != "mine" {
			t.Fatalf("got %q, %v, %v; want the waiter's own fetch", v, hit, err)
		}
		if waited := time.Since(start); waited < flightStale || waited > flightStale+2*flightPollMax {
			t.Errorf("took over after %v, want about %v", waited, flightStale)
		}
		if got, ok, _ := fl.Landed(ctx, "dead"); !ok || string(got) != "mine" {
			t.Errorf("landed %q, %v; want the taken-over fetch landed", got, ok)
		}

		// A live holder whose fetch takes several times flightStale.
		holder := NewCache(NewMemStore(), WithFlights(fl))
		waiter := NewCache(NewMemStore(), WithFlights(fl))
		var fetches atomic.Int64
		slow := func(context.Context) ([]byte, error) {
			fetches.Add(1)
			time.Sleep(3 * flightStale)
			return []byte("slow"), nil
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, _, err := holder.Do(ctx, "slow", nil, slow); err != nil {
				t.Error(err)
			}
		}()
		synctest.Wait()
		if v, _, err := waiter.Do(ctx, "slow", nil, slow); err != nil || string(v) != "slow" {
			t.Errorf("waiter: got %q, %v; want the holder's reply", v, err)
		}
		<-done
		if n := fetches.Load(); n != 1 {
			t.Errorf("got %d fetches of a renewed claim, want 1", n)
		}
	})
}
