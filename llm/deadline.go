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
// parent context in use (the run's, Prefetch's) and their predecessors.
const deadlineSlots = 4

// deadlines hands out the contexts that bound attempts. An attempt
// started at t under parent gets a context that ends with parent or at
// t + timeout rounded up to the next multiple of the grain
// (min(timeout/1000, deadlineGrain)), whichever comes first: never
// earlier than its timeout, at most a grain later. Attempts under the same
// parent with the same rounded deadline share the context; it is
// cancelled, stopping its timer, when the last of them is done and no
// later attempt can get it. An attempt slower than its timeout therefore
// fails with context.DeadlineExceeded as with its own context.WithTimeout,
// and the parent's cancellation ends it at once.
type deadlines struct {
	mu    sync.Mutex
	slots [deadlineSlots]*sharedDeadline
}

// sharedDeadline is a context ending at at, with the attempts using it.
type sharedDeadline struct {
	ctx    context.Context // context.WithDeadline(parent, at)
	cancel context.CancelFunc
	parent context.Context
	at     time.Time
	users  int  // attempts holding it; guarded by deadlines.mu
	gone   bool // out of the slots: no attempt gets it any more
}

// acquire returns the context bounding an attempt started now under
// parent with the timeout; the caller hands it back with release once the
// attempt is done.
func (ds *deadlines) acquire(parent context.Context, timeout time.Duration) *sharedDeadline {
	at := time.Now().Add(timeout)
	grain := min(timeout/1000, deadlineGrain)
	if grain > 0 {
		if r := time.Duration(at.UnixNano() % int64(grain)); r > 0 {
			at = at.Add(grain - r)
		}
	}
	// Contexts are compared as interface values, which panics for a
	// type that is not comparable: such a parent gets a deadline of its
	// own.
	shared := grain > 0 && parent != nil && reflect.TypeOf(parent).Comparable()
	if shared {
		ds.mu.Lock()
		for _, s := range ds.slots {
			if s != nil && s.at.Equal(at) && s.parent == parent {
				s.users++
				ds.mu.Unlock()
				return s
			}
		}
		ds.mu.Unlock()
	}
	ctx, cancel := context.WithDeadline(parent, at)
	s := &sharedDeadline{ctx: ctx, cancel: cancel, parent: parent, at: at, users: 1, gone: !shared}
	if !shared {
		return s
	}
	ds.mu.Lock()
	for _, o := range ds.slots {
		if o != nil && o.at.Equal(at) && o.parent == parent {
			// Made by another attempt meanwhile: share that one.
			o.users++
			ds.mu.Unlock()
			cancel()
			return o
		}
	}
	// The slot of the earliest deadline goes: later attempts under its
	// parent get later deadlines.
	k := 0
	for i, o := range ds.slots {
		if o == nil {
			k = i
			break
		}
		if o.at.Before(ds.slots[k].at) {
			k = i
		}
	}
	old := ds.slots[k]
	ds.slots[k] = s
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
