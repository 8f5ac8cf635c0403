package llm

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestDeadlinesShared checks the attempts' deadlines: never before start +
// timeout, at most a grain after it, one context for the attempts of a
// grain under one parent, a context of its own under another parent, and
// the context ending at its deadline with context.DeadlineExceeded.
func TestDeadlinesShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 30 * time.Second
		grain := min(timeout/1000, deadlineGrain)
		var ds deadlines
		parent := t.Context()
		start := time.Now()
		a := ds.acquire(parent, timeout)
		dl, ok := a.ctx.Deadline()
		if !ok || dl.Before(start.Add(timeout)) || !dl.Before(start.Add(timeout+grain)) {
			t.Fatalf("deadline %v after the start, want in [%v, %v)", dl.Sub(start), timeout, timeout+grain)
		}
		b := ds.acquire(parent, timeout)
		if b != a {
			t.Error("two attempts started at once under one parent: two contexts, want one")
		}
		other, cancelOther := context.WithCancel(parent)
		defer cancelOther()
		c := ds.acquire(other, timeout)
		if c == a {
			t.Error("attempts under two parents share a context")
		}
		time.Sleep(grain)
		d := ds.acquire(parent, timeout)
		if d == a {
			t.Error("an attempt a grain later got the earlier deadline")
		}
		if dd, _ := d.ctx.Deadline(); dd.Before(time.Now().Add(timeout)) {
			t.Errorf("later attempt's deadline %v before its start + timeout", dd)
		}
		time.Sleep(time.Until(dl) - time.Nanosecond)
		if err := a.ctx.Err(); err != nil {
			t.Fatalf("context ended before its deadline: %v", err)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if err := a.ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("context at its deadline: %v, want %v", err, context.DeadlineExceeded)
		}
		for _, s := range []*sharedDeadline{a, b, c, d} {
			ds.release(s)
		}
	})
}

// TestDeadlinesParentCancel checks that the parent's cancellation ends an
// attempt's context at once, whoever shares it.
func TestDeadlinesParentCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ds deadlines
		parent, cancel := context.WithCancel(t.Context())
		a := ds.acquire(parent, time.Minute)
		b := ds.acquire(parent, time.Minute)
		cancel()
		synctest.Wait()
		for _, s := range []*sharedDeadline{a, b} {
			if err := s.ctx.Err(); !errors.Is(err, context.Canceled) {
				t.Errorf("after the parent's cancel: %v, want %v", err, context.Canceled)
			}
			ds.release(s)
		}
	})
}

// TestDeadlinesReleased checks that a shared context is cancelled (its
// timer stopped) once no attempt holds it and no later attempt can get
// it, and not before.
func TestDeadlinesReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ds deadlines
		parent := t.Context()
		a := ds.acquire(parent, time.Minute)
		b := ds.acquire(parent, time.Minute)
		ds.release(a)
		if a.ctx.Err() != nil {
			t.Fatal("context cancelled while an attempt holds it")
		}
		// Later attempts take every slot: a is out of them.
		var later []*sharedDeadline
		for range deadlineSlots {
			time.Sleep(deadlineGrain)
			later = append(later, ds.acquire(parent, time.Minute))
		}
		if b.ctx.Err() != nil {
			t.Fatal("context cancelled while an attempt holds it")
		}
		ds.release(b)
		if !errors.Is(b.ctx.Err(), context.Canceled) {
			t.Errorf("context out of the slots and released by every attempt: %v, want cancelled", b.ctx.Err())
		}
		for _, s := range later {
			ds.release(s)
		}
	})
}

// uncomparableCtx is a context whose type cannot be compared with ==.
type uncomparableCtx struct {
	context.Context
	_ []int
}

// TestDeadlinesUncomparableParent checks that a parent context whose type
// is not comparable gets a context of its own instead of a panic.
func TestDeadlinesUncomparableParent(t *testing.T) {
	var ds deadlines
	p := uncomparableCtx{Context: t.Context()}
	a := ds.acquire(p, time.Minute)
	b := ds.acquire(p, time.Minute)
	if a == b {
		t.Error("uncomparable parents share a context")
	}
	ds.release(a)
	ds.release(b)
	if a.ctx.Err() == nil || b.ctx.Err() == nil {
		t.Error("context of its own not cancelled once released")
	}
}
