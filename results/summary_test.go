package results

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
