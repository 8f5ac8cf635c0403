package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/society-sim/society/llm/modelserver"
)

// TestAnalysisStandsDown: an analysis service following a run whose
// orchestrator writes the results itself (run --nats --out) says that it
// stands down from the run, and why, instead of going quiet after
// "analysing run".
func TestAnalysisStandsDown(t *testing.T) {
	url := natsOnLoopback(t)
	hs, _ := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := writeScenario(t, dir, "own", openaiScenario("own", hs.URL, "distribution", 30, "max_tokens = 8")+
		"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	roles := make(chan error, 2)
	ended := make(chan struct{}) // closed when the analysis service ends
	var anaLog lockedBuffer
	go func() {
		err := run(ctx, []string{"analyze", "--nats", url, "--out", filepath.Join(dir, "results"), "--name", "svc", "--run", "own-5"}, io.Discard, &anaLog)
		close(ended)
		roles <- err
	}()
	anaLog.await(t, "analysis service", "waiting for runs", ended)
	type result struct {
		stderr string
		code   int
	}
	runDone := make(chan result, 1)
	var runLog lockedBuffer
	early := make(chan struct{}) // closed when the run or the service ends
	var once sync.Once
	go func() {
		err := run(ctx, []string{"run", file, "--nats", url, "--out", filepath.Join(dir, "own"), "--quiet", "--cache", filepath.Join(dir, "orch-cache")}, io.Discard, &runLog)
		once.Do(func() { close(early) })
		runDone <- result{runLog.String(), exitCode(err, &runLog)}
	}()
	go func() {
		select {
		case <-ended:
			once.Do(func() { close(early) })
		case <-early:
		}
	}()
	// The service follows the run before any host answers it, so it
	// cannot miss it; a run that ends first failed.
	if !strings.Contains(anaLog.await(t, "analysis service", "analysing run", early), "run=own-5") {
		t.Fatalf("run: %s", runLog.String())
	}
	go func() {
		roles <- run(ctx, []string{"agents", "--nats", url, "--name", "host", "--run", "own-5", "--cache", filepath.Join(dir, "host-cache")}, io.Discard, io.Discard)
	}()
	if r := <-runDone; r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	line := anaLog.await(t, "analysis service", "standing down from run", ended)
	for _, want := range []string{"written by another process", "run=own-5", filepath.Join(dir, "own")} {
		if !strings.Contains(line, want) {
			t.Errorf("got %q, want it to contain %q", line, want)
		}
	}
	cancel()
	for range 2 {
		if err := <-roles; err != nil {
			t.Errorf("role: %v", err)
		}
	}
}
