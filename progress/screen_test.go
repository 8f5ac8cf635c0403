package progress

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/society-sim/society/sim"
)

// TestScreenLogUnderBar: a log line written while the bar is drawn starts
// on a line of its own and the bar is drawn again below it; an
// interrupted bar then ends its line. A message written in two parts is
// not cut by the bar.
func TestScreenLogUnderBar(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	s := NewScreen(&buf)
	b := NewBar(ctx, s, "")
	b.Start(sim.Layout{Name: "study"})
	b.Batch(nil, sim.Counts{Expected: 4, Valid: 1})
	log := slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.Warn("interrupted")
	fmt.Fprint(s, "first half, ")
	b.Batch(nil, sim.Counts{Expected: 4, Valid: 4}) // waits for the message to end its line
	fmt.Fprint(s, "second half\n")
	cancel()
	b.Finish()
	bar1 := "study [=======                       ]  25.0% 1/4 answers"
	bar4 := "study [==============================] 100.0% 4/4 answers"
	lines := strings.Split(buf.String(), "\n")
	want := []string{"\r" + bar1, "level=WARN msg=interrupted", "\r" + bar1, "first half, second half", "\r" + bar4, ""}
	if len(lines) != len(want) {
		t.Fatalf("got %q, want %d lines like %q", buf.String(), len(want), want)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: got %q, want it to start with %q", i, lines[i], w)
		}
	}
	if !strings.HasSuffix(buf.String(), " interrupted\n") {
		t.Errorf("got %q, want the bar's line ended with \" interrupted\"", buf.String())
	}
}
