package bus

import (
	"context"
	"testing"

	"github.com/society-sim/society/internal/testwait"
)

// The tests' waits end a little before the test binary's deadline
// (package testwait says why).

var (
	boundedContext = testwait.BoundedContext
	timeLeft       = testwait.TimeLeft
	awaitGroup     = testwait.Group
)

// awaitClosed is testwait.Closed.
func awaitClosed[T any](t *testing.T, ctx context.Context, what string, ch <-chan T) T {
	t.Helper()
	return testwait.Closed(t, ctx, what, ch)
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
