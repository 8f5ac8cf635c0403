package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
)

// A built binary prints the revision it was built from, says when its
// tree had uncommitted changes, and a release's -ldflags values win. The
// module is copied into a fresh git repository (a worktree's .git is a
// file, where the go command records no VCS information).
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program twice")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "society")
	if err := os.CopyFS(repo, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(repo, ".git")); err != nil {
		t.Fatal(err)
	}
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitEnv := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
	run(gitEnv, "git", "init", "-q")
	run(gitEnv, "git", "add", "-A")
	run(gitEnv, "git", "commit", "-q", "-m", "snapshot")
	head := run(gitEnv, "git", "rev-parse", "HEAD")

	bin := filepath.Join(t.TempDir(), "society")
	// Without -trimpath the dependencies come from the build cache of
	// the test's own build; only the module's packages are compiled.
	build := func(args ...string) string {
		t.Helper()
		run([]string{"GOFLAGS=-buildvcs=true"}, "go", append(append([]string{"build", "-o", bin}, args...), "./cmd/society")...)
		var out bytes.Buffer
		cmd := exec.CommandContext(context.Background(), bin, "--version")
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := build(); !strings.Contains(got, "revision "+head+",") || strings.Contains(got, "modified") ||
		!strings.Contains(got, ", committed ") || strings.Contains(got, ", built ") {
		t.Errorf("clean tree: got %q, want revision %s, not modified, its commit time and no build time", got, head)
	}
	// A tree with uncommitted changes, built with a release's values.
	if err := os.WriteFile(filepath.Join(repo, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := build("-ldflags", "-X main.version=v9.8.7 -X main.revision=release-rev -X main.buildTime=2026-11-30T10:00:00Z")
	if !strings.HasPrefix(got, "society v9.8.7, revision release-rev (modified") || !strings.Contains(got, ", built 2026-11-30T10:00:00Z") {
		t.Errorf("release build of a changed tree: got %q, want version v9.8.7, revision release-rev (modified), 2026-11-30T10:00:00Z", got)
	}
}

// A build without VCS information says so, rather than invent a revision.
func TestVersionWithoutRevision(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	v := programVersion()
	if !strings.HasPrefix(out.String(), "society "+v.Version+", revision "+v.Revision) {
		t.Errorf("got %q, want the version and revision of the test binary", out.String())
	}
	if s := versionLine(analysis.Build{Version: "devel", Revision: "unknown"}); !strings.Contains(s, "no VCS revision recorded") {
		t.Errorf("got %q, want it said that no revision was recorded", s)
	}
	if err := run(context.Background(), []string{"version", "x"}, &out, &out); err == nil {
		t.Error("version x: got no error, want a usage error")
	}
}
