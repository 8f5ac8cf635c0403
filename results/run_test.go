package results

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
)

// The run block is written to results.json, read back, and said in the
// report; a model served by society model-server is said synthetic.
func TestRunBlockWrittenAndRead(t *testing.T) {
	o := pvqOutput(t, 30)
	r := &o.Outcome.Results
	r.Scenario = "t"
	r.Models = []analysis.ModelInfo{{Name: "m", Backend: "openai", Mode: "sample", Synthetic: true, ServedModel: "m", SystemFingerprint: "society-synthetic"}}
	r.ModelRuns = []analysis.ModelRun{{Model: "m", LLM: &analysis.ModelLLM{Calls: 5, CacheHits: 2, AnswersReused: 23}}}
	r.LLM = analysis.LLMCounts{Calls: 5, CacheHits: 2, AnswersReused: 23}
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	r.Finish(&analysis.Run{ID: "t-1", Version: "v1.2.3", Revision: "0123abc", Host: "node1", Start: analysis.RunTime(start),
		Models: []analysis.RunModel{{Name: "m", Backend: "openai", BaseURL: "http://127.0.0.1:8000/v1", Mode: "sample"}}}, start.Add(3*time.Second))

	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "results.json"), func(b *bytes.Buffer) error { return writeJSON(b, r) })
	prev, err := ReadPrevious(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	run := prev.Run
	if run == nil || run.Revision != "0123abc" || run.End != "2026-11-30T09:00:03.000Z" || run.WallSeconds != 3 || !run.Synthetic ||
		len(run.Models) != 1 || !run.Models[0].Synthetic || run.Models[0].LLM == nil || run.Models[0].LLM.CacheHits != 2 {
		t.Fatalf("read back: got %+v, want the block written", run)
	}
	var without bytes.Buffer
	noRun := *r
	noRun.Run = nil
	if err := writeJSON(&without, &noRun); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(WithoutRun(written), without.Bytes()) {
		t.Error("WithoutRun: got another text than the results written without a run block")
	}
	var report bytes.Buffer
	if err := writeReport(&report, o, nil, paperFigures{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Run", "Run t-1 on node1", "society v1.2.3, revision 0123abc", "SYNTHETIC",
		"m: openai serving synthetic respondents (society model-server) at http://127.0.0.1:8000/v1",
		"5 made, 2 saved by the cache (cache_hits), 23 answers reused"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report.md: want %q in it, got:\n%s", want, report.String())
		}
	}
}

func TestWithoutRun(t *testing.T) {
	with := []byte("{\n  \"run\": {\n    \"id\": \"x\",\n    \"models\": [\n      {\n        \"name\": \"m\"\n      }\n    ]\n  },\n  \"scenario\": \"s\"\n}\n")
	want := "{\n  \"scenario\": \"s\"\n}\n"
	if got := string(WithoutRun(with)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := string(WithoutRun([]byte(want))); got != want {
		t.Errorf("without a run block: got %q, want it unchanged", got)
	}
}
