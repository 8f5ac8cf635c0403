// Package testwait bounds the waits of tests that wait on events (a line a
// process prints, a message on the bus, a request a server receives):
// however long a busy machine makes an event take, a wait ends a little
// before the test binary's deadline (go test -timeout), so that a missing
// event fails its test, saying what it waited for, and the other tests
// still run, where the binary's own timeout would panic with every
// goroutine's stack and lose the rest of the run.
//
// It is for tests only and imports only the standard library.
package testwait

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BoundedContext is t.Context ended a little before the test binary's
// deadline: the lesser of 30 s and half the time left. Without a deadline
// (-timeout 0) it is t.Context.
func BoundedContext(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		return t.Context()
	}
	grace := min(30*time.Second, time.Until(d)/2)
	ctx, cancel := context.WithDeadline(t.Context(), d.Add(-grace))
	t.Cleanup(cancel)
	return ctx
}

// TimeLeft is the time until ctx ends, for the timeouts of calls that take
// no context; a context without a deadline leaves an hour.
func TimeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return time.Hour
}

// Closed waits until ch is closed or receives, and fails the test naming
// what it waited for when ctx ends first.
func Closed[T any](t *testing.T, ctx context.Context, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("test ended while waiting for %s", what)
		var zero T
		return zero
	}
}

// Group waits for wg like Closed; it reports with t.Error, for deferred
// waits, and leaves the goroutines behind.
func Group(t *testing.T, ctx context.Context, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Errorf("test ended while waiting for %s to stop", what)
	}
}
