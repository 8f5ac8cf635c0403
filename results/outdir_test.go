package results

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// withManifest is the results files with the Manifest a run writes
// beside them, and extra files the run did not write.
func withManifest(results, extra map[string]string) map[string]string {
	out := map[string]string{}
	var names []string
	for name, body := range results {
		out[name] = body
		names = append(names, name)
	}
	slices.Sort(names)
	out[Manifest] = strings.Join(names, "\n") + "\n"
	for name, body := range extra {
		out[name] = body
	}
	return out
}

func TestCheckOut(t *testing.T) {
	earlier := map[string]string{"results.json": "{}\n", "scenario.toml": "name = \"tiny\"\n"}
	cases := []struct {
		name    string
		files   map[string]string // made under the directory checked
		file    bool              // the path checked is a file
		link    string            // the path checked is a symbolic link to this, relative to it
		scen    string
		force   bool
		wantErr string // "" accepts
	}{
		{"absent", nil, false, "", "tiny", false, ""},
		{"empty directory", map[string]string{}, false, "", "tiny", false, ""},
		{"earlier results without their manifest", earlier, false, "", "tiny", false, "without the list of the files the run wrote"},
		{"earlier results without their manifest, scenario not known yet", earlier, false, "", "", false, "without the list of the files the run wrote"},
		{"earlier results without their manifest with force", earlier, false, "", "tiny", true, ""},
		{"results of another scenario", earlier, false, "", "other", false, `holds the results of scenario "tiny", not "other"`},
		{"a study folder", map[string]string{"study.toml": "x", "notes.md": "y", "a/b": "c", "d": "e"}, false, "", "tiny", false, "not empty and not a results directory (it holds a/, d, notes.md, and 1 more)"},
		{"a file", nil, true, "", "tiny", false, "is a file, not a directory"},
		{"a file with force", nil, true, "", "tiny", true, ""},
		{"a study folder with force", map[string]string{"notes.md": "y"}, false, "", "tiny", true, ""},
		{"earlier results with their manifest", withManifest(earlier, nil), false, "", "tiny", false, ""},
		{"earlier results with their manifest, scenario not known yet", withManifest(earlier, nil), false, "", "", false, ""},
		{"earlier results and the user's notes", withManifest(earlier, map[string]string{"notes.md": "mine", "drafts/a.md": "x"}), false, "", "tiny", false,
			`holds earlier results of "tiny" and drafts/, notes.md, which the run did not write`},
		{"earlier results and the user's notes, scenario not known yet", withManifest(earlier, map[string]string{"notes.md": "mine"}), false, "", "", false, "notes.md, which the run did not write"},
		{"earlier results and the user's notes with force", withManifest(earlier, map[string]string{"notes.md": "mine"}), false, "", "tiny", true, ""},
		// A run through a link replaced the link by a folder; through a
		// dangling one it failed at the end, after every call was paid.
		{"a link to earlier results", nil, false, "target", "tiny", false, "is a symbolic link (to target)"},
		{"a link to earlier results with force", nil, false, "target", "tiny", true, "is a symbolic link"},
		{"a dangling link", nil, false, "nowhere", "tiny", false, "is a symbolic link (to nowhere)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			switch {
			case c.link != "":
				if c.link == "target" {
					writeTree(t, filepath.Join(filepath.Dir(dir), "target"), withManifest(earlier, nil))
				}
				if err := os.Symlink(c.link, dir); err != nil {
					t.Fatal(err)
				}
			case c.file:
				writeTree(t, filepath.Dir(dir), map[string]string{"out": "draft"})
			case c.files != nil:
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				writeTree(t, dir, c.files)
			}
			err := CheckOut(dir, c.scen, c.force)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), dir+": ") {
				t.Fatalf("got %v, want an error beginning with %s and saying %q", err, dir, c.wantErr)
			}
		})
	}
}

// TestCheckOutLeavesNoFolders: checking a directory makes no folder that
// stays behind when the run then fails before writing.
func TestCheckOutLeavesNoFolders(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results", "nested", "run-1")
	if err := CheckOut(out, "tiny", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("results/ after the check: got %v, want it absent", err)
	}
}

func TestDirScenario(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"scenario.toml": "name = \"tiny\"\nseed = 3\n"})
	if name, ok := StoredScenarioName(dir); !ok || name != "tiny" {
		t.Errorf("StoredScenarioName: got %q, %v, want tiny, true", name, ok)
	}
	if _, ok := DirScenario(dir); ok {
		t.Error("DirScenario without results.json: got ok, want not a results directory")
	}
	writeTree(t, dir, map[string]string{"results.json": "{}\n"})
	if name, ok := DirScenario(dir); !ok || name != "tiny" {
		t.Errorf("DirScenario: got %q, %v, want tiny, true", name, ok)
	}
	if _, ok := StoredScenarioName(t.TempDir()); ok {
		t.Error("StoredScenarioName of an empty directory: got ok")
	}
}

