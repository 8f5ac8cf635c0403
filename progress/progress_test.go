package progress

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestOptions: the flags set the options, Check names the flag at fault,
// and off a terminal auto writes lines, not a bar.
func TestOptions(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // "" for none
		json    bool
	}{
		{nil, "", false},
		{[]string{"--progress", "lines", "--progress-every", "1s"}, "", false},
		{[]string{"--progress", "json"}, "", true},
		{[]string{"--progress", "bar"}, `--progress: want auto, lines or json, got "bar"`, false},
		{[]string{"--progress-every", "50ms"}, "--progress-every: must be at least 100ms, got 50ms", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			o := AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := o.Check()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			var buf bytes.Buffer
			bar, lines := o.Display(&buf)
			if bar != nil || lines == nil {
				t.Fatalf("got bar %v, lines %v; want lines only (a buffer is no terminal)", bar, lines)
			}
			if lines.asJSON != tt.json {
				t.Errorf("got JSON %v, want %v", lines.asJSON, tt.json)
			}
		})
	}
}

// TestBar: the bar is redrawn in place at most every barEvery and once the
// answers are all in, and the next run starts on a new line.
func TestBar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := NewBar(context.Background(), &buf, "")
		b.Start(sim.Layout{Name: "study"})
		time.Sleep(10 * time.Second)
		b.Batch(nil, sim.Counts{Expected: 100, Valid: 45, Invalid: 5})
		b.Batch(nil, sim.Counts{Expected: 100, Valid: 46, Invalid: 5}) // too soon: not drawn
		b.Batch(nil, sim.Counts{Expected: 100, Valid: 95, Invalid: 5}) // all in: drawn
		b.Start(sim.Layout{Name: "next"})                              // ends the line
		b.Finish()                                                     // nothing drawn since: no empty line
		want := "\rstudy [===============               ]  50.0% 50/100 answers  5 answers/s " +
			"\rstudy [==============================] 100.0% 100/100 answers  10 answers/s \n"
		if got := buf.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestBarStage: after the answers, the bar's line ends and each step the
// run moves on to is named on a line of its own.
func TestBarStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := NewBar(context.Background(), &buf, "")
		b.Start(sim.Layout{Name: "study"})
		time.Sleep(10 * time.Second)
		b.Batch(nil, sim.Counts{Expected: 100, Valid: 100})
		sim.Stage(sim.Observers{sim.NoObserver{}, b}, sim.StageAnalysing)
		sim.Stage(b, sim.StageWriting)
		b.Finish() // nothing drawn since: no empty line
		want := "\rstudy [==============================] 100.0% 100/100 answers  10 answers/s \n" +
			"study: analysing\nstudy: writing results\n"
		if got := buf.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestBarNil: a bar without a writer draws nothing.
func TestBarNil(t *testing.T) {
	b := NewBar(context.Background(), nil, "run-1")
	b.Start(sim.Layout{Name: "study"})
	b.Batch(nil, sim.Counts{Expected: 1, Valid: 1})
	b.Finish()
	if IsTerminal(io.Discard) {
		t.Error("io.Discard: got a terminal, want none")
	}
}

// TestBarPrefetch: while requests are fetched ahead the bar counts them,
// at a rate labelled as of requests; the fetch's last count stays on a
// line of its own, and the answers' line follows.
func TestBarPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := NewBar(context.Background(), &buf, "")
		b.Start(sim.Layout{Name: "study"})
		b.Prefetch(sim.Prefetching{Expected: 40}) // drawn: the first
		time.Sleep(2 * time.Second)
		b.Prefetch(sim.Prefetching{Done: 10, Expected: 40})
		b.Prefetch(sim.Prefetching{Done: 11, Expected: 40}) // too soon
		b.Prefetch(sim.Prefetching{Done: 40, Expected: 40, Ended: true})
		b.Batch(nil, sim.Counts{Expected: 100, Valid: 100})
		b.Finish()
		want := "\rstudy [                              ]   0.0% 0/40 requests answered, 0/0 answers  - requests/s " +
			"\rstudy [=======                       ]  25.0% 10/40 requests answered, 0/0 answers  5 requests/s " +
			"\rstudy [==============================] 100.0% 40/40 requests answered, 0/0 answers  20 requests/s \n" +
			"\rstudy [==============================] 100.0% 100/100 answers  - answers/s \n"
		if got := buf.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestBarPrefetchExpected: while the first phase's requests are fetched
// ahead, before any answer, the bar already gives the answers the run
// expects, not 0/0.
func TestBarPrefetchExpected(t *testing.T) {
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
	b := NewBar(context.Background(), &buf, "")
	b.Start(sim.Layout{Name: "quickstart", Plan: p})
	b.Prefetch(sim.Prefetching{Expected: 40})
	if want := "0/40 requests answered, 0/1200 answers"; !strings.Contains(buf.String(), want) {
		t.Errorf("got %q, want it to contain %q (30 agents × 40 items)", buf.String(), want)
	}
}

