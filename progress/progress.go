// Package progress shows a run's progress on stderr: a one-line bar
// redrawn on a terminal (Bar), which shares the terminal with the log
// lines through a Screen, or elsewhere a line every period, as text
// or as JSON for tools (Log). Both are sim.Observers fed by the engine's
// answer counts, and sim.PrefetchObservers, so that the requests fetched
// ahead of a phase's answers show as progress; Log is a sim.Stager too, so
// the analysis and the writing after the answers do not look like a hang. It owns the --progress and
// --progress-every flags (Options) and the choice between bar and lines.
//
// It is the terminal's adapter: it may import the domain packages (sim
// among them), never the other adapters (bus, llm, metrics) nor NATS,
// the OpenAI client or Prometheus. It only reads counts the run hands it.
package progress

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Display modes of --progress.
const (
	Auto  = "auto"  // a bar on a terminal, lines otherwise
	Lines = "lines" // a line every --progress-every
	JSON  = "json"  // a JSON object every --progress-every
)

// Options say how a run shows its progress on stderr. Like bus.Flags they
// live with the flags that set them.
type Options struct {
	Mode  string        // Auto, Lines or JSON
	Every time.Duration // the period of Lines and JSON
}

// AddFlags defines --progress and --progress-every on fs.
func AddFlags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Mode, "progress", Auto, "progress display: auto (a bar on a terminal, lines otherwise), lines, or json (one object a line)")
	fs.DurationVar(&o.Every, "progress-every", 10*time.Second, "how often a progress line is written, when stderr is not a terminal or with --progress lines|json")
	return o
}

// Check refuses modes and periods that cannot apply; the error names the
// flag.
func (o Options) Check() error {
	switch o.Mode {
	case Auto, Lines, JSON:
	default:
		return fmt.Errorf("--progress: want auto, lines or json, got %q", o.Mode)
	}
	if o.Every < 100*time.Millisecond {
		return fmt.Errorf("--progress-every: must be at least 100ms, got %v", o.Every)
	}
	return nil
}

// Display chooses how progress shows on w: a bar when the mode is Auto and
// w is a terminal (bar is w, for NewBar: a Screen that the process's log
// lines share, so that they do not run into the bar), lines otherwise
// (lines is not nil, not yet started).
func (o Options) Display(w io.Writer) (bar io.Writer, lines *Log) {
	if o.Mode == Auto && IsTerminal(w) {
		return w, nil
	}
	return nil, NewLog(w, o.Mode == JSON, o.Every)
}

// IsTerminal reports whether w, or the writer of Screen w, is a character
// device (a terminal), where a progress bar helps; in files and pipes it
// would only add noise.
func IsTerminal(w io.Writer) bool {
	if s, ok := w.(*Screen); ok {
		w = s.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
