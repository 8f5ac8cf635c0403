package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests wait on events, never on a clock: a line a process prints, a
// message on the bus, a request a server receives. However long a busy
// machine makes an event take, the test binary's deadline (go test
// -timeout) bounds the wait, and a missing event fails the test with what
// was seen.

// boundedContext is t.Context ended a little before the test binary's
// deadline (the lesser of 30 s and half the time left), so that a wait
// that would never end fails its test, saying what it waited for, instead
// of the binary panicking at its timeout. Without a deadline (-timeout 0)
// it is t.Context.
func boundedContext(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		return t.Context()
	}
	grace := min(30*time.Second, time.Until(d)/2)
	ctx, cancel := context.WithDeadline(t.Context(), d.Add(-grace))
	t.Cleanup(cancel)
	return ctx
}

// lockedBuffer collects output written from other goroutines (a run, a
// child process's output copier) and wakes whoever waits for a line in it.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{} // closed at the next write; nil when nobody waits
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.grew != nil {
		close(w.grew)
		w.grew = nil
	}
	return w.buf.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// next returns what was written so far and a channel closed at the next
// write.
func (w *lockedBuffer) next() (string, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.grew == nil {
		w.grew = make(chan struct{})
	}
	return w.buf.String(), w.grew
}

// await returns the first line written that contains want. It fails the
// test when the writer ends first (ended is closed once nothing more will
// be written) or when the test's deadline comes; what names the writer.
func (w *lockedBuffer) await(t *testing.T, what, want string, ended <-chan struct{}) string {
	t.Helper()
	ctx := boundedContext(t)
	for {
		text, grew := w.next()
		if i := strings.Index(text, want); i >= 0 {
			start := strings.LastIndexByte(text[:i], '\n') + 1
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			return text[start : i+end]
		}
		select {
		case <-grew:
		case <-ended:
			if text := w.String(); strings.Contains(text, want) {
				continue
			}
			t.Fatalf("%s ended without printing %q:\n%s", what, want, tail(w.String()))
		case <-ctx.Done():
			t.Fatalf("%s printed no %q before the test ended:\n%s", what, want, tail(w.String()))
		}
	}
}
