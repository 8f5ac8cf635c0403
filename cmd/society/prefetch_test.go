package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// gatedServer holds every completion request until target requests are in
// flight at once (or their client gives them up), then lets the model
// server answer them; peak is the most ever in flight.
type gatedServer struct {
	next     http.Handler
	target   int64
	inFlight atomic.Int64
	peak     atomic.Int64
	once     sync.Once
	reached  chan struct{}
}

func (g *gatedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/completions") {
		g.next.ServeHTTP(w, r)
		return
	}
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if n >= g.target {
		g.once.Do(func() { close(g.reached) })
	}
	select {
	case <-g.reached:
	case <-r.Context().Done():
		return
	}
	g.next.ServeHTTP(w, r)
}

// beforeDeadline ends a little before the test's deadline, so that a run
// stuck below the peak reports what it saw instead of the test panicking.
func beforeDeadline(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		c, cancel := context.WithDeadline(ctx, d.Add(-30*time.Second))
		t.Cleanup(cancel)
		ctx = c
	}
	return ctx
}

// TestPrefetchPeakInFlight: in distribution mode the agents walk their
// items one after another, so without the loop's prefetch at most one
// request per persona is in flight; with it, a run keeps the model's
// concurrency (32) in flight, here below the phase's distinct prompts
// (11 personas x 12 items). The server answers nothing until the peak is
// reached: a run that never reaches it never ends.
func TestPrefetchPeakInFlight(t *testing.T) {
	const concurrency = 32
	_, ms := testModelServer(t, modelserver.Options{Seed: 4})
	g := &gatedServer{next: ms, target: concurrency, reached: make(chan struct{})}
	hs := httptest.NewServer(g)
	defer hs.Close()
	// Requests held when the run failed are let go, so that the server
	// closes.
	defer g.once.Do(func() { close(g.reached) })
	dir := t.TempDir()
	sc, err := scenarios.Load(writeScenario(t, dir, "peak", openaiScenario("peak", hs.URL, "distribution", 300, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = runScenario(beforeDeadline(t), runConfig{Scenario: sc, Out: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache")})
	if peak := g.peak.Load(); err != nil || peak != concurrency {
		t.Fatalf("got peak %d requests in flight (run error %v), want %d", peak, err, concurrency)
	}
}

// TestPrefetchSameAnswers: the loop's prefetch changes the order of the
// requests, not the answers, in either query mode (the request seed makes
// the server's answers a function of the request alone).
func TestPrefetchSameAnswers(t *testing.T) {
	for _, mode := range []string{"distribution", "sample"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			answers := func(name string, noPrefetch bool) []byte {
				t.Helper()
				hs, _ := testModelServer(t, modelserver.Options{Seed: 4})
				sc, err := scenarios.Load(writeScenario(t, dir, name, openaiScenario("same", hs.URL, mode, 200, "seed = 3")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n"))
				if err != nil {
					t.Fatal(err)
				}
				e, done := newEngine(t.Context(), runConfig{CacheDir: filepath.Join(dir, name+"-cache")})
				defer done()
				e.NoPrefetch = noPrefetch
				out := filepath.Join(dir, name)
				if _, err := e.Run(t.Context(), sc, out); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(out, "answers.csv"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			with, without := answers("with", false), answers("without", true)
			if !bytes.Equal(with, without) || len(with) == 0 {
				t.Errorf("answers.csv with prefetch differs from without:\n%s", firstDiff(with, without))
			}
		})
	}
}

// prefetchEvents keeps what a run's fetch ahead told its observers.
type prefetchEvents struct {
	sim.NoObserver
	mu  sync.Mutex
	got []sim.Prefetching
}

func (e *prefetchEvents) Prefetch(p sim.Prefetching) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, p)
}

// TestPrefetchCountsServerRequests: in sample mode the agents take many of
// the fetch's queued segments over; the requests progress shows are every
// request the server answered, and their total the plan's from the first
// count (a plan made after the agents began once said 198 of 216).
func TestPrefetchCountsServerRequests(t *testing.T) {
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	sc, err := scenarios.Load(writeScenario(t, dir, "count", openaiScenario("count", hs.URL, "sample", 200, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &prefetchEvents{}
	if _, err := runScenario(t.Context(), runConfig{Scenario: sc, Out: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache"), Observer: ev}); err != nil {
		t.Fatal(err)
	}
	served := ms.Stats().Requests
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.got) == 0 {
		t.Fatal("no progress of the fetch ahead was told")
	}
	for i, p := range ev.got {
		if p.Expected != served {
			t.Fatalf("count %d: %+v; want %d requests expected, as the server received", i, p, served)
		}
	}
	if last := ev.got[len(ev.got)-1]; !last.Ended || last.Done != served {
		t.Errorf("last count %+v; want the fetch ended with the server's %d requests done", last, served)
	}
}
