package progress

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
)

// Bar draws a one-line bar on a terminal as a run's observer; with a nil
// writer it does nothing. A run after another (the main run after its
// calibration) starts a new line. Its methods are called from one
// goroutine at a time (see sim.Observer).
type Bar struct {
	sim.NoObserver
	w     io.Writer
	label string // "" takes the run's scenario name
	name  string
	start time.Time
	drawn time.Time // zero: nothing drawn on the line
}

// barEvery is how often the bar is redrawn at most: a terminal needs no
// more, and a large run stores thousands of batches a second.
const barEvery = 100 * time.Millisecond

// NewBar is a bar drawn on w (nil: none), labelled label ("": the name of
// each run's scenario).
func NewBar(w io.Writer, label string) *Bar {
	return &Bar{w: w, label: label, name: label, start: time.Now()}
}

// Start begins the bar of a run.
func (b *Bar) Start(l sim.Layout) {
	b.Finish()
	b.start, b.name = time.Now(), b.label
	if b.name == "" {
		b.name = l.Name
	}
}

// Batch redraws the bar, at most every barEvery and when the answers are
// all in.
func (b *Bar) Batch(_ *agent.Batch, n sim.Counts) {
	done := n.Valid + n.Invalid
	if time.Since(b.drawn) >= barEvery || done >= n.Expected {
		b.update(done, n.Expected)
	}
}

func (b *Bar) update(done, total int64) {
	if b.w == nil || total == 0 {
		return
	}
	const width = 30
	f := float64(done) / float64(total)
	full := int(f * width)
	el := time.Since(b.start).Seconds()
	rate := float64(done) / max(el, 1e-9)
	fmt.Fprintf(b.w, "\r%s [%s%s] %5.1f%% %d/%d answers  %.0f/s ", b.name,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*f, done, total, rate)
	b.drawn = time.Now()
}

// Finish ends the bar's line, when one was drawn.
func (b *Bar) Finish() {
	if b.w != nil && !b.drawn.IsZero() {
		fmt.Fprintln(b.w)
		b.drawn = time.Time{}
	}
}
