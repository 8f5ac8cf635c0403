package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func readResults(t *testing.T, dir string) analysis.Results {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r analysis.Results
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestQuickstartEndToEnd is the newcomer's first command: the built-in
// quickstart over the embedded NATS server, on synthetic respondents.
func TestQuickstartEndToEnd(t *testing.T) {
	a := filepath.Join(t.TempDir(), "a")
	stdout, stderr, code := runCLI(t, "run", "--out", a)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"SYNTHETIC", "pvq40_smacof_mrat", a} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"results.json", "report.md", "answers.csv", "population.csv", "invalid.jsonl",
		"scenario.toml", "value_structure.csv", "mds_synthetic_h-np.png", "mds_synthetic_h-np.svg"} {
		if st, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Errorf("results lack %s: %v", f, err)
		} else if st.Size() == 0 && f != "invalid.jsonl" {
			t.Errorf("%s is empty", f)
		}
	}
	r := readResults(t, a)
	if r.Answers.Expected != 1000*40 || r.Answers.Valid+r.Answers.Invalid != r.Answers.Expected {
		t.Errorf("got answers %+v, want 40000 expected and valid+invalid = expected", r.Answers)
	}
	if len(r.Models) != 1 || !r.Models[0].Synthetic || r.Note == "" {
		t.Errorf("results do not label the synthetic respondents: %+v", r.Models)
	}
	v := programVersion()
	if run := r.Run; run == nil || !strings.HasPrefix(run.ID, "quickstart-1-") || run.Version != v.Version || run.Revision != v.Revision || run.Host == "" ||
		run.Start == "" || run.End < run.Start || run.WallSeconds <= 0 || !run.Synthetic || len(run.Models) != 1 || !run.Models[0].Synthetic {
		t.Errorf("run block: got %+v, want the run's id, build, host, times and its synthetic model", run)
	}
	if r.Run == nil || !strings.Contains(stdout, "Run "+r.Run.ID+" on ") {
		t.Errorf("stdout lacks the run line:\n%s", stdout)
	}
	// p_value is a number in the CSV too, its resolution in a column of
	// its own.
	csvText, err := os.ReadFile(filepath.Join(a, "value_structure.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csvText)), "\n")
	header := strings.Split(lines[0], ",")
	pCol, resCol := slices.Index(header, "p_value"), slices.Index(header, "p_value_resolution")
	if pCol < 0 || resCol < 0 {
		t.Fatalf("value_structure.csv header %q lacks p_value or p_value_resolution", lines[0])
	}
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if p, err := strconv.ParseFloat(f[pCol], 64); err != nil || p <= 0 {
			t.Errorf("value_structure.csv: p_value %q is not a positive number", f[pCol])
		}
	}
	found := false
	if r.Bootstrap.Method != "population" || r.Bootstrap.NullIterations != 999 {
		t.Errorf("got bootstrap %+v, want the whole-population bootstrap and 999 permutations", r.Bootstrap)
	}
	for _, row := range r.ValueStructure {
		if row.Reference == "pvq40_smacof_mrat" && row.Strategy == "h-np" {
			found = true
			if row.ValuesSimilarity < 0.8 {
				t.Errorf("got values similarity %.3f against the PVQ-40 reference, want >= 0.8", row.ValuesSimilarity)
			}
			// The whole-population bootstrap's interval holds the figure
			// reported, and the p-value is the permutation test's, a
			// number at or above its resolution.
			if !(row.CI95[0] <= row.ValuesSimilarity && row.ValuesSimilarity <= row.CI95[1]) {
				t.Errorf("similarity %.3f outside its interval %v", row.ValuesSimilarity, row.CI95)
			}
			if !(row.PValue >= row.PValueResolution && row.PValueResolution > 0 && row.PValue <= 0.05) {
				t.Errorf("got p %v (resolution %v), want a small positive number", row.PValue, row.PValueResolution)
			}
		}
	}
	if !found {
		t.Fatal("no h-np row against pvq40_smacof_mrat")
	}

}

