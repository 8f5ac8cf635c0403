package analysis

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
)

// cancelAfter is a context whose Err reports context.Canceled from its
// (n+1)th call on. The analysis polls Err between resamples and tables, so
// this cancels it at an exact point of its work, with no clock involved.
type cancelAfter struct {
	context.Context
	n, calls atomic.Int64
}

func newCancelAfter(n int64) *cancelAfter {
	c := &cancelAfter{Context: context.Background()}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	if c.calls.Add(1) > c.n.Load() {
		return context.Canceled
	}
	return nil
}

// TestComputeStopsWhenCancelled: wherever the analysis is cancelled (in
// the values bootstrap, in the behaviour bootstrap, between tables), it
// returns the context's error at the next check and does no more work.
func TestComputeStopsWhenCancelled(t *testing.T) {
	st, col := syntheticRun(t, 200) // small: the test counts cancellation checks
	st.BootstrapIterations = 20
	// Few permutations: the test counts checks, not p-values.
	st.NullIterations = 19
	// The first analysis fills the study's cached random-responder
	// baselines; the second counts the checks of every later one.
	if _, err := st.Compute(context.Background(), col); err != nil {
		t.Fatal(err)
	}
	count := newCancelAfter(1 << 62)
	if _, err := st.Compute(count, col); err != nil {
		t.Fatal(err)
	}
	total := count.calls.Load()
	// Resamples run on one goroutine per processor: each of the others
	// may make one more check before it sees the cancellation, and the
	// loop makes one to return it.
	slack := int64(runtime.GOMAXPROCS(0))
	if total < 4*int64(st.BootstrapIterations) {
		t.Fatalf("the analysis checked for cancellation %d times, want at least once per resample", total)
	}
	for k := int64(0); k < total; k += max(1, total/25) {
		ctx := newCancelAfter(k)
		_, err := st.Compute(ctx, col)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d of %d checks: got %v, want context.Canceled", k, total, err)
		}
		if got := ctx.calls.Load(); got > k+1+slack {
			t.Errorf("cancelled after %d checks: went on to %d checks, want it to stop within %d more", k, got, slack+1)
		}
	}

	// A bootstrap of a million resamples stops as soon as it is cancelled.
	st.BootstrapIterations = 1_000_000
	if _, err := st.Compute(newCancelAfter(100), col); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
