package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// scrapes counts the scrapes Prometheus makes of endpoints through proxies
// the test puts in front of them. Prometheus scrapes a target one request
// at a time and commits what a scrape returned before it begins the next
// one, so the start of a scrape is the event after which every earlier
// scrape of that target can be queried.
type scrapes struct {
	mu    sync.Mutex
	begun int
	grew  chan struct{} // closed at the next scrape; nil when nobody waits
}

// proxy returns the address of a proxy that forwards every request to the
// endpoint at target (host:port, which need not listen yet: Prometheus
// then records the target down) and counts it as a scrape. The proxy
// stops when the test ends.
func (s *scrapes) proxy(t *testing.T, target string) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.begun++
		if s.grew != nil {
			close(s.grew)
			s.grew = nil
		}
		s.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.Listener.Addr().String()
}

// count returns the number of scrapes begun so far.
func (s *scrapes) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.begun
}

// await waits until at least n scrapes have begun, however long a busy
// machine takes; it returns false when the test's deadline comes first.
func (s *scrapes) await(ctx context.Context, n int) bool {
	for {
		s.mu.Lock()
		if s.begun >= n {
			s.mu.Unlock()
			return true
		}
		if s.grew == nil {
			s.grew = make(chan struct{})
		}
		grew := s.grew
		s.mu.Unlock()
		select {
		case <-grew:
		case <-ctx.Done():
			return false
		}
	}
}
