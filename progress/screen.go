package progress

import (
	"io"
	"sync"
)

// Screen is a terminal's stderr as the bar and every other writer share
// it (log lines, messages): a line written while the bar is drawn starts
// on a line of its own, and once that line ends the bar is drawn again
// below it, so that the two never run together. A Bar drawn on a Screen
// (NewBar) goes through its lock; so does whatever is written to it.
type Screen struct {
	w io.Writer
	// width is the terminal's columns now (0: unknown, or not a
	// terminal); a bar line is cut to fit, since a line longer than the
	// terminal wraps and "\r" then redraws only its last row.
	width func() int

	mu sync.Mutex
	// bar is the bar's line as last drawn, without its "\r" ("": none),
	// on the screen's last line unless open: the last write of another
	// writer left its line unfinished, and the bar waits for it to end.
	bar  string
	open bool
}

// NewScreen is w shared by a bar and other writers.
func NewScreen(w io.Writer) *Screen { return &Screen{w: w, width: func() int { return termWidth(w) }} }

// fit is line cut to leave room for tail within the terminal's width, one
// column spare (a line that fills the last column wraps on some
// terminals).
func (s *Screen) fit(line string, tail int) string {
	w := s.width()
	if w <= 0 {
		return line
	}
	if n := w - 1 - tail; len(line) > n {
		return line[:max(n, 0)]
	}
	return line
}

// Write writes p, a log line or a message. With the bar drawn, p starts
// on a new line, and the bar is drawn again once p ends its line.
func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if s.bar != "" && !s.open {
		if _, err := io.WriteString(s.w, "\n"); err != nil {
			return 0, err
		}
	}
	n, err := s.w.Write(p)
	s.open = p[len(p)-1] != '\n'
	if err == nil && s.bar != "" && !s.open {
		_, err = io.WriteString(s.w, "\r"+s.bar)
	}
	return n, err
}

// draw draws the bar's line in place of the one drawn before; while
// another writer's line is unfinished, once it ends.
func (s *Screen) draw(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line = s.fit(line, 0)
	s.bar = line
	if !s.open {
		io.WriteString(s.w, "\r"+line)
	}
}

// end ends the bar's line, when one is drawn, with suffix (after another
// writer's unfinished line, on a line of its own).
func (s *Screen) end(suffix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar == "" {
		return
	}
	if s.open {
		io.WriteString(s.w, "\n\r"+s.bar)
		s.open = false
	}
	if bar := s.fit(s.bar, len(suffix)); bar != s.bar {
		// Redrawn shorter, so that the suffix fits on the bar's row.
		io.WriteString(s.w, "\r"+bar+suffix+"\x1b[K\n")
	} else {
		io.WriteString(s.w, suffix+"\n")
	}
	s.bar = ""
}

// ScreenOf is w as a Screen: w itself when it is one, nil for nil. A
// command that writes to w from several goroutines (log lines, progress
// lines, a bar) writes to ScreenOf(w), whose lock keeps their writes whole.
func ScreenOf(w io.Writer) *Screen {
	switch w := w.(type) {
	case nil:
		return nil
	case *Screen:
		return w
	default:
		return NewScreen(w)
	}
}
