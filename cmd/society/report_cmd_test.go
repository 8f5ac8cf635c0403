package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// TestPaperRunAndReport runs every part of the paper at test size, checks
// the tables and figures, then rebuilds the report from the stored answers
// without the persona data and checks that it comes out byte for byte.
func TestPaperRunAndReport(t *testing.T) {
	dir := t.TempDir()
	path := smallPaper(t, dir, true)
	out := filepath.Join(dir, "out")
	console, stderr, code := runCLI(t, "run", path, "--out", out, "--cache", filepath.Join(dir, "cache"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Theory templates are theory references, never human ones.
	for name, text := range map[string]string{"console": console, "report.md": string(report)} {
		if !strings.Contains(text, "theory reference") {
			t.Errorf("%s never says \"theory reference\"", name)
		}
		for _, line := range strings.Split(text, "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "human") && (strings.Contains(l, "theory") || strings.Contains(l, "value-behaviour reference")) {
				t.Errorf("%s calls theory references human: %q", name, line)
			}
		}
	}
	for _, want := range []string{
		"## Table 1. Values similarity", "## Table 2. Behaviour similarity under H-NP", "## Table 3. Priming ablation",
		"## Table 4. Behaviour similarity under Uniform", "| synthetic | VS ",
		"bfi2 (made-up)", "ceiling of the pipeline", "Politics panel, primed", "![valuecorr_primed_h-np](valuecorr_primed_h-np.png)",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, f := range []string{
		"valuecorr_primed_h-np.png", "valuecorr_tested_h-np.svg", "behavior_primed_bfi2_h-np.png", "behavior_tested_bfi2_h-np.svg",
		"behavior_primed_persona_h-np.png", "persona_values_primed.png", "persona_higher_tested.svg", "persona_vectors_primed.png",
		"persona_politics_primed.png", "value_behavior.csv", "persona_agreement.csv",
		"instruments/persona.toml", "references/bfi2_made-up.csv",
	} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("results lack %s (%v)", f, err)
		}
	}
	r := readResults(t, out)
	kinds := map[string]int{}
	for _, row := range r.ValueBehavior {
		kinds[row.ReferenceKind]++
		if row.Agents == 0 || !(row.CI95[0] <= row.BootstrapMean && row.BootstrapMean <= row.CI95[1]) {
			t.Errorf("row %+v: no agents, or the bootstrap mean outside its interval", row)
		}
	}
	if kinds[analysis.KindTheory] == 0 || kinds[analysis.KindPublished] == 0 {
		t.Errorf("got reference kinds %v, want theory and published rows", kinds)
	}
	if len(r.PersonaAgreement) == 0 {
		t.Error("no persona agreement rows")
	}

	// Rebuild elsewhere: the persona fixture is not needed any more.
	noData := t.TempDir()
	t.Setenv(questionnaires.PersonaDirEnv, "")
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(out, moved); err != nil {
		t.Fatal(err)
	}
	resolved, _ := os.ReadFile(filepath.Join(moved, "scenario.toml"))
	fixture, _ := filepath.Abs("../../questionnaires/testdata/persona-fixture")
	// Point the stored scenario at a directory without the data, as on
	// another machine; its instruments/ copy must serve instead.
	hidden := bytes.ReplaceAll(resolved, []byte(fixture), []byte(noData))
	if err := os.WriteFile(filepath.Join(moved, "scenario.toml"), hidden, 0o644); err != nil {
		t.Fatal(err)
	}
	// Rebuilt in place: the derived files come out byte for byte, the
	// stored answers are left alone. (--out writes the same files through
	// results.Write into a new directory.)
	before := map[string][]byte{}
	for _, f := range []string{"report.md", "results.json", "value_behavior.csv", "value_structure.csv", "persona_agreement.csv", "answers.csv"} {
		before[f], _ = os.ReadFile(filepath.Join(moved, f))
	}
	os.Remove(filepath.Join(moved, "report.md"))
	os.Remove(filepath.Join(moved, "behavior_primed_bfi2_h-np.png"))
	stdout, stderr, code := runCLI(t, "report", moved)
	if code != 0 || !strings.Contains(stdout, "no model was called") {
		t.Fatalf("report in place: exit %d: %s %s", code, stdout, stderr)
	}
	for f, want := range before {
		got, err := os.ReadFile(filepath.Join(moved, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs after the rebuild (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(moved, "behavior_primed_bfi2_h-np.png")); err != nil {
		t.Errorf("the rebuild did not draw the figures again: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".moved.report-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

// TestBFI2ReverseKeysThroughPipeline: the synthetic respondents mirror
// their answers to reverse-keyed BFI-2 items, and the pipeline's scoring
// mirrors them back, so Agreeableness correlates with Benevolence and
// Tradition and Open-Mindedness with Self-Direction and Universalism.
func TestBFI2ReverseKeysThroughPipeline(t *testing.T) {
	sc, err := scenarios.Parse([]byte(`name = "bfi"
[population]
size = 1500
strategy = "uniform"
[[questionnaires]]
name = "pvq40"
[[questionnaires]]
name = "bfi2"
[analysis]
bootstrap = "paper"
bootstrap_iterations = 10
bootstrap_size = 300
null_iterations = 19
references = ["pvq40_smacof_mrat"]
`), "bfi.toml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := runScenario(context.Background(), runConfig{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	var m *analysis.BehaviorMatrix
	for i := range res.Outcome.Behavior {
		if res.Outcome.Behavior[i].Instrument == "bfi2" {
			m = &res.Outcome.Behavior[i]
		}
	}
	if m == nil {
		t.Fatal("no BFI-2 matrix")
	}
	at := func(v values.Value, key string) float64 { return m.M.At(int(v), slices.Index(m.Keys, key)) }
	for _, c := range []struct {
		key  string
		v    values.Value
		sign float64
	}{
		{"A", values.Benevolence, 1}, {"A", values.Tradition, 1}, {"A", values.Power, -1},
		{"O", values.SelfDirection, 1}, {"O", values.Universalism, 1}, {"O", values.Security, -1},
	} {
		if r := at(c.v, c.key); r*c.sign < 0.3 {
			t.Errorf("r(%s, %s) = %.2f, want %s0.3 or beyond", c.v, c.key, r, map[float64]string{1: "+", -1: "−"}[c.sign])
		}
	}
	// The raw answers really are mirrored: BE agents agree less than PO
	// agents with a reverse-keyed Agreeableness item and more with a
	// forward one.
	bfi, _ := questionnaires.Builtin("bfi2")
	sheet := res.Collector.Sheets(res.Study.Plans)[1]
	meanOf := func(item int, v values.Value) float64 {
		var s, n float64
		for a, p := range res.Study.Pool.Persona {
			if p == v {
				s += float64(sheet.Codes[a*len(bfi.Items)+item])
				n++
			}
		}
		return s / n
	}
	forward, reverse := 1, 11 // items 2 (A, forward) and 12 (A, reverse-keyed)
	if bfi.Items[forward].Key != "A" || bfi.Items[forward].Reverse || bfi.Items[reverse].Key != "A" || !bfi.Items[reverse].Reverse {
		t.Fatal("the BFI-2 key changed; pick other items")
	}
	if !(meanOf(forward, values.Benevolence) > meanOf(forward, values.Power)) || !(meanOf(reverse, values.Benevolence) < meanOf(reverse, values.Power)) {
		t.Errorf("raw answers: forward BE %.2f vs PO %.2f, reverse BE %.2f vs PO %.2f; want BE above on the forward item and below on the reverse one",
			meanOf(forward, values.Benevolence), meanOf(forward, values.Power), meanOf(reverse, values.Benevolence), meanOf(reverse, values.Power))
	}
}

// TestPaperBadInput: bad persona data, reference files and results
// directories exit with status 2 and name the file and line.
func TestPaperBadInput(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "persona")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "agreeableness.jsonl"), []byte(`{"question": "q", "statement": "s", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}`+"\n{broken\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ref.csv"), []byte("value,A,Q\nSD,0.1,0.2\n"), 0o644)
	cases := []struct {
		name, toml string
		want       []string
	}{
		{"unknown behaviour", "[[questionnaires]]\nname = \"persona\"\ndir = \"persona\"\nbehaviors = [\"agreeablenes\"]\n",
			[]string{"bad.toml:4", "questionnaires[0].behaviors[0]", "did you mean \"agreeableness\""}},
		{"malformed jsonl", "[[questionnaires]]\nname = \"persona\"\ndir = \"persona\"\n[[questionnaires]]\nname = \"pvq40\"\n",
			[]string{"agreeableness.jsonl:2: not a JSON object"}},
		{"persona data missing", "[[questionnaires]]\nname = \"persona\"\n[[questionnaires]]\nname = \"pvq40\"\n",
			[]string{"bad.toml:2", "questionnaires[0].name", "no persona data set found"}},
		{"wrong-shape reference", "[[questionnaires]]\nname = \"pvq40\"\n[[questionnaires]]\nname = \"bfi2\"\n[[analysis.behavior_references]]\ninstrument = \"bfi2\"\nfile = \"ref.csv\"\n",
			[]string{"ref.csv:1: column 3 is \"Q\", not a key of bfi2", "ref.csv:3: missing rows for ST"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(questionnaires.PersonaDirEnv, "")
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			f := filepath.Join(dir, "bad.toml")
			if err := os.WriteFile(f, []byte("[population]\nsize = 50\n"+c.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			// The header adds two lines above the case's own.
			_, stderr, code := runCLI(t, "run", f, "--out", filepath.Join(dir, "out"))
			if code != 2 {
				t.Fatalf("got exit status %d, want 2 (stderr: %s)", code, stderr)
			}
			for _, w := range c.want {
				w = shiftLine(w, 2)
				if !strings.Contains(stderr, w) {
					t.Errorf("got message %q, want it to contain %q", stderr, w)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
				t.Error("results written despite bad input")
			}
		})
	}
	t.Run("report of a non-results directory", func(t *testing.T) {
		if _, _, code := runCLI(t, "report", t.TempDir()); code != 2 {
			t.Errorf("got exit %d, want 2", code)
		}
		if _, _, code := runCLI(t, "report"); code != 2 {
			t.Errorf("no directory: got exit %d, want 2", code)
		}
	})
}

// shiftLine adds n to the line number of a "bad.toml:N" reference.
func shiftLine(s string, n int) string {
	const p = "bad.toml:"
	i := strings.Index(s, p)
	if i < 0 {
		return s
	}
	j := i + len(p)
	k := j
	for k < len(s) && s[k] >= '0' && s[k] <= '9' {
		k++
	}
	line, _ := strconv.Atoi(s[j:k])
	return s[:j] + strconv.Itoa(line+n) + s[k:]
}
