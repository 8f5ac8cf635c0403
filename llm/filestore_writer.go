package llm

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// defaultMaxQueued is the number of records a file's writer holds before
// Puts wait for its commit: about 2 MB of the short replies of sample
// mode.
const defaultMaxQueued = 8192

// defaultCommitEvery is how long the writer lets records accumulate after
// a commit starts before the next: what a crash can lose.
const defaultCommitEvery = time.Second

// writer commits the records put into one database behind the Puts: a
// Put queues its record and returns, and one goroutine commits what has
// accumulated in one transaction, keys sorted. Keys are hashes, so each
// record of a commit dirties a leaf page of its own, and each commit
// writes its branch pages, free list and header and syncs the file twice:
// a reply's share of that falls as more replies share a commit. Waiting
// for its own commit made a Put pay for the commit of a batch that the
// load of the machine kept small; here no caller waits, and the writer
// commits at most once per commitEvery (200 ms), at once when half the
// queue is full or a Flush or Close waits.
//
// A record is in pending from its Put until its commit has ended, so
// that a Get of this process finds it in pending or else in the file. A
// crash loses the records not yet committed (they are fetched again),
// never a part of one: each commit is a bbolt transaction.
type writer struct {
	db   *bolt.DB
	path string
	log  *slog.Logger

	// slots holds a token per record queued or in the commit running:
	// a Put waits for a free one, which bounds the memory held.
	slots chan struct{}
	// kick wakes the writer goroutine (buffered: a wake is never lost).
	kick chan struct{}
	done chan struct{}
	// beforeCommit, when set (by tests), is called before each commit.
	beforeCommit func()
	every        time.Duration

	// commits counts the commits, for tests.
	commits atomic.Int64

	mu   sync.Mutex
	cond sync.Cond // broadcast at the end of each commit
	// pending is the latest record of each key not yet committed, by
	// binary key.
	pending map[string]*queuedRecord
	// queue is the records waiting for the next commit, in Put order.
	queue []*queuedRecord
	// queued and committed are sequence numbers: of the last record
	// queued, and of the last record whose commit has ended.
	queued, committed uint64
	// err is the first failed commit.
	err     error
	closing bool
	// flushing counts the Flushes waiting: the writer commits at once.
	flushing int
}

type queuedRecord struct {
	key string
	rec []byte
	seq uint64
}

func newWriter(db *bolt.DB, path string, log *slog.Logger, maxQueued int, every time.Duration) *writer {
	if maxQueued <= 0 {
		maxQueued = defaultMaxQueued
	}
	if every <= 0 {
		every = defaultCommitEvery
	}
	w := &writer{
		db: db, path: path, log: log, every: every,
		slots:   make(chan struct{}, maxQueued),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: map[string]*queuedRecord{},
	}
	w.cond.L = &w.mu
	go w.run()
	return w
}

// put queues rec under key, waiting while the queue is full (or until ctx
// ends). It fails once a commit has failed: the file is not being
// written, and the error says why.
func (w *writer) put(ctx context.Context, key []byte, rec []byte) error {
	select {
	case w.slots <- struct{}{}:
	default:
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	if w.err != nil || w.closing {
		err := w.err
		if err == nil {
			err = errStoreClosed
		}
		w.mu.Unlock()
		<-w.slots
		return err
	}
	w.queued++
	q := &queuedRecord{key: string(key), rec: rec, seq: w.queued}
	w.pending[q.key] = q
	w.queue = append(w.queue, q)
	// The writer needs waking when the queue was empty (it waits for
	// records) or is half full (it waits for the interval no more).
	wake := len(w.queue) == 1 || len(w.queue) == w.half()
	w.mu.Unlock()
	if wake {
		w.wake()
	}
	return nil
}

func (w *writer) half() int { return max(cap(w.slots)/2, 1) }

func (w *writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// get returns the record of key not yet committed, if any.
func (w *writer) get(key []byte) ([]byte, bool) {
	w.mu.Lock()
	q, ok := w.pending[string(key)]
	w.mu.Unlock()
	if !ok {
		return nil, false
	}
	return q.rec, true
}

// flush waits until every record queued before the call is committed,
// and returns the first write error of the file, if any.
func (w *writer) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.queued
	if w.committed < target {
		w.flushing++
		w.wake()
		for w.committed < target {
			w.cond.Wait()
		}
		w.flushing--
	}
	return w.err
}

// close commits what is queued, ends the writer goroutine, and returns
// the first write error of the file, if any.
func (w *writer) close() error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.wake()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var last time.Time // when the previous commit started
	for {
		w.mu.Lock()
		n, closing := len(w.queue), w.closing
		now := closing || w.flushing > 0 || n >= w.half()
		w.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			<-w.kick
			continue
		}
		if wait := w.every - time.Since(last); !now && wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-w.kick:
				timer.Stop()
				continue
			}
		}
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		last = time.Now()
		w.commit(batch)
	}
}

// commit writes batch in one transaction, keys in order (a later Put of
// a key after an earlier one), then takes its records out of pending.
func (w *writer) commit(batch []*queuedRecord) {
	last := batch[len(batch)-1].seq
	slices.SortStableFunc(batch, func(a, b *queuedRecord) int { return strings.Compare(a.key, b.key) })
	if w.beforeCommit != nil {
		w.beforeCommit()
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(repliesBucket)
		// In key order, each leaf is found and changed once, its
		// records together, and the cursor moves forward.
		for _, q := range batch {
			if err := b.Put([]byte(q.key), q.rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("cache file %s: write %d replies: %w", w.path, len(batch), err)
		// At once: the Puts that queued these have returned.
		w.log.Error("model cache write failed; its replies will be fetched again by a later run, and this run stores no more", "err", err)
	}
	w.commits.Add(1)
	w.mu.Lock()
	for _, q := range batch {
		if w.pending[q.key] == q {
			delete(w.pending, q.key)
		}
	}
	w.committed = last
	if err != nil && w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	for range batch {
		<-w.slots
	}
}
