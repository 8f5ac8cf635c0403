package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

var update = flag.Bool("update", false, "rewrite the golden results under testdata/golden")

// TestGoldenResults pins a whole results directory: a small study (two
// strategies, two questionnaires, three game rounds) run end to end must
// write exactly the files it wrote when the golden copy was made, byte for
// byte. results.json is kept whole, for a readable diff; every file is
// pinned by its SHA-256 in SHA256SUMS. Only the run block (its times, host
// and build: what tells two runs of one study apart) is cut out of
// results.json and report.md first (withoutRun); nothing else is left
// out. Rewrite with -update after a change meant to alter results.
func TestGoldenResults(t *testing.T) {
	const name = "small"
	golden := filepath.Join("testdata", "golden", name)
	out := filepath.Join(t.TempDir(), "out")
	if stdout, stderr, code := runCLI(t, "run", filepath.Join("testdata", "golden", name+".toml"), "--out", out, "--quiet",
		"--cache", t.TempDir()); code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	withoutRun(t, out)
	sums, err := checksums(out)
	if err != nil {
		t.Fatal(err)
	}
	results, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(golden, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(golden, "SHA256SUMS"), sums, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(golden, "results.json"), results, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	wantResults, err := os.ReadFile(filepath.Join(golden, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(results, wantResults) {
		t.Errorf("results.json differs from %s:\n%s", golden, firstDiff(results, wantResults))
	}
	wantSums, err := os.ReadFile(filepath.Join(golden, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	got, want := strings.Split(string(sums), "\n"), strings.Split(string(wantSums), "\n")
	for _, line := range want {
		if !slices.Contains(got, line) {
			t.Errorf("want %q, got another file or none", line)
		}
	}
	for _, line := range got {
		if !slices.Contains(want, line) {
			t.Errorf("got %q, not in the golden SHA256SUMS", line)
		}
	}
}

// withoutRun cuts the run block out of the results.json and report.md of
// dir, after checking that both have it.
func withoutRun(t *testing.T, dir string) {
	t.Helper()
	cut := func(name, from, to string) {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, []byte(from))
		if i < 0 {
			t.Fatalf("%s: no run block (%q)", name, from)
		}
		j := bytes.Index(data[i+len(from):], []byte(to))
		if j < 0 {
			t.Fatalf("%s: run block without its end (%q)", name, to)
		}
		data = append(data[:i:i], data[i+len(from)+j+len(to):]...)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cut("results.json", "\n  \"run\": {\n", "\n  },") // as results.WithoutRun
	cut("report.md", "## Run\n\n", "\n\n")
}

// checksums lists every file of dir as sha256sum does, sorted by name.
func checksums(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		s := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(s[:]), e.Name())
	}
	return b.Bytes(), nil
}

// firstDiff shows the first line where got and want part.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "(same lines)"
}

// TestGoldenResultsInMemory: the bench's no-bus baseline (the same engine,
// its tasks run in memory) plays the same game, memories and all, and
// writes the same results.json as the run over NATS.
func TestGoldenResultsInMemory(t *testing.T) {
	sc, err := scenarios.Load(filepath.Join("testdata", "golden", "small.toml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	e, done := newEngine(t.Context(), runConfig{CacheDir: t.TempDir()})
	defer done()
	e.Open = sim.OpenLocal
	if _, err := e.Run(t.Context(), sc, out); err != nil {
		t.Fatal(err)
	}
	withoutRun(t, out)
	got, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "golden", "small", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("results.json in memory differs from the golden one:\n%s", firstDiff(got, want))
	}
}
