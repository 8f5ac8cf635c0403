package main

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/internal/testwait"
)

// The tests wait on events, never on a clock: a line a process prints, a
// message on the bus, a request a server receives. However long a busy
// machine makes an event take, the test binary's deadline (go test
// -timeout) bounds the wait, and a missing event fails the test with what
// was seen.

var boundedContext = testwait.BoundedContext

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
// at a time and stores what a scrape returned (or, for a failed scrape,
// marks the target's series stale) before it begins the next one: once two
// scrapes of a target have begun after a moment, every scrape of it that
// began by then, whose timestamp can be that moment's, is stored.
type scrapes struct {
	mu    sync.Mutex
	begun map[string]int // by proxy address
	grew  chan struct{}  // closed at the next scrape; nil when nobody waits
}

// proxy returns the address of a proxy that forwards every request to the
// endpoint at target (host:port, which need not listen yet: Prometheus
// then records the target down) and counts it as a scrape. The proxy
// stops when the test ends.
func (s *scrapes) proxy(t *testing.T, target string) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	var addr string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.begun[addr]++
		if s.grew != nil {
			close(s.grew)
			s.grew = nil
		}
		s.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	addr = hs.Listener.Addr().String()
	s.mu.Lock()
	if s.begun == nil {
		s.begun = map[string]int{}
	}
	s.begun[addr] = 0
	s.mu.Unlock()
	return addr
}

// counts returns the scrapes begun so far by proxy address.
func (s *scrapes) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.begun)
}

// await waits until n more scrapes than in since have begun through each
// proxy, however long a busy machine takes; it returns false when ctx ends
// first.
func (s *scrapes) await(ctx context.Context, since map[string]int, n int) bool {
	for {
		s.mu.Lock()
		done := true
		for addr, c := range s.begun {
			done = done && c >= since[addr]+n
		}
		if done {
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
