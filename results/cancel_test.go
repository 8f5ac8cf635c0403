package results

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/analysis"
)

// TestWriteStopsWhenCancelled: cancelled at any point of writing a
// results directory, Write returns the context's error, leaves
// an earlier directory as it was and no partial one behind.
func TestWriteStopsWhenCancelled(t *testing.T) {
	st, col := syntheticRun(t, 200) // small: the test counts cancellation checks
	st.BootstrapIterations = 5
	st.NullIterations = 19
	outcome, err := st.Compute(context.Background(), col)
	if err != nil {
		t.Fatal(err)
	}
	o := &analysis.Output{Outcome: outcome, Collector: col, Study: st, Scenario: []byte("name = \"t\"\n")}
	count := newCancelAfter(1 << 62)
	if err := Write(count, filepath.Join(t.TempDir(), "full"), o); err != nil {
		t.Fatal(err)
	}
	total := count.calls.Load()
	if total < 5 {
		t.Fatalf("writing checked for cancellation %d times, want once per file or figure", total)
	}

	parent := t.TempDir()
	dir := filepath.Join(parent, "res")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), []byte("earlier"), 0o644); err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < total; k += max(1, total/6) {
		ctx := newCancelAfter(k)
		if err := Write(ctx, dir, o); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d of %d checks: got %v, want context.Canceled", k, total, err)
		}
		if got := ctx.calls.Load(); got != k+1 {
			t.Errorf("cancelled after %d checks: went on to %d checks", k, got)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "results.json")); string(b) != "earlier" {
			t.Fatalf("cancelled after %d checks: the earlier results were replaced", k)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("cancelled after %d checks: got %d entries beside the results, want none", k, len(entries)-1)
		}
	}
}
