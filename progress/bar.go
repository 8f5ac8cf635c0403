package progress

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
)

// Bar draws a one-line bar on a terminal as a run's observer; with a nil
// writer it does nothing. Drawn on a Screen, it shares the line with the
// Screen's other writers (log lines). A run after another (the main run after its
// calibration) starts a new line. While a phase's requests are fetched
// ahead of its answers (sim.PrefetchObserver) the bar counts the
// requests. Its methods may be called from the loop's, the dispatcher's
// and the fetch's goroutines.
type Bar struct {
	sim.NoObserver
	ctx   context.Context // its end before Finish: the run was interrupted
	s     *Screen         // nil: nothing is drawn
	label string          // "" takes the run's scenario name

	mu    sync.Mutex
	name  string
	start time.Time
	drawn time.Time // zero: nothing drawn on the line
	// pre is the fetch ahead under way (Expected 0: none), which began
	// at preStart; wide says the line drawn last was the fetch's, longer
	// than an answers line.
	pre      sim.Prefetching
	preStart time.Time
	preDone  bool // the fetch's last count is drawn
	wide     bool
	answers  sim.Counts
	// The answers' rate counts those after ansBase, from ansFrom: the
	// end of the last fetch ahead (the run's start without one), when the
	// answers begin to come.
	ansFrom time.Time
	ansBase int64
	// redraw, when not nil, draws the counts that came too soon after
	// the last drawing once barEvery has passed since it, so that the end
	// of a burst of answers shows without waiting for the next burst.
	redraw *time.Timer
}

var (
	_ sim.PrefetchObserver = (*Bar)(nil)
	_ sim.Stager           = (*Bar)(nil)
)

// barEvery is how often the bar is redrawn at most: a terminal needs no
// more, and a large run stores thousands of batches a second.
const barEvery = 100 * time.Millisecond

// NewBar is a bar drawn on w (nil: none; a *Screen: shared with its other
// writers), labelled label ("": the name of each run's scenario), of a run
// that stops when ctx ends: a bar finished after that says the run was
// interrupted.
func NewBar(ctx context.Context, w io.Writer, label string) *Bar {
	return &Bar{ctx: ctx, s: ScreenOf(w), label: label, name: label, start: time.Now()}
}

// Start begins the bar of a run.
func (b *Bar) Start(l sim.Layout) {
	b.Finish()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.start, b.name = time.Now(), b.label
	b.ansFrom, b.ansBase = b.start, 0
	b.pre, b.answers = sim.Prefetching{}, sim.Counts{Expected: expectedAnswers(l)}
	if b.name == "" {
		b.name = l.Name
	}
}

// Batch redraws the bar, at most every barEvery and when the answers are
// all in; counts that come sooner are drawn once barEvery has passed.
func (b *Bar) Batch(_ *agent.Batch, n sim.Counts) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		return // interrupted: the line drawn last stays, see Prefetch
	}
	b.answers = n
	done := n.Valid + n.Invalid
	if time.Since(b.drawn) >= barEvery || done >= n.Expected {
		b.update()
		return
	}
	b.later()
}

// later draws the counts once barEvery has passed since the last
// drawing, unless a drawing comes first.
func (b *Bar) later() {
	if b.redraw != nil || b.s == nil {
		return
	}
	b.redraw = time.AfterFunc(barEvery-time.Since(b.drawn), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.redraw == nil || b.ctx.Err() != nil {
			return // drawn meanwhile, the line ended, or interrupted
		}
		b.update()
	})
}

// cancelRedraw drops the drawing that later planned.
func (b *Bar) cancelRedraw() {
	if b.redraw != nil {
		b.redraw.Stop()
		b.redraw = nil
	}
}

