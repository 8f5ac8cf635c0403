package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/society-sim/society/llm/modelserver"
)

// inFlightGate stands before a model server. Armed, it holds every
// completion request until want of them are open at once, then lets
// every request through: a client that keeps want requests in flight
// opens it at once, one that keeps fewer leaves its requests waiting
// until the gate gives up (a failing test ends instead of hanging).
type inFlightGate struct {
	next   http.Handler
	want   int
	giveUp time.Duration

	armed  atomic.Bool
	mu     sync.Mutex
	open   int
	peak   int
	opened chan struct{}
	once   sync.Once
}

func newInFlightGate(next http.Handler, want int, giveUp time.Duration) *inFlightGate {
	return &inFlightGate{next: next, want: want, giveUp: giveUp, opened: make(chan struct{})}
}

// arm starts holding requests; it returns a stop for the give-up timer.
func (g *inFlightGate) arm() (stop func()) {
	g.armed.Store(true)
	t := time.AfterFunc(g.giveUp, func() { g.once.Do(func() { close(g.opened) }) })
	return func() { t.Stop() }
}

// peakOpen is the most completion requests open at once while armed.
func (g *inFlightGate) peakOpen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

func (g *inFlightGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.armed.Load() || !strings.HasSuffix(r.URL.Path, "completions") {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	g.open++
	g.peak = max(g.peak, g.open)
	if g.open >= g.want {
		g.once.Do(func() { close(g.opened) })
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.open--
		g.mu.Unlock()
	}()
	select {
	case <-g.opened:
	case <-r.Context().Done():
		return
	}
	g.next.ServeHTTP(w, r)
}

// TestAgentHostFetchesAhead: an agent host fetches the distinct
// questions of the tasks it takes ahead of its agents, at the model's
// concurrency, as a single process fetches a phase's: in distribution
// mode the model server sees min(concurrency, distinct prompts) requests
// at once (without the fetch ahead, one per persona: the agents' current
// questions), the run makes no more calls than a single process, and the
// answers are the single process's.
func TestAgentHostFetchesAhead(t *testing.T) {
	const concurrency = 32 // the scenario's: above its personas, below its prompts
	ms := syntheticModelServer(t, modelserver.Options{Seed: 4})
	gate := newInFlightGate(ms, concurrency, 30*time.Second)
	hs := httptest.NewServer(gate)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	file := writeScenario(t, dir, "ahead", openaiScenario("ahead", hs.URL, "distribution", 60, "max_tokens = 8")+
		"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 3\n")
	if !strings.Contains(string(readFile(t, file)), fmt.Sprintf("concurrency = %d", concurrency)) {
		t.Fatalf("the scenario's concurrency is not %d", concurrency)
	}

	// The single process, ungated: the answers to match and its calls.
	if _, stderr, code := runCLI(t, "run", file, "--out", filepath.Join(dir, "single"), "--quiet", "--cache", filepath.Join(dir, "single-cache")); code != 0 {
		t.Fatalf("single-process run: exit %d\n%s", code, stderr)
	}
	singleCalls := ms.Stats().Requests

	url := natsOnLoopback(t)
	stop := gate.arm()
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	roles := make(chan error, 2)
	go func() {
		roles <- run(ctx, []string{"agents", "--nats", url, "--name", "host", "--run", "ahead-5", "--cache", filepath.Join(dir, "host-cache")}, io.Discard, io.Discard)
	}()
	go func() {
		roles <- run(ctx, []string{"analyze", "--nats", url, "--out", filepath.Join(dir, "dist"), "--run", "ahead-5"}, io.Discard, io.Discard)
	}()
	_, stderr, code := runCLI(t, "run", file, "--nats", url, "--quiet", "--cache", filepath.Join(dir, "orch-cache"))
	cancel()
	for range 2 {
		if err := <-roles; err != nil {
			t.Errorf("role: %v", err)
		}
	}
	if code != 0 {
		t.Fatalf("distributed run: exit %d\n%s", code, stderr)
	}
	if peak := gate.peakOpen(); peak < concurrency {
		t.Errorf("the model server saw at most %d requests at once, want %d (the model's concurrency)", peak, concurrency)
	}
	if calls := ms.Stats().Requests - singleCalls; calls != singleCalls {
		t.Errorf("the distributed run made %d calls, the single process %d", calls, singleCalls)
	}
	sameAnswers(t, filepath.Join(dir, "single"), filepath.Join(dir, "dist", "ahead-5"))
}
