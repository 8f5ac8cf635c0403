package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestProgressLines: without a terminal a line is written every period
// with the phase, answers done and expected, the rate and the time left,
// and at once when the run moves on to analysing and writing.
func TestProgressLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := NewLog(&buf, false, 10*time.Second)
		stop := p.Start(t.Context())
		obs := p.Observer("")
		obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 2)}})
		obs.Phase(sim.PhaseStart{})
		obs.Batch(nil, sim.Counts{Expected: 200, Valid: 45, Invalid: 5})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		obs.(sim.Stager).Stage(sim.StageAnalysing)
		obs.(sim.Stager).Stage(sim.StageWriting)
		stop()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		want := []string{
			"study: answering, phase 1/2: 50/200 answers (25.0%), 5/s, ETA 30s, 10s elapsed",
			"study: analysing: 50/200 answers",
			"study: writing results: 50/200 answers",
			"study: ended: 50/200 answers",
		}
		if len(lines) != len(want) {
			t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d: got %q, want it to contain %q", i, lines[i], w)
			}
		}
	})
}

// TestProgressExpectedBeforeAnswers: while the first requests are in
// flight the lines already say how many answers the run expects, not 0/0.
func TestProgressExpectedBeforeAnswers(t *testing.T) {
	sc, err := scenarios.Builtin("quickstart")
	if err != nil {
		t.Fatal(err)
	}
	sc.Population.Size = 30
	p, err := sim.NewPlan(sc, backend.New("", nil, slog.New(slog.DiscardHandler)).Set())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	pl := NewLog(&buf, false, time.Hour)
	pl.Observer("").Start(sim.Layout{Name: "quickstart", Plan: p})
	pl.line()
	if want := "0/1200 answers"; !strings.Contains(buf.String(), want) {
		t.Errorf("got %q, want it to contain %q (30 agents × 40 items)", buf.String(), want)
	}
}

// TestProgressJSON: --progress json writes one JSON object a line.
func TestProgressJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := NewLog(&buf, true, 5*time.Second)
		stop := p.Start(t.Context())
		obs := p.Observer("calibration")
		obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
		obs.Batch(nil, sim.Counts{Expected: 100, Valid: 20})
		time.Sleep(12 * time.Second) // two lines
		synctest.Wait()
		stop()
		var got []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, m)
		}
		if len(got) != 3 {
			t.Fatalf("got %d lines, want 3 (two periods and the end):\n%s", len(got), buf.String())
		}
		first := got[0]
		if first["run"] != "calibration" || first["phase"] != "answering" || first["done"] != 20.0 || first["expected"] != 100.0 ||
			first["rate_per_second"] != 4.0 || first["eta_seconds"] != 20.0 {
			t.Errorf("got %v, want run calibration, answering, 20/100, 4/s, ETA 20s", first)
		}
		if got[2]["phase"] != "ended" {
			t.Errorf("last line: got phase %v, want ended", got[2]["phase"])
		}
	})
}

// TestProgressPrefetch: while a phase's requests are fetched ahead of its
// answers the lines name that phase and count the requests, with their
// rate and time left, as text and as JSON; once the fetch is over they
// are back to the answers.
func TestProgressPrefetch(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var buf bytes.Buffer
			p := NewLog(&buf, asJSON, 10*time.Second)
			stop := p.Start(t.Context())
			obs := p.Observer("")
			obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
			obs.Phase(sim.PhaseStart{})
			pre := obs.(sim.PrefetchObserver)
			pre.Prefetch(sim.Prefetching{Expected: 400})
			time.Sleep(5 * time.Second)
			pre.Prefetch(sim.Prefetching{Done: 100, Expected: 400})
			obs.Batch(nil, sim.Counts{Expected: 1200, Valid: 30})
			time.Sleep(5 * time.Second) // the first line
			synctest.Wait()
			pre.Prefetch(sim.Prefetching{Done: 400, Expected: 400, Ended: true})
			obs.Batch(nil, sim.Counts{Expected: 1200, Valid: 600})
			time.Sleep(10 * time.Second) // the second
			synctest.Wait()
			stop()
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("got %d lines, want 3:\n%s", len(lines), buf.String())
			}
			if !asJSON {
				for i, want := range []string{
					"study: prefetching: 100/400 requests answered (25.0%), 10/s, ETA 30s; 30/1200 answers, 10s elapsed",
					"study: answering: 600/1200 answers (50.0%), 57/s, ETA 10s, 20s elapsed", // 570 answers in the 10 s since the fetch ended
				} {
					if !strings.Contains(lines[i], want) {
						t.Errorf("line %d: got %q, want it to contain %q", i, lines[i], want)
					}
				}
				return
			}
			var first, second map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
				t.Fatal(err)
			}
			req, _ := first["requests"].(map[string]any)
			if first["phase"] != "prefetching" || first["done"] != 30.0 || req["done"] != 100.0 || req["expected"] != 400.0 ||
				req["rate_per_second"] != 10.0 || req["eta_seconds"] != 30.0 {
				t.Errorf("first line: got %v, want phase prefetching, 30 answers, requests 100/400 at 10/s, 30 s left", first)
			}
			// The answers' rate and time left come once the fetch has
			// ended: while it runs, answers come at its pace (an ETA of
			// 28 s was shown for a run that ended 0.7 s later).
			_, rate := first["rate_per_second"]
			_, eta := first["eta_seconds"]
			if rate || eta {
				t.Errorf("first line: got %v, want no answers' rate_per_second nor eta_seconds while prefetching", first)
			}
			if _, ok := second["requests"]; ok || second["phase"] != "answering" {
				t.Errorf("second line: got %v, want phase answering and no requests", second)
			}
		})
	}
}