// Prefetch redraws the bar with the requests of the fetch ahead answered
// (whoever made them: the fetch or an agent) and planned, at most every
// barEvery (counts that come sooner are drawn once it has passed) and
// when the fetch is over, its final count then left on a line of its own.
//
// Once the run is interrupted the bar is no longer redrawn: its last line,
// the requests answered until then (paid for, whatever the answers) or the
// answers, ends with " interrupted", rather than the answers' line (0 of
// them in a phase still fetching ahead) drawn again and again, nor counts
// that go on while the requests in flight end.
func (b *Bar) Prefetch(p sim.Prefetching) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		return
	}
	if b.pre.Expected == 0 || b.pre.Ended || p.Done < b.pre.Done {
		b.preStart, b.preDone = time.Now(), false // a phase's fetch begins
	}
	b.pre = p
	over := p.Ended || p.Done >= p.Expected
	if over && !b.preDone && p.Expected > 0 {
		// The fetch's last count stays on a line of its own (every
		// request answered, or those answered when the answers came
		// first); the answers' line follows.
		b.preDone = true
		b.ansFrom, b.ansBase = time.Now(), b.answers.Valid+b.answers.Invalid
		if b.s != nil {
			b.draw(true)
			b.s.end("")
			b.drawn, b.wide = time.Time{}, false
		}
		b.update()
		return
	}
	if time.Since(b.drawn) >= barEvery || over {
		b.update()
		return
	}
	b.later()
}

// update draws the bar: the requests fetched ahead while that is under
// way, the answers otherwise.
func (b *Bar) update() {
	p := b.pre
	b.draw(p.Expected > 0 && !p.Ended && p.Done < p.Expected)
}

// draw draws the requests fetched ahead (fetch) or the answers. The rate
// of the fetch's line is of requests, not answers, and says so.
func (b *Bar) draw(fetch bool) {
	b.cancelRedraw()
	done, total := b.answers.Valid+b.answers.Invalid, b.answers.Expected
	if b.s == nil {
		return
	}
	const width = 30
	if p := b.pre; fetch {
		f := float64(p.Done) / float64(p.Expected)
		full := int(min(f, 1) * width)
		b.s.draw(fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d requests answered, %d/%d answers  %s requests/s ", b.name,
			strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*f, p.Done, p.Expected, done, total, barRate(p.Done, time.Since(b.preStart))))
		b.drawn, b.wide = time.Now(), true
		return
	}
	if total == 0 {
		return
	}
	f := float64(done) / float64(total)
	full := int(f * width)
	clear := ""
	if b.wide {
		clear = "\x1b[K" // the fetch's line was longer
	}
	b.s.draw(fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d answers  %s answers/s %s", b.name,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*f, done, total, barRate(done-b.ansBase, time.Since(b.ansFrom)), clear))
	b.drawn, b.wide = time.Now(), false
}

// Stage ends the answers' line and names the step the run has moved on
// to (sim.StageAnalysing, sim.StageWriting) on a line of its own, so that
// seconds of analysis do not look like a bar stuck at 100%.
func (b *Bar) Stage(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == nil {
		return
	}
	if b.redraw != nil {
		b.update() // the counts that came too soon to be drawn
	}
	b.s.end("")
	b.drawn = time.Time{}
	fmt.Fprintf(b.s, "%s: %s\n", b.name, name)
}

// Finish ends the bar's line, when one was drawn, with "interrupted" when
// the run's context ended first.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == nil {
		return
	}
	suffix := ""
	if b.ctx.Err() != nil {
		suffix = " interrupted"
	}
	if !b.drawn.IsZero() && (b.redraw != nil || b.ctx.Err() != nil) {
		b.update() // with the counts that came too soon to be drawn
	}
	b.cancelRedraw()
	b.s.end(suffix)
	b.drawn = time.Time{}
}

// barRate is n counted over el per second, or "-" in the first second,
// when one early count would read as thousands per second.
func barRate(n int64, el time.Duration) string {
	if el < time.Second {
		return "-"
	}
	return strconv.FormatFloat(float64(n)/el.Seconds(), 'f', 0, 64)
}