func TestDefaultOut(t *testing.T) {
	if got, want := DefaultOut("tiny-1-20260101-120000-0a1b2c3d"), filepath.Join("results", "tiny-1-20260101-120000-0a1b2c3d"); got != want {
		t.Errorf("got %q, want %q (the run id under results/)", got, want)
	}
}

// A rebuild elsewhere needs a results directory to read, and takes only a
// new or empty directory to write unless forced: results already there,
// even of the same scenario, would be lost.
func TestCheckRebuild(t *testing.T) {
	from := t.TempDir()
	earlier := map[string]string{"results.json": "{}\n", "scenario.toml": "name = \"tiny\"\n"}
	writeTree(t, from, earlier)
	if err := CheckRebuild(t.TempDir(), filepath.Join(t.TempDir(), "new"), false); !errors.Is(err, ErrBadInput) {
		t.Errorf("from without scenario.toml: got %v, want ErrBadInput", err)
	}
	if err := CheckRebuild(from, filepath.Join(t.TempDir(), "new"), false); err != nil {
		t.Errorf("new out: got %v, want no error", err)
	}
	out := t.TempDir()
	writeTree(t, out, withManifest(earlier, nil))
	err := CheckRebuild(from, out, false)
	if err == nil || errors.Is(err, ErrBadInput) || !strings.HasPrefix(err.Error(), out+": holds the results of a run of \"tiny\"") {
		t.Errorf("out with results of the same scenario: got %v, want a refusal beginning with %s", err, out)
	}
	if err := CheckRebuild(from, out, true); err != nil {
		t.Errorf("forced: got %v, want no error", err)
	}
	other := t.TempDir()
	writeTree(t, other, map[string]string{"notes.md": "y"})
	if err := CheckRebuild(from, other, false); err == nil || !strings.Contains(err.Error(), "not empty and not a results directory") {
		t.Errorf("out holding other files: got %v, want CheckOut's refusal", err)
	}
}

// TestWriteManifest: a results directory lists what the run wrote, so that
// a later run refuses to replace it once the user has put notes in it, and
// takes it while it holds the results alone.
func TestWriteManifest(t *testing.T) {
	o := pvqOutput(t, 30)
	o.Scenario = []byte("name = \"tiny\"\n")
	dir := filepath.Join(t.TempDir(), "out")
	if err := Write(t.Context(), dir, o); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, Manifest))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		if e.Name() != Manifest {
			want = append(want, entryName(e))
		}
	}
	if got := strings.Fields(string(raw)); !slices.Equal(got, want) || !slices.Contains(got, "results.json") {
		t.Fatalf("manifest lists %q, the directory holds %q", got, want)
	}
	name, ok := DirScenario(dir)
	if !ok || name != "tiny" {
		t.Fatalf("DirScenario: %q, %v", name, ok)
	}
	if err := CheckOut(dir, name, false); err != nil {
		t.Fatalf("the results alone: %v", err)
	}
	// Written again in place: the new results replace the old.
	if err := Write(t.Context(), dir, o); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.md"), []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckOut(dir, name, false); err == nil || !strings.Contains(err.Error(), "notes.md") {
		t.Fatalf("results and notes.md: got %v, want a refusal naming notes.md", err)
	}
}

// TestCleanStalePartials: the folders a killed process was building a
// results directory in are removed, and the earlier results it had moved
// aside go back in place; a live process's folders are left alone.
func TestCleanStalePartials(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no process to outlive:", err)
	}
	dead, live := cmd.Process.Pid, os.Getpid()
	host := hostToken()
	if host == "" {
		t.Skip("this machine has no name")
	}
	parent := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(parent, name)
		writeTree(t, p, map[string]string{"results.json": name})
		return p
	}
	halfWritten := mk(partialPrefix("out", host, dead) + "111")
	movedAside := mk(partialPrefix("out", host, dead) + "222.old")
	// A default directory's (a new run id each run): never written again.
	otherRun := mk(partialPrefix("study-1-20261130-221122-87546c25", host, dead) + "333")
	liveRun := mk(partialPrefix("out", host, live) + "444")
	notOurs := mk(".out.partial-notapid-555")
	// Another machine's, in a folder shared with it: its pid means
	// nothing here.
	otherHost := mk(partialPrefix("out", "0badc0de", dead) + "666")
	cleanStalePartials(parent, host)
	for _, gone := range []string{halfWritten, movedAside, otherRun} {
		if _, err := os.Stat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: got %v, want it gone", filepath.Base(gone), err)
		}
	}
	for _, kept := range []string{liveRun, notOurs, otherHost} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s: got %v, want it kept", filepath.Base(kept), err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(parent, "out", "results.json")); err != nil || string(b) != filepath.Base(movedAside) {
		t.Errorf("out/results.json: got %q, %v; want the earlier results moved back", b, err)
	}
	// With the results in place, a stale moved-aside copy is removed.
	stale := mk(partialPrefix("out", host, dead) + "555.old")
	cleanStalePartials(parent, host)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a moved-aside copy beside the results: got %v, want it gone", err)
	}
}
