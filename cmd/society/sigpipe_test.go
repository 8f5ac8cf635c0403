package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A run whose stdout and stderr readers went away (`society run 2>&1 |
// head`) goes on to write its results: a write to the closed pipe fails
// instead of killing the process (SIGPIPE), which lost a run's results,
// and the calls paid for them, when the plan block filled head's lines.
func TestRunOutlivesClosedPipe(t *testing.T) {
	society, _ := binaries(t)
	dir := t.TempDir()
	file := writeScenario(t, dir, "tiny", "name = \"tiny\"\nseed = 2\n[population]\nsize = 30\n[analysis]\nbootstrap_iterations = 5\nnull_iterations = 19\n")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone before the run writes anything
	out := filepath.Join(dir, "out")
	cmd := exec.Command(society, "run", file, "--out", out, "--progress-every", "100ms")
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("run writing to a closed pipe: %v (want it to finish; killed by SIGPIPE before)", exit)
	} else if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "results.json")); err != nil {
		t.Fatalf("no results after the run: %v", err)
	}
}
