package bus

import (
	"context"
	"log/slog"
	"sync"
)

// runFollower follows the run registry for a role that works on every
// running run (the agent host, the analysis service): it starts the
// role's work on a run the first time the registry shows it running or
// complete, and cancels it once the run is over (done, failed or
// removed).
type runFollower struct {
	reg *Registry
	log *slog.Logger
	// only, when not "", is the one run followed.
	only string
	// bad is told of every record that could not be read.
	bad func()
	// work does one run's work, in a goroutine of its own, until ctx is
	// done; complete is closed once the registry says the run is
	// complete.
	work func(ctx context.Context, rec RunRecord, complete <-chan struct{})
	// over, when set, is told of a followed run that is over.
	over func(rec RunRecord)

	mu   sync.Mutex
	runs map[string]*followedRun
	wg   sync.WaitGroup
}

// followedRun is one run a role works on.
type followedRun struct {
	cancel   context.CancelFunc
	once     sync.Once
	complete chan struct{} // closed when the registry says the run is complete
}

func (r *followedRun) markComplete() { r.once.Do(func() { close(r.complete) }) }

// serve follows the registry until ctx is done, then cancels every run's
// work and waits for it.
func (f *runFollower) serve(ctx context.Context) error {
	f.runs = map[string]*followedRun{}
	err := f.reg.Watch(ctx, func(rec RunRecord) { f.update(ctx, rec) },
		func(err error) {
			f.bad()
			f.log.Warn("unreadable run record", "err", err)
		})
	f.mu.Lock()
	for _, r := range f.runs {
		r.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

// update starts the work on a run that is running and cancels it on one
// that is over.
func (f *runFollower) update(ctx context.Context, rec RunRecord) {
	if f.only != "" && rec.ID != RunID(f.only) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.runs[rec.ID]
	active := rec.State == RunRunning || rec.State == RunComplete
	switch {
	case active && cur == nil:
		rctx, cancel := context.WithCancel(ctx)
		cur = &followedRun{cancel: cancel, complete: make(chan struct{})}
		f.runs[rec.ID] = cur
		complete := cur.complete
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.work(rctx, rec, complete)
		}()
	case !active && cur != nil:
		cur.cancel()
		delete(f.runs, rec.ID)
		if f.over != nil {
			f.over(rec)
		}
		return
	}
	if cur != nil && rec.State == RunComplete {
		cur.markComplete()
	}
}
