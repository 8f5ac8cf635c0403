package results

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
)

// Produce computes the outcome with the run's traffic and run block,
// tells Computed before writing, and writes the directory Write does.
func TestProduce(t *testing.T) {
	st, col := syntheticRun(t, 300)
	st.BootstrapIterations, st.NullIterations = 2, 19 // the test checks what is written, not p-values
	llm := analysis.LLMCounts{Calls: 7, CacheHits: 3, AnswersReused: 2, Retries: 1}
	run := &analysis.Run{ID: "t-1", Start: analysis.RunTime(time.Now().Add(-time.Minute))}
	dir := filepath.Join(t.TempDir(), "res")
	var told *analysis.Outcome
	out, err := Produce(context.Background(), dir, Finished{Study: st, Collector: col, Scenario: []byte("name = \"t\"\n"), LLM: llm, Run: run,
		Computed: func(o *analysis.Outcome) {
			told = o
			if _, err := os.Stat(dir); err == nil {
				t.Error("Computed was told after the results were written")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if told != out {
		t.Errorf("Computed: got %p, want the outcome %p", told, out)
	}
	if out.Results.LLM != llm {
		t.Errorf("llm: got %+v, want %+v", out.Results.LLM, llm)
	}
	if out.Results.Run == nil || out.Results.Run.ID != "t-1" || out.Results.Run.End == "" {
		t.Errorf("run block: got %+v, want run t-1 completed", out.Results.Run)
	}
	prev, err := ReadPrevious(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if prev.LLM != llm || prev.Run == nil || prev.Run.ID != "t-1" {
		t.Errorf("results.json: llm %+v, run %+v; want %+v and run t-1", prev.LLM, prev.Run, llm)
	}

	// No directory: the outcome only.
	if o, err := Produce(context.Background(), "", Finished{Study: st, Collector: col}); err != nil || o == nil {
		t.Fatalf("no directory: got %v, %v; want an outcome", o, err)
	}

	// Interrupted once computed: nothing written, Computed not told.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir2 := filepath.Join(t.TempDir(), "res")
	_, err = Produce(ctx, dir2, Finished{Study: st, Collector: col, Computed: func(*analysis.Outcome) { t.Error("Computed told of an interrupted run") }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted: got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dir2); err == nil {
		t.Error("an interrupted run wrote its results")
	}
}
