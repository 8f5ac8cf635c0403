package llm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// inFile reports whether the file itself (not the values waiting for
// their commit) holds key.
func inFile(t *testing.T, s *FileStore, key string) bool {
	t.Helper()
	k, _ := binaryKey(key)
	var found bool
	err := s.db.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(repliesBucket).Get(k) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// holdCommits makes the writer of s wait before each commit until release
// is called; entered holds a value once a commit starts waiting (one at a
// time: a commit that finds one there adds none).
func holdCommits(s *FileStore) (entered <-chan struct{}, release func()) {
	in, gate := make(chan struct{}, 1), make(chan struct{})
	s.db.w.beforeCommit = func() {
		// Never blocks: the tests wait for the first held commit only,
		// and a later one (the writer may split what was queued into
		// more commits than a test reads) must not wait for a reader.
		select {
		case in <- struct{}{}:
		default:
		}
		<-gate
	}
	var once sync.Once
	return in, func() { once.Do(func() { close(gate) }) }
}

// A value put is found by Get at once, while its commit waits; Flush
// waits for the commit, after which the file holds it.
func TestFileStorePutFoundBeforeCommit(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFileStore(t.TempDir(), FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := holdCommits(s)
	defer s.Close()
	defer release()
	key := keyHash("k")
	val := []byte(`{"value":3,"valid":true,"raw":"3"}`)
	if err := s.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	<-entered // the commit of key is held
	v, ok, err := s.Get(ctx, key)
	if err != nil || !ok || !bytes.Equal(v, val) {
		t.Fatalf("Get before the commit: got %q, %v, %v; want %s", v, ok, err, val)
	}
	v[0] = 'X' // the caller's copy
	if inFile(t, s, key) {
		t.Fatal("the file holds the value before its commit")
	}
	release()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !inFile(t, s, key) {
		t.Fatal("after Flush: the file lacks the value")
	}
	if v, ok, err := s.Get(ctx, key); err != nil || !ok || !bytes.Equal(v, val) {
		t.Fatalf("Get after the commit: got %q, %v, %v; want %s", v, ok, err, val)
	}
}

// Close commits every value put, including those queued while a commit
// was held, and a reopened store (a later run) finds them all.
func TestFileStoreCloseCommitsAll(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := holdCommits(s)
	if err := s.Put(ctx, keyHash("0"), entry(0)); err != nil {
		t.Fatal(err)
	}
	<-entered
	const n = 300
	for i := 1; i < n; i++ { // queued behind the held commit
		if err := s.Put(ctx, keyHash(fmt.Sprint(i)), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.db.w.beforeCommit = nil // read by the writer only after the gate opens
	release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		key := keyHash(fmt.Sprint(i))
		if !inFile(t, s, key) {
			t.Fatalf("value %d: not in the file after Close", i)
		}
	}
}

// When the writer holds MaxQueued values, Put waits: until ctx ends (then
// with its error, and the value is not stored), or until the commit frees
// room.
func TestFileStoreQueueBound(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFileStore(t.TempDir(), FileStoreOptions{MaxQueued: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := holdCommits(s)
	defer release()
	for i := range 2 {
		if err := s.Put(ctx, keyHash(fmt.Sprint(i)), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-entered
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(done, keyHash("2"), entry(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with the queue full and its context ended: got %v, want context.Canceled", err)
	}
	if _, ok, _ := s.Get(ctx, keyHash("2")); ok {
		t.Fatal("a Put that gave up stored its value")
	}
	third := make(chan error, 1)
	go func() { third <- s.Put(ctx, keyHash("2"), entry(2)) }()
	select {
	case err := <-third:
		t.Fatalf("Put with the queue full returned (%v) while the commit was held", err)
	default:
	}
	s.db.w.mu.Lock()
	held := len(s.db.w.pending)
	s.db.w.mu.Unlock()
	if held != 2 {
		t.Fatalf("got %d values held, want the bound, 2", held)
	}
	release()
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !inFile(t, s, keyHash(fmt.Sprint(i))) {
			t.Errorf("value %d: not in the file", i)
		}
	}
}

// A failed write (here the file may not grow: as a full disk) is logged
// when it happens, returned by Flush, later Puts and Close, and its values
// are missing, to be fetched again, never half there.
func TestFileStoreWriteError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	// Commits as soon as values wait: the test holds them itself.
	s, err := OpenFileStore(dir, FileStoreOptions{Logger: log, maxSize: 64 << 10, CommitEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	small := keyHash("small")
	if err := s.Put(ctx, small, entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Incompressible values, more than the file may hold, queued behind
	// a held commit: the write fails after the Puts have returned.
	entered, release := holdCommits(s)
	defer release()
	const n = 40
	for i := range n {
		big := make([]byte, 4096)
		rand.Read(big)
		if err := s.Put(ctx, keyHash(fmt.Sprint(i)), big); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if i == 0 {
			<-entered
		}
	}
	s.db.w.beforeCommit = nil
	release()
	err = s.Flush()
	if !errors.Is(err, bolterrors.ErrMaxSizeReached) {
		t.Fatalf("Flush: got %v, want the write's error", err)
	}
	if !bytes.Contains(logged.Bytes(), []byte("model cache write failed")) || !bytes.Contains(logged.Bytes(), []byte(s.Path())) {
		t.Errorf("got log %q, want the failed write, naming the file", logged.String())
	}
	if err := s.Put(ctx, keyHash("after"), entry(2)); !errors.Is(err, bolterrors.ErrMaxSizeReached) {
		t.Errorf("Put after a failed write: got %v, want its error", err)
	}
	lost := 0
	for i := range n {
		v, ok, err := s.Get(ctx, keyHash(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			lost++
		} else if len(v) != 4096 {
			t.Fatalf("value %d: got %d bytes, want 4096 or none", i, len(v))
		}
	}
	if lost == 0 {
		t.Error("every value found after the failed write")
	}
	if v, ok, err := s.Get(ctx, small); err != nil || !ok || !bytes.Equal(v, entry(1)) {
		t.Errorf("the value committed before: got %q, %v, %v", v, ok, err)
	}
	if err := s.Close(); !errors.Is(err, bolterrors.ErrMaxSizeReached) {
		t.Errorf("Close: got %v, want the write's error", err)
	}
}

// Many goroutines putting, getting and flushing at once (run with -race):
// every value is found by every goroutine once put, and by a later run.
func TestFileStoreConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{MaxQueued: 64})
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenFileStore(dir, FileStoreOptions{}) // shares the file
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		st := s
		if w%2 == 1 {
			st = other
		}
		wg.Go(func() {
			for j := range each {
				i := w*each + j
				key := keyHash(fmt.Sprint(i))
				if err := st.Put(ctx, key, entry(i)); err != nil {
					t.Error(err)
					return
				}
				// Found at once, by this store and the other.
				for _, g := range []*FileStore{s, other} {
					if v, ok, err := g.Get(ctx, key); err != nil || !ok || !bytes.Equal(v, entry(i)) {
						t.Errorf("value %d just put: got %q, %v, %v", i, v, ok, err)
						return
					}
				}
				if j%25 == 0 {
					if err := st.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Len(); got != writers*each || err != nil {
		t.Errorf("Len after reopening: got %d, %v; want %d", got, err, writers*each)
	}
}

// The writer commits what accumulates: the first value at once, then at
// most once per CommitEvery, sooner when half the queue is full.
func TestFileStoreCommitsEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, err := OpenFileStore(t.TempDir(), FileStoreOptions{CommitEvery: time.Second, MaxQueued: 6})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		put := func(i int) {
			t.Helper()
			if err := s.Put(ctx, keyHash(fmt.Sprint(i)), entry(i)); err != nil {
				t.Fatal(err)
			}
		}
		commits := func(want int64, held ...int) {
			t.Helper()
			synctest.Wait()
			if got := s.db.w.commits.Load(); got != want {
				t.Fatalf("got %d commits, want %d", got, want)
			}
			for _, i := range held {
				key := keyHash(fmt.Sprint(i))
				if inFile(t, s, key) {
					t.Fatalf("value %d: committed before its time", i)
				}
				if v, ok, err := s.Get(ctx, key); err != nil || !ok || !bytes.Equal(v, entry(i)) {
					t.Fatalf("value %d waiting for its commit: got %q, %v, %v", i, v, ok, err)
				}
			}
		}
		put(0)
		commits(1)
		put(1)
		put(2)
		commits(1, 1, 2)
		time.Sleep(time.Second - time.Nanosecond)
		commits(1, 1, 2)
		time.Sleep(time.Nanosecond)
		commits(2) // 1 and 2 together
		put(3)
		put(4)
		commits(2, 3, 4)
		put(5) // half of MaxQueued: no waiting for the second
		commits(3)
		for i := range 6 {
			if !inFile(t, s, keyHash(fmt.Sprint(i))) {
				t.Errorf("value %d: not in the file", i)
			}
		}
	})
}
