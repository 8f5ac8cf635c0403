package results

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
)

// Verdict warns of a mostly invalid model and fails a run with nothing
// scored, naming the scenario and where its answers are; a scored run
// passes in silence.
func TestVerdict(t *testing.T) {
	bad := &analysis.Results{Scenario: "s", Answers: analysis.AnswerCounts{Expected: 10, Invalid: 10},
		ModelRuns: []analysis.ModelRun{{Model: "m", MostlyInvalid: true, InvalidShare: 1,
			Answers:        analysis.AnswerCounts{Expected: 10, Invalid: 10},
			InvalidReasons: []analysis.ReasonCount{{Reason: "no answer on the scale", Count: 10}}}}}
	var w bytes.Buffer
	err := Verdict(&w, bad, "out/s")
	if !errors.Is(err, analysis.ErrUnscored) || !strings.HasPrefix(err.Error(), "run s: ") || !strings.HasSuffix(err.Error(), "(the answers are in out/s)") {
		t.Errorf("got error %v, want analysis.ErrUnscored of run s, pointing at out/s", err)
	}
	if !strings.Contains(w.String(), "WARNING: model m: 100% of its answers are invalid") {
		t.Errorf("got warnings %q, want model m's", w.String())
	}

	w.Reset()
	good := &analysis.Results{Scenario: "s", Answers: analysis.AnswerCounts{Expected: 10, Valid: 10}}
	if err := Verdict(&w, good, "out/s"); err != nil || w.Len() != 0 {
		t.Errorf("scored run: got %v and %q, want no error and no warning", err, w.String())
	}
}

// The summary's first line gives the run's time as the run block's line
// under it does, the same figure in the same format; the command's own
// time only when there is no run block, or beside it when it is a second
// or more longer.
func TestSummaryRunTime(t *testing.T) {
	for _, tt := range []struct {
		run     *analysis.Run
		elapsed time.Duration
		want    string
	}{
		{&analysis.Run{ID: "s-1", Start: "a", End: "b", WallSeconds: 3.2}, 3400 * time.Millisecond, "in 3.2 s.\nRun s-1 on , a to b (3.2 s)"},
		{&analysis.Run{ID: "s-1", Start: "a", End: "b", WallSeconds: 3.2}, 14 * time.Second, "in 3.2 s (14.0 s with the preparation and writing).\n"},
		{nil, 3400 * time.Millisecond, "in 3.4 s.\n"},
	} {
		var buf bytes.Buffer
		Summary(&buf, &analysis.Results{Scenario: "s", Run: tt.run}, tt.elapsed, "out")
		if !strings.Contains(buf.String(), tt.want) {
			t.Errorf("got %q, want it to contain %q", buf.String(), tt.want)
		}
	}
}
