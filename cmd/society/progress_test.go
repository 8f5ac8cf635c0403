package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgressRun: a run whose stderr is not a terminal writes progress
// lines, with visible steps for the analysis and the writing.
func TestProgressRun(t *testing.T) {
	file := writeScenario(t, t.TempDir(), "tiny", "name = \"tiny\"\nseed = 2\n[population]\nsize = 30\n[analysis]\nbootstrap_iterations = 5\nnull_iterations = 19\n")
	for _, mode := range []string{"auto", "json"} {
		t.Run(mode, func(t *testing.T) {
			// stderr is written from several goroutines, as a file may be.
			var errb lockedBuffer
			err := run(context.Background(), []string{"run", file, "--out", filepath.Join(t.TempDir(), "out"), "--progress", mode}, io.Discard, &errb)
			code, stderr := exitCode(err, &errb), errb.String()
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range []string{"analysing", "writing results", "ended"} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr: got %q, want a line with %q", stderr, w)
				}
			}
			if mode == "json" && !strings.Contains(stderr, `"phase":"writing results"`) {
				t.Errorf("stderr: got %q, want JSON lines", stderr)
			}
		})
	}
	if _, stderr, code := runCLI(t, "run", "quickstart", "--progress", "bar"); code != 2 || !strings.Contains(stderr, "--progress") {
		t.Errorf("--progress bar: got exit %d, %q; want 2 naming --progress", code, stderr)
	}
}