// TestSameSeedSameResults: a run is a function of its scenario and seed.
// Two runs of the same scenario give identical results, the run block
// (times, host) aside, and so does the resolved scenario.toml written
// with the results. (A smaller population and fewer resamples than the
// quickstart: determinism does not depend on them, and under the race
// detector three quickstart runs took five minutes.)
func TestSameSeedSameResults(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.toml")
	if err := os.WriteFile(sc, []byte(smallAnalysisScenario("same", 2, 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, out := range []string{a, b} {
		if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--quiet"); code != 0 {
			t.Fatalf("run into %s: exit %d: %s", out, code, stderr)
		}
	}
	withoutRun(t, a)
	withoutRun(t, b)
	for _, f := range []string{"results.json", "answers.csv", "population.csv", "value_structure.csv"} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed (or is empty)", f)
		}
	}

	// The resolved scenario written with the results runs again as it is.
	c := filepath.Join(dir, "c")
	if _, stderr, code := runCLI(t, "run", filepath.Join(a, "scenario.toml"), "--out", c, "--quiet"); code != 0 {
		t.Fatalf("rerun from scenario.toml: exit %d: %s", code, stderr)
	}
	withoutRun(t, c)
	x, _ := os.ReadFile(filepath.Join(a, "results.json"))
	y, _ := os.ReadFile(filepath.Join(c, "results.json"))
	if !bytes.Equal(x, y) {
		t.Error("rerunning the written scenario.toml gives different results")
	}
}

// smallAnalysisScenario is a synthetic run of n agents whose intervals and
// p-values rest on few resamples: for tests of what does not depend on
// their precision.
func smallAnalysisScenario(name string, seed, n int) string {
	return fmt.Sprintf("name = %q\nseed = %d\n[population]\nsize = %d\n[analysis]\nbootstrap_iterations = 50\nnull_iterations = 49\n", name, seed, n)
}

func TestDifferentSeedsDiffer(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.toml")
	os.WriteFile(sc, []byte(smallAnalysisScenario("s", 2, 300)), 0o644)
	if _, stderr, code := runCLI(t, "run", sc, "--out", filepath.Join(dir, "a")); code != 0 {
		t.Fatal(stderr)
	}
	sc1 := filepath.Join(dir, "q.toml")
	os.WriteFile(sc1, []byte(smallAnalysisScenario("s", 3, 300)), 0o644)
	if _, stderr, code := runCLI(t, "run", sc1, "--out", filepath.Join(dir, "b")); code != 0 {
		t.Fatal(stderr)
	}
	x, _ := os.ReadFile(filepath.Join(dir, "a", "answers.csv"))
	y, _ := os.ReadFile(filepath.Join(dir, "b", "answers.csv"))
	if bytes.Equal(x, y) {
		t.Error("seeds 2 and 3 gave identical answers")
	}
}

