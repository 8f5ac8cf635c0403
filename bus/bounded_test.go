package bus

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The tests' waits end with the test binary's deadline (go test -timeout),
// however long a busy machine makes an event take. They end a little
// before it, so that a wait that would never end fails its test, saying
// what it waited for, and the other tests still run; the binary's own
// timeout would panic with every goroutine's stack instead and lose the
// rest of the run.

// boundedContext is t.Context ended a little before the test binary's
// deadline (the lesser of 30 s and half the time left); without a
// deadline (-timeout 0) it is t.Context.
func boundedContext(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		return t.Context()
	}
	grace := min(30*time.Second, time.Until(d)/2)
	ctx, cancel := context.WithDeadline(t.Context(), d.Add(-grace))
	t.Cleanup(cancel)
	return ctx
}

// timeLeft is the time until ctx ends, for the timeouts of calls that take
// no context; a context without a deadline leaves an hour.
func timeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return time.Hour
}

// awaitClosed waits until ch is closed or receives, and fails the test
// naming what it waited for when the bounded context ends first.
func awaitClosed[T any](t *testing.T, ctx context.Context, what string, ch <-chan T) T {
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

// awaitGroup waits for wg like awaitClosed; it reports with t.Error, for
// deferred waits, and leaves the goroutines behind.
func awaitGroup(t *testing.T, ctx context.Context, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Errorf("test ended while waiting for %s to stop", what)
	}
}

// For the tests of package bus_test.
var (
	BoundedContext = boundedContext
	AwaitGroup     = awaitGroup
	TimeLeft       = timeLeft
)

// AwaitClosed is awaitClosed for the tests of package bus_test.
func AwaitClosed[T any](t *testing.T, ctx context.Context, what string, ch <-chan T) T {
	t.Helper()
	return awaitClosed(t, ctx, what, ch)
}
