package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
)

// TestMDSMethodSetting: analysis.mds chooses the scaling of the Values
// Similarity, and every output says which was used: results.json's mds
// field, report.md and the console. Classical is the default.
func TestMDSMethodSetting(t *testing.T) {
	dir := t.TempDir()
	run := func(name, mds string) (analysis.Results, string, string) {
		t.Helper()
		path := filepath.Join(dir, name+".toml")
		text := "name = \"" + name + "\"\n[population]\nsize = 300\nstrategies = [\"uniform\", \"h-np\"]\n" +
			"[[questionnaires]]\nname = \"pvq40\"\n[analysis]\nbootstrap_iterations = 5\nbootstrap_size = 100\nnull_iterations = 19\n" + mds
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		stdout, stderr, code := runCLI(t, "run", path, "--out", out, "--cache", filepath.Join(dir, "cache"), "--quiet")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		report, err := os.ReadFile(filepath.Join(out, "report.md"))
		if err != nil {
			t.Fatal(err)
		}
		return readResults(t, out), string(report), stdout
	}
	classical, creport, cconsole := run("classical", "")
	smacof, sreport, sconsole := run("smacof", "mds = \"smacof\"\n")
	if classical.MDS != analysis.Classical || smacof.MDS != analysis.SMACOF {
		t.Errorf("results.json mds: got %q and %q, want classical (the default) and smacof", classical.MDS, smacof.MDS)
	}
	for _, c := range []struct{ name, text, want string }{
		{"classical report.md", creport, "classical MDS (the default"},
		{"classical console", cconsole, "classical MDS (the default"},
		{"smacof report.md", sreport, "metric SMACOF"},
		{"smacof console", sconsole, "metric SMACOF"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s does not say %q", c.name, c.want)
		}
	}
	if len(classical.ValueStructure) == 0 || len(classical.ValueStructure) != len(smacof.ValueStructure) {
		t.Fatalf("got %d and %d value-structure rows", len(classical.ValueStructure), len(smacof.ValueStructure))
	}
	differ := 0
	for i, c := range classical.ValueStructure {
		s := smacof.ValueStructure[i]
		if c.Strategy != s.Strategy || c.Reference != s.Reference {
			t.Fatalf("row %d: %s/%s vs %s/%s", i, c.Strategy, c.Reference, s.Strategy, s.Reference)
		}
		if math.Abs(float64(c.ValuesSimilarity-s.ValuesSimilarity)) > 1e-4 {
			differ++
		}
	}
	if differ == 0 {
		t.Error("smacof gives the same similarities as classical MDS on every row")
	}
}