// TestProgressAfterAnswers: once the answers are all in, and while the
// run analyses and writes, the lines name the step and how long it has
// taken, with no answer rate nor time left; after Ctrl-C (the run's
// context cancelled) the last line says the run was interrupted, not
// ended, and gives no time left.
func TestProgressAfterAnswers(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var buf bytes.Buffer
			ctx, cancel := context.WithCancel(t.Context())
			p := NewLog(&buf, asJSON, 10*time.Second)
			stop := p.Start(ctx)
			obs := p.Observer("")
			obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
			obs.Batch(nil, sim.Counts{Expected: 200, Valid: 200})
			time.Sleep(10 * time.Second) // all in, not yet analysing
			synctest.Wait()
			obs.(sim.Stager).Stage(sim.StageAnalysing)
			time.Sleep(20 * time.Second) // two lines while analysing
			synctest.Wait()
			cancel()
			stop()
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if !asJSON {
				want := []string{
					"study: answering: 200/200 answers, 10s elapsed",
					"study: analysing: 200/200 answers, 10s elapsed",
					"study: analysing (10s): 200/200 answers, 20s elapsed",
					"study: analysing (20s): 200/200 answers, 30s elapsed",
					"study: interrupted: 200/200 answers, 30s elapsed",
				}
				if len(lines) != len(want) {
					t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
				}
				for i, w := range want {
					if !strings.HasSuffix(lines[i], " "+w) {
						t.Errorf("line %d: got %q, want it to end in %q", i, lines[i], w)
					}
				}
				return
			}
			if len(lines) != 5 {
				t.Fatalf("got %d lines, want 5:\n%s", len(lines), buf.String())
			}
			for i, l := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatal(err)
				}
				_, rate := m["rate_per_second"]
				_, eta := m["eta_seconds"]
				if rate || eta {
					t.Errorf("line %d: got %s, want no rate_per_second nor eta_seconds", i, l)
				}
				if i == 3 && (m["phase"] != "analysing" || m["phase_elapsed_seconds"] != 20.0) {
					t.Errorf("line %d: got %s, want phase analysing, 20 s in it", i, l)
				}
				if i == 4 && m["phase"] != "interrupted" {
					t.Errorf("last line: got %s, want phase interrupted", l)
				}
			}
		})
	}
}

// TestProgressJSONTime: a JSON line's time is RFC 3339 in UTC with
// milliseconds, so that lines less than a second apart are told apart.
func TestProgressJSONTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := NewLog(&buf, true, 250*time.Millisecond)
		stop := p.Start(t.Context())
		p.Observer("").Start(sim.Layout{Name: "study", Plan: &sim.Plan{}})
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		stop()
		var times []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m struct{ Time string }
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			times = append(times, m.Time)
		}
		// synctest's clock starts at 2000-01-01 00:00:00 UTC.
		want := []string{"2000-01-01T00:00:00.250Z", "2000-01-01T00:00:00.500Z", "2000-01-01T00:00:00.500Z"}
		if !slices.Equal(times, want) {
			t.Errorf("got times %q, want %q", times, want)
		}
	})
}

// TestProgressInterruptedRequests: the last line of a run interrupted
// while fetching ahead says the requests answered by then (paid for,
// though no answer is in), and counts that arrive after the interrupt do
// not change it.
func TestProgressInterruptedRequests(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			var buf bytes.Buffer
			p := NewLog(&buf, asJSON, 10*time.Second)
			stop := p.Start(ctx)
			obs := p.Observer("")
			obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
			obs.Phase(sim.PhaseStart{})
			obs.Batch(nil, sim.Counts{Expected: 2400})
			pf := obs.(sim.PrefetchObserver)
			pf.Prefetch(sim.Prefetching{Expected: 216})
			pf.Prefetch(sim.Prefetching{Done: 72, Expected: 216})
			cancel()
			pf.Prefetch(sim.Prefetching{Done: 80, Expected: 216})
			pf.Prefetch(sim.Prefetching{Done: 80, Expected: 216, Ended: true})
			stop()
			lastLineSays(t, &buf, asJSON, "study: interrupted: 72/216 requests answered, 0/2400 answers",
				`"phase":"interrupted","done":0,"expected":2400,`, `"requests":{"done":72,"expected":216}`)
		})
	}
}