// TestBadInput: every kind of bad input exits with status 2, names the
// file, line and field, and writes nothing.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name, toml string
		want       []string
	}{
		{"malformed", "name = \"x\"\n[population\nsize = 3\n", []string{"bad.toml:2"}},
		{"unknown key", "name = \"x\"\n[population]\nsize = 10\nsise = 3\n", []string{"bad.toml:4", "population.sise"}},
		{"unknown questionnaire", "[[questionnaires]]\nname = \"pvq41\"\n", []string{"bad.toml:2", "questionnaires[0].name"}},
		{"unknown strategy", "[population]\nstrategy = \"h-nope\"\n", []string{"bad.toml:2", "population.strategy"}},
		{"negative weights", "[population]\nstrategy = \"custom\"\nweights = { SD = -1, BE = 2 }\n", []string{"bad.toml:3", "population.weights"}},
		{"zero weights", "[population]\nstrategy = \"custom\"\nweights = { SD = 0, BE = 0 }\n", []string{"bad.toml:3", "population.weights"}},
		{"size zero", "[population]\nsize = 0\n", []string{"bad.toml:2", "population.size"}},
		{"size absurd", "[population]\nsize = 40000000\n", []string{"bad.toml:2", "population.size", "memory"}},
		{"model name comma", "[[models]]\nname = \"gpt,4\"\n", []string{"bad.toml:2", "models[0].name"}},
		{"model name quote", "[[models]]\nname = 'say \"hi\"'\n", []string{"bad.toml:2", "models[0].name"}},
		{"model name long", "[[models]]\nname = \"" + strings.Repeat("m", 300) + "\"\n", []string{"bad.toml:2", "models[0].name", "300 bytes"}},
		{"nested arrays", "name = \"x\"\nx = " + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + "\n", []string{"bad.toml:2", "nested more than 32 deep"}},
		{"too large", "name = \"x\"\n" + strings.Repeat("# padding\n", 120_000), []string{"bad.toml", "too large"}},
		{"model figures collide", "[[models]]\nname = \"a/b\"\n[[models]]\nname = \"a_b\"\n", []string{"bad.toml:4", "models[1].name", "same figure"}},
		{"items leave values unscored", "[[questionnaires]]\nname = \"pvq40\"\nitems = 4\n", []string{"bad.toml:3", "questionnaires[0].items", "at least its first 12 items"}},
		{"only bfi2", "[[questionnaires]]\nname = \"bfi2\"\n", []string{"bad.toml:2", "questionnaires[0].name", "no questionnaire of the scenario measures values"}},
		{"synthetic top_p", "[[models]]\nbackend = \"synthetic\"\ntop_p = 0.5\n", []string{"bad.toml:3", "models[0].top_p", "only applies to backend = \"openai\""}},
		{"shares unused", "[population]\nstrategy = \"uniform\"\nshares = \"ess_sweden\"\n", []string{"bad.toml:3", "population.shares"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "bad.toml")
			if err := os.WriteFile(f, []byte(c.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			_, stderr, code := runCLI(t, "run", f, "--out", out)
			if code != 2 {
				t.Fatalf("got exit status %d, want 2 (stderr: %s)", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("got message %q, want it to contain %q", stderr, w)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("results written despite bad input")
			}
			if _, _, code := runCLI(t, "validate", f); code != 2 {
				t.Errorf("validate: got exit status %d, want 2", code)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	if out, _, code := runCLI(t, "scenarios"); code != 0 || !strings.Contains(out, "quickstart") {
		t.Errorf("scenarios: exit %d, output %q", code, out)
	}
	out, _, code := runCLI(t, "scenarios", "show", "quickstart")
	if code != 0 || !strings.Contains(out, "[population]") {
		t.Errorf("scenarios show: exit %d, output %q", code, out)
	}
	if _, e, code := runCLI(t, "scenarios", "show", "nope"); code != 2 || strings.Count(e, "quickstart") != 1 {
		t.Errorf("scenarios show nope: got exit %d, stderr %q; want 2 and the built-ins listed once", code, e)
	}
	if out, _, code := runCLI(t, "validate", "quickstart"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("validate quickstart: exit %d, output %q", code, out)
	}
	if _, _, code := runCLI(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: got exit %d, want 2", code)
	}
	if _, _, code := runCLI(t); code != 2 {
		t.Errorf("no command: got exit %d, want 2", code)
	}
	if _, _, code := runCLI(t, "run", "--bogus"); code != 2 {
		t.Errorf("bad flag: got exit %d, want 2", code)
	}
	if _, _, code := runCLI(t, "run", "no-such-scenario"); code != 2 {
		t.Errorf("missing scenario: got exit %d, want 2", code)
	}
}

func TestInterruptedRunWritesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var o, e bytes.Buffer
	err := run(ctx, []string{"run", "--out", out}, &o, &e)
	if err == nil {
		t.Fatal("got nil error for a cancelled run")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a cancelled run wrote results")
	}
}

// TestPanicIsNotBadInput: a defect ends with exit status 1 and its stack,
// never with the status that means bad input.
func TestPanicIsNotBadInput(t *testing.T) {
	err := protect(func() error { panic("boom") })
	var e bytes.Buffer
	if code := exitCode(err, &e); code != 1 {
		t.Errorf("got exit status %d, want 1", code)
	}
	if !strings.Contains(e.String(), "internal error: boom") || !strings.Contains(e.String(), "TestPanicIsNotBadInput") {
		t.Errorf("got message %q, want the panic and its stack", e.String())
	}
}
