package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
)

// TestLogLinesOneFormat runs the built program against a model whose
// reply cache another process holds: the cache's warning, logged by a
// package given no logger (slog's default), reads as every other log line
// of the program (slog text: time=… level=… msg=…), and so does every
// line a quiet run writes on stderr.
func TestLogLinesOneFormat(t *testing.T) {
	soc, _ := binaries(t)
	hs, _ := testModelServer(t, modelserver.Options{})
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	held, err := llm.OpenFileStore(cache, llm.FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	file := writeScenario(t, dir, "logs", fmt.Sprintf(`name = "logs"
[population]
size = 40
[[models]]
name = "m"
base_url = %q
model = "org/some-model"
[[questionnaires]]
name = "pvq40"
[analysis]
bootstrap_iterations = 5
null_iterations = 19
`, hs.URL+"/v1"))
	cmd := exec.Command(soc, "run", file, "--out", filepath.Join(dir, "out"), "--cache", cache, "--quiet")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `level=WARN msg="model cache in use by another process`) {
		t.Errorf("stderr lacks the cache's warning as a key=value line:\n%s", stderr.String())
	}
	// The model server accepts any name: no warning that it lacks it.
	if strings.Contains(stderr.String(), "does not list the model") {
		t.Errorf("stderr warns of a model the server serves:\n%s", stderr.String())
	}
	for line := range strings.Lines(stderr.String()) {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("stderr line not in the log format: %q", line)
		}
	}
}