// TestProgressStageOnce: the periodic line that comes just after a step's
// own line, saying the same, is left out (the step was printed twice).
func TestProgressStageOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := NewLog(&buf, false, 10*time.Second)
		stop := p.Start(t.Context())
		obs := p.Observer("")
		obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
		obs.Batch(nil, sim.Counts{Expected: 20, Valid: 20})
		time.Sleep(9900 * time.Millisecond)
		obs.(sim.Stager).Stage(sim.StageWriting)
		time.Sleep(200 * time.Millisecond) // the tick at 10s
		synctest.Wait()
		stop()
		if n := strings.Count(buf.String(), "writing results: 20/20 answers"); n != 1 {
			t.Errorf("got %d lines of the writing step, want 1:\n%s", n, buf.String())
		}
	})
}

// TestProgressETAAfterPrefetch: the answers' rate is measured from the end
// of the fetch ahead, during which few answers can come, not from the
// run's start: just after it the rate and the time left are unknown,
// rather than an average over the fetch that gives an absurd time left.
func TestProgressETAAfterPrefetch(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var buf bytes.Buffer
			p := NewLog(&buf, asJSON, 10*time.Second)
			stop := p.Start(t.Context())
			obs := p.Observer("")
			obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
			obs.Phase(sim.PhaseStart{})
			pf := obs.(sim.PrefetchObserver)
			pf.Prefetch(sim.Prefetching{Expected: 216})
			time.Sleep(99500 * time.Millisecond)
			obs.Batch(nil, sim.Counts{Expected: 2400, Valid: 300}) // answered during the fetch
			pf.Prefetch(sim.Prefetching{Done: 216, Expected: 216, Ended: true})
			time.Sleep(500 * time.Millisecond) // the line at 100 s
			synctest.Wait()
			obs.Batch(nil, sim.Counts{Expected: 2400, Valid: 1350})
			time.Sleep(10 * time.Second) // the line at 110 s
			synctest.Wait()
			stop()
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) < 3 {
				t.Fatalf("got %d lines, want at least 3:\n%s", len(lines), buf.String())
			}
			just, later := lines[len(lines)-3], lines[len(lines)-2]
			if !asJSON {
				if want := "study: answering: 300/2400 answers (12.5%), rate unknown, ETA unknown, 1m40s elapsed"; !strings.HasSuffix(just, " "+want) {
					t.Errorf("got %q, want it to end in %q", just, want)
				}
				// 1050 answers in the 10.5 s since the fetch ended.
				if want := "study: answering: 1350/2400 answers (56.2%), 100/s, ETA 10s, 1m50s elapsed"; !strings.HasSuffix(later, " "+want) {
					t.Errorf("got %q, want it to end in %q", later, want)
				}
				return
			}
			var j, l map[string]any
			if err := json.Unmarshal([]byte(just), &j); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(later), &l); err != nil {
				t.Fatal(err)
			}
			_, rate := j["rate_per_second"]
			_, eta := j["eta_seconds"]
			if rate || eta || j["done"] != 300.0 {
				t.Errorf("got %s, want 300 answers and no rate_per_second nor eta_seconds", just)
			}
			if l["rate_per_second"] != 100.0 || l["eta_seconds"] != 10.5 {
				t.Errorf("got %s, want 100 answers/s and 10.5 s left", later)
			}
		})
	}
}

// TestProgressEndedRequests: the ended line carries the last phase's
// requests, final (216/216), not only the last periodic line's (214/216).
func TestProgressEndedRequests(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var buf bytes.Buffer
			p := NewLog(&buf, asJSON, 10*time.Second)
			stop := p.Start(t.Context())
			obs := p.Observer("")
			obs.Start(sim.Layout{Name: "study", Plan: &sim.Plan{Phases: make([]sim.Phase, 1)}})
			obs.Phase(sim.PhaseStart{})
			pf := obs.(sim.PrefetchObserver)
			pf.Prefetch(sim.Prefetching{Expected: 216})
			pf.Prefetch(sim.Prefetching{Done: 214, Expected: 216})
			time.Sleep(10 * time.Second)
			synctest.Wait()
			pf.Prefetch(sim.Prefetching{Done: 216, Expected: 216, Ended: true})
			obs.Batch(nil, sim.Counts{Expected: 2400, Valid: 2400})
			obs.(sim.Stager).Stage(sim.StageAnalysing)
			stop()
			lastLineSays(t, &buf, asJSON, "study: ended: 216/216 requests answered, 2400/2400 answers, 10s elapsed",
				`"phase":"ended","done":2400,"expected":2400,`, `"requests":{"done":216,"expected":216}`)
		})
	}
}

// lastLineSays checks that the last progress line in buf contains text
// (lines) or phase and requests (JSON).
func lastLineSays(t *testing.T, buf *bytes.Buffer, asJSON bool, text, phase, requests string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	last, want := lines[len(lines)-1], text
	if asJSON {
		want = phase
		if !strings.Contains(last, requests) {
			t.Errorf("last line %q, want it to contain %q", last, requests)
		}
	}
	if !strings.Contains(last, want) {
		t.Errorf("last line %q, want it to contain %q", last, want)
	}
}