// TestBarInterrupted: a bar finished after its run's context ended says
// the run was interrupted; one finished before does not.
func TestBarInterrupted(t *testing.T) {
	for _, cancelled := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		var buf bytes.Buffer
		b := NewBar(ctx, &buf, "")
		b.Start(sim.Layout{Name: "study"})
		b.Batch(nil, sim.Counts{Expected: 4, Valid: 4})
		if cancelled {
			cancel()
		}
		b.Finish()
		cancel()
		if got := strings.HasSuffix(buf.String(), " interrupted\n"); got != cancelled {
			t.Errorf("cancelled %v: got %q", cancelled, buf.String())
		}
	}
}

// TestBarInterruptedRequests: interrupted while fetching ahead, the bar
// draws the requests answered by then, and ends the line with
// "interrupted": it neither drops to the answers (0 of them) nor goes on
// counting the requests that end after the interrupt.
func TestBarInterruptedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var buf bytes.Buffer
		b := NewBar(ctx, &buf, "")
		b.Start(sim.Layout{Name: "study"})
		b.Prefetch(sim.Prefetching{Expected: 216})
		time.Sleep(2 * time.Second)
		b.Prefetch(sim.Prefetching{Done: 27, Expected: 216})
		b.Prefetch(sim.Prefetching{Done: 29, Expected: 216}) // too soon to be drawn
		cancel()
		time.Sleep(2 * time.Second)
		b.Prefetch(sim.Prefetching{Done: 33, Expected: 216})
		b.Prefetch(sim.Prefetching{Done: 33, Expected: 216, Ended: true})
		b.Batch(nil, sim.Counts{Expected: 2400})
		b.Finish()
		got := buf.String()
		if !strings.HasSuffix(got, "29/216 requests answered, 0/0 answers  7 requests/s  interrupted\n") || strings.Contains(got, "33/216") || strings.Contains(got, "0/2400") {
			t.Errorf("got %q, want the line of the 29/216 requests answered before the interrupt ended with interrupted, and nothing drawn after the interrupt", got)
		}
	})
}

// TestBarDrawsLastCount: the counts that come too soon after a drawing
// (the rest of a burst of answers, or of requests) are drawn once
// barEvery has passed, not only when the next burst comes; the fetch's
// final count (216/216) is drawn before the answers' line replaces it.
func TestBarDrawsLastCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := NewBar(context.Background(), &buf, "")
		b.Start(sim.Layout{Name: "study"})
		b.Prefetch(sim.Prefetching{Done: 1, Expected: 216})
		b.Prefetch(sim.Prefetching{Done: 8, Expected: 216}) // too soon
		time.Sleep(time.Second)                             // no further count
		synctest.Wait()
		// Drawn 100 ms in: no rate yet (8 in 0.1 s is no rate to show).
		if !strings.HasSuffix(buf.String(), " 8/216 requests answered, 0/0 answers  - requests/s ") {
			t.Errorf("got %q, want the last count, 8/216 requests, drawn", buf.String())
		}
		b.Prefetch(sim.Prefetching{Done: 209, Expected: 216})
		b.Prefetch(sim.Prefetching{Done: 216, Expected: 216})
		b.Batch(nil, sim.Counts{Expected: 2400, Valid: 1})
		b.Batch(nil, sim.Counts{Expected: 2400, Valid: 8}) // too soon
		time.Sleep(time.Second)
		synctest.Wait()
		got := buf.String()
		if !strings.Contains(got, " 216/216 requests answered, 0/0 answers  216 requests/s \n") {
			t.Errorf("got %q, want the fetch's final 216/216 on a line of its own", got)
		}
		if !strings.HasSuffix(got, " 8/2400 answers  - answers/s ") { // 0.1 s after the fetch: no rate yet
			t.Errorf("got %q, want the last count, 8/2400 answers, drawn", got)
		}
		b.Finish()
	})
}

// TestBarAnswersRateAfterFetch: the answers' rate counts from the end of
// the fetch ahead, when answers can begin to come, not from the run's
// start: 200 answers 2 s after a 10 s fetch are 100 a second, not 17.
func TestBarAnswersRateAfterFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := NewBar(context.Background(), &buf, "")
		b.Start(sim.Layout{Name: "study"})
		b.Prefetch(sim.Prefetching{Expected: 40})
		time.Sleep(10 * time.Second)
		b.Prefetch(sim.Prefetching{Done: 40, Expected: 40, Ended: true})
		time.Sleep(2 * time.Second)
		b.Batch(nil, sim.Counts{Expected: 400, Valid: 200})
		if got := buf.String(); !strings.HasSuffix(got, " 200/400 answers  100 answers/s ") {
			t.Errorf("got %q, want 200 answers at 100 answers/s", got)
		}
		b.Finish()
	})
}

// TestScreenFitsTheTerminal: a bar line longer than the terminal is cut
// to its width less one column (a wrapped line could not be redrawn in
// place), and the suffix that ends it still fits on its row.
func TestScreenFitsTheTerminal(t *testing.T) {
	var buf bytes.Buffer
	s := &Screen{w: &buf, width: func() int { return 20 }}
	s.draw("study [=====     ]  50.0% 5/10 answers")
	s.end(" interrupted")
	want := "\rstudy [=====     ] " + "\rstudy [ interrupted\x1b[K\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, row := range strings.Split(strings.ReplaceAll(buf.String(), "\x1b[K", ""), "\r") {
		if n := len(strings.TrimSuffix(row, "\n")); n > 19 {
			t.Errorf("row %q: %d columns, want at most 19", row, n)
		}
	}
}
