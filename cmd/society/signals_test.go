package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/progress"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestInterruptDuringAnalysis: an interrupt that arrives while the answers
// are analysed (here a bootstrap of a million resamples) stops the run
// there: it fails as interrupted and writes nothing.
func TestInterruptDuringAnalysis(t *testing.T) {
	sc, err := scenarios.Parse([]byte(tinyScenario), "tiny.toml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Analysis.BootstrapIterations = 1_000_000
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = runScenario(ctx, runConfig{Scenario: sc, Out: out, CacheDir: t.TempDir(), Observer: answeredObserver(cancel)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var e bytes.Buffer
	if code := exitCode(err, &e); code == 0 || !strings.Contains(e.String(), "interrupted") {
		t.Errorf("got exit status %d, message %q; want a failure saying interrupted", code, e.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an interrupted run wrote results")
	}
}

// TestSecondSignalExitsAtOnce: the first signal cancels the command, the
// second exits with status 130 without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var e bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchSignals(sigs, cancel, &e, func(code int) { exited <- code })
	}()
	sigs <- syscall.SIGINT
	<-ctx.Done()
	select {
	case code := <-exited:
		t.Fatalf("exited with %d after one signal", code)
	default:
	}
	sigs <- syscall.SIGTERM
	if code := <-exited; code != 130 {
		t.Errorf("got exit status %d, want 130", code)
	}
	<-done
	if !strings.Contains(e.String(), "interrupt again") {
		t.Errorf("got message %q, want it to say a second interrupt exits at once", e.String())
	}
}

// answeredObserver calls fn once every answer is in: the loop's last
// word before the analysis.
type answeredObserver func()

func (f answeredObserver) Start(sim.Layout)     {}
func (f answeredObserver) Phase(sim.PhaseStart) {}
func (f answeredObserver) Batch(_ *agent.Batch, n sim.Counts) {
	if n.Expected > 0 && n.Valid+n.Invalid >= n.Expected {
		f()
	}
}

// TestInterruptWarnBelowBar: the warning of an interrupt that comes while
// the terminal's bar is drawn starts on a line of its own, and the bar,
// drawn again below it, ends saying the run was interrupted: main gives
// the bar and the log lines one Screen.
func TestInterruptWarnBelowBar(t *testing.T) {
	var e bytes.Buffer
	stderr := progress.NewScreen(&e)
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	bar := progress.NewBar(ctx, stderr, "")
	bar.Start(sim.Layout{Name: "study"})
	bar.Batch(nil, sim.Counts{Expected: 4, Valid: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchSignals(sigs, cancel, stderr, func(int) {})
	}()
	sigs <- syscall.SIGINT
	<-ctx.Done() // the warning is written before the cancel
	bar.Finish()
	close(sigs)
	<-done
	lines := strings.Split(e.String(), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "\rstudy [") || !strings.Contains(lines[1], "level=WARN msg=\"interrupted: stopping") ||
		!strings.HasPrefix(lines[2], "\rstudy [") || !strings.HasSuffix(lines[2], " interrupted") || lines[3] != "" {
		t.Errorf("got %q, want the bar, the warning on a line of its own, then the bar ended with \"interrupted\"", e.String())
	}
}
