package llm

import (
	"context"
	"reflect"
	"sync"
	"time"
)

// This file bounds each attempt by its timeout without a context and a
// timer of its own: context.WithTimeout costs about 3–4 µs and seven
// allocations per call (the context, its timer, its channel, the map of
// its children) on a path of some 150 µs, and in sample mode there is one
// attempt per answer.

// deadlineGrain is the most an attempt's deadline is moved later so that
// attempts started close together share one: with it, every attempt
// started within the same 10 ms (at most a thousandth of the timeout)
// waits on one context and one timer.
const deadlineGrain = 10 * time.Millisecond

// deadlineSlots is the number of shared deadlines kept at once: one per
// parent context in use (the run's, Prefetch's, those of the tasks an
// agent host serves at once) and their predecessors. Past it, attempts
// under more parents get deadlines of their own more often, as before.
const deadlineSlots = 8

// deadlines hands out the contexts that bound attempts. An attempt
// started at t under parent gets a context that ends with parent or at
// t + timeout rounded up to the next multiple of the grain
// (min(timeout/1000, deadlineGrain)) counted from the first attempt,
// whichever comes first: never earlier than its timeout, at most a grain
// later. Attempts under the same parent with the same rounded deadline
// share the context; it is cancelled, stopping its timer, when the last of
// them is done and no later attempt can get it. An attempt slower than its
// timeout therefore fails with context.DeadlineExceeded as with its own
// context.WithTimeout, and the parent's cancellation ends it at once.
type deadlines struct {
	mu    sync.Mutex
	base  time.Time // the first attempt's start: grains count from it
	slots [deadlineSlots]*sharedDeadline
}

// sharedDeadline is a context ending at at, with the attempts using it.
type sharedDeadline struct {
	ctx    context.Context // context.WithDeadline(parent, at)
	cancel context.CancelFunc
	parent context.Context
	grain  int64 // at is base + grain grains
	at     time.Time
	users  int  // attempts holding it; guarded by deadlines.mu
	gone   bool // out of the slots: no attempt gets it any more
}

// acquire returns the context bounding an attempt started now under
// parent with the timeout; the caller hands it back with release once the
// attempt is done.
func (ds *deadlines) acquire(parent context.Context, timeout time.Duration) *sharedDeadline {
	now := time.Now()
	grain := min(timeout/1000, deadlineGrain)
	// Contexts are compared as interface values, which panics for a
	// type that is not comparable: such a parent gets a deadline of its
	// own.
	if grain <= 0 || parent == nil || !reflect.TypeOf(parent).Comparable() {
		ctx, cancel := context.WithDeadline(parent, now.Add(timeout))
		return &sharedDeadline{ctx: ctx, cancel: cancel, parent: parent, users: 1, gone: true}
	}
	ds.mu.Lock()
	if ds.base.IsZero() {
		ds.base = now
	}
	// Monotonic readings on both sides: the same grain gives the same
	// instant whatever the wall clock does.
	k := int64((now.Sub(ds.base) + timeout + grain - 1) / grain)
	if s := ds.find(parent, k); s != nil {
		ds.mu.Unlock()
		return s
	}
	at := ds.base.Add(time.Duration(k) * grain)
	ds.mu.Unlock()
	ctx, cancel := context.WithDeadline(parent, at)
	s := &sharedDeadline{ctx: ctx, cancel: cancel, parent: parent, grain: k, at: at, users: 1}
	ds.mu.Lock()
	if o := ds.find(parent, k); o != nil {
		// Made by another attempt meanwhile: share that one.
		ds.mu.Unlock()
		cancel()
		return o
	}
	// The slot of the earliest deadline goes: later attempts under its
	// parent get later deadlines.
	i := 0
	for j, o := range ds.slots {
		if o == nil {
			i = j
			break
		}
		if o.grain < ds.slots[i].grain {
			i = j
		}
	}
	old := ds.slots[i]
	ds.slots[i] = s
	var stop context.CancelFunc
	if old != nil {
		old.gone = true
		if old.users == 0 {
			stop = old.cancel
		}
	}
	ds.mu.Unlock()
	if stop != nil {
		stop()
	}
	return s
}

// find returns the context of grain k under parent, counting one more
// attempt on it, or nil. The caller holds ds.mu.
func (ds *deadlines) find(parent context.Context, k int64) *sharedDeadline {
	for _, s := range ds.slots {
		if s != nil && s.grain == k && s.parent == parent {
			s.users++
			return s
		}
	}
	return nil
}

// release hands back a context from acquire.
func (ds *deadlines) release(s *sharedDeadline) {
	ds.mu.Lock()
	s.users--
	done := s.users == 0 && s.gone
	ds.mu.Unlock()
	if done {
		s.cancel()
	}
}
