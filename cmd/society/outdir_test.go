package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tinyScenario is a valid study small enough to run in well under a second.
const tinyScenario = `name = "tiny"
seed = 3
[population]
size = 60
[[questionnaires]]
name = "pvq40"
items = 12
[analysis]
bootstrap_iterations = 5
bootstrap_size = 30
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
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

func checkFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

// TestOutRefusesStudyFolder: --out naming the folder that holds the study
// itself must not delete it.
func TestOutRefusesStudyFolder(t *testing.T) {
	studies := filepath.Join(t.TempDir(), "studies")
	files := map[string]string{"study.toml": tinyScenario, "notes.md": "my notes\n", "old-run/answers.csv": "a,b\n"}
	writeFiles(t, studies, files)
	_, stderr, code := runCLI(t, "run", filepath.Join(studies, "study.toml"), "--out", studies, "--quiet")
	if code != 2 {
		t.Fatalf("got exit status %d, want 2 (stderr: %s)", code, stderr)
	}
	if !strings.Contains(stderr, "--force") || !strings.Contains(stderr, studies) {
		t.Errorf("got message %q, want it to name the directory and --force", stderr)
	}
	checkFiles(t, studies, files)
	if entries, _ := os.ReadDir(studies); len(entries) != 3 {
		t.Errorf("got %d entries in %s, want 3", len(entries), studies)
	}
}

func TestOutRefusesFile(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "report-draft.docx")
	writeFiles(t, dir, map[string]string{"report-draft.docx": "draft"})
	_, stderr, code := runCLI(t, "run", "quickstart", "--out", doc, "--quiet")
	if code != 2 {
		t.Fatalf("got exit status %d, want 2 (stderr: %s)", code, stderr)
	}
	checkFiles(t, dir, map[string]string{"report-draft.docx": "draft"})
}

// TestOutOtherStudy: the results of another scenario are not replaced, by
// run nor by report --out; an earlier result of the same scenario is, and
// --force overrides.
func TestOutOtherStudy(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "tiny.toml")
	writeFiles(t, dir, map[string]string{"tiny.toml": tinyScenario})
	other := map[string]string{"results.json": "{}\n", "scenario.toml": "name = \"other\"\n", "answers.csv": "x\n"}
	otherDir := filepath.Join(dir, "other")
	writeFiles(t, otherDir, other)

	if _, stderr, code := runCLI(t, "run", sc, "--out", otherDir, "--quiet"); code != 2 || !strings.Contains(stderr, `"other"`) {
		t.Fatalf("run into another study: got exit %d (stderr %q), want 2 naming it", code, stderr)
	}
	checkFiles(t, otherDir, other)

	res := filepath.Join(dir, "res")
	if _, stderr, code := runCLI(t, "run", sc, "--out", res, "--quiet"); code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	// Rerunning into its own earlier results replaces them.
	if _, stderr, code := runCLI(t, "run", sc, "--out", res, "--quiet"); code != 0 {
		t.Fatalf("rerun into earlier results: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "report", res, "--out", otherDir); code != 2 {
		t.Fatalf("report --out another study: got exit %d, want 2 (stderr %q)", code, stderr)
	}
	checkFiles(t, otherDir, other)
	if _, stderr, code := runCLI(t, "report", res, "--out", filepath.Join(dir, "res2")); code != 0 {
		t.Fatalf("report --out new dir: exit %d: %s", code, stderr)
	}
	// Another run's results of the same scenario are not replaced by a
	// rebuild either: their answers may not be made again.
	before := readDirFiles(t, filepath.Join(dir, "res2"))
	if _, stderr, code := runCLI(t, "report", res, "--out", filepath.Join(dir, "res2")); code != 2 || !strings.Contains(stderr, "--force") {
		t.Fatalf("report --out another run of the same scenario: got exit %d (stderr %q), want 2", code, stderr)
	}
	checkFiles(t, filepath.Join(dir, "res2"), before)
	if _, stderr, code := runCLI(t, "report", res, "--out", otherDir, "--force"); code != 0 {
		t.Fatalf("report --out --force: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(otherDir, "report.md")); err != nil {
		t.Errorf("--force did not write the results: %v", err)
	}
}

func TestOutNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	_, stderr, code := runCLI(t, "run", "quickstart", "--out", filepath.Join(ro, "out"), "--quiet")
	if code != 2 || !strings.Contains(stderr, "cannot write") {
		t.Fatalf("got exit %d (stderr %q), want 2 and \"cannot write\"", code, stderr)
	}
}

// TestDefaultOutUnique: runs started back to back without --out (a seed
// sweep) each keep their own directory.
func TestDefaultOutUnique(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"tiny.toml": tinyScenario})
	t.Chdir(dir)
	for range 2 {
		if _, stderr, code := runCLI(t, "run", "tiny.toml", "--quiet"); code != 0 {
			t.Fatalf("run: exit %d: %s", code, stderr)
		}
	}
	entries, err := os.ReadDir("results")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d results directories, want 2", len(entries))
	}
	// Each is named by its run's id, which its results record.
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("results", e.Name(), "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Run struct {
				ID string `json:"id"`
			} `json:"run"`
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if res.Run.ID != e.Name() || !strings.HasPrefix(e.Name(), "tiny-") {
			t.Errorf("directory %s: results.json's run id is %q, want the directory's name", e.Name(), res.Run.ID)
		}
		// The form run --help and the README give: NAME-SEED-TIME-RANDOM.
		if !regexp.MustCompile(`^tiny-3-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$`).MatchString(e.Name()) {
			t.Errorf("directory %s: want NAME-SEED-TIME-RANDOM (tiny-3-YYYYMMDD-HHMMSS-8 hex digits)", e.Name())
		}
	}
	_, stderr, _ := runCLI(t, "run", "--help")
	if want := "default results/NAME-SEED-TIME-RANDOM"; !strings.Contains(stderr, want) {
		t.Errorf("run --help: got %q, want --out's default given as %q", stderr, want)
	}
}

// readDirFiles reads the regular files directly in dir, by name.
func readDirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}
