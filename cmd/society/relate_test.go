package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/questionnaires"
)

// An instrument that neither a theory template nor a published matrix
// relates to the values would be answered and then left out of every
// value–behaviour table: validate and run refuse it with file, line and
// field, and accept it once a published matrix is given.
func TestUnrelatedInstrumentRefused(t *testing.T) {
	dir := t.TempDir()
	inst := `name = "habits"
title = "Two habits"
kind = "behaviour"
adapted = false
instruction = "How often do you do this?"

[scale]
min = 0
max = 4
labels = ["never", "rarely", "sometimes", "often", "always"]

[[items]]
id = 1
text = "I try out a new recipe."
key = "novelty"

[[items]]
id = 2
text = "I let others decide for me."
key = "deference"
`
	ref := "value,novelty,deference\nSD,0.3,-0.2\nST,0.3,-0.1\nHE,0.2,0\nAC,0.1,0\nPO,0,0.1\nSE,-0.2,0.2\nCO,-0.2,0.3\nTR,-0.1,0.3\nBE,0,0.1\nUN,0.2,0\n"
	for name, body := range map[string]string{"habits.toml": inst, "habits.csv": ref} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const head = "[population]\nsize = 50\n[[questionnaires]]\nname = \"pvq40\"\n"
	cases := []struct {
		name, toml string
		want       []string // nil: accepted
	}{
		{"behaviour file without reference", head + "[[questionnaires]]\nname = \"habits\"\nfile = \"habits.toml\"\n",
			[]string{"bad.toml:6", "questionnaires[1].name", "never related to the values", "novelty, deference"}},
		{"persona behaviours without template", head + "[[questionnaires]]\nname = \"persona\"\noptional = true\nbehaviors = [\"believes-AIs-are-not-an-existential-threat-to-humanity\"]\n",
			[]string{"bad.toml:6", "questionnaires[1].name", "none of its behaviours has a theory template"}},
		{"behaviour file with a published matrix", head + "[[questionnaires]]\nname = \"habits\"\nfile = \"habits.toml\"\n[[analysis.behavior_references]]\ninstrument = \"habits\"\nfile = \"habits.csv\"\n", nil},
		{"persona behaviour with a template", head + "[[questionnaires]]\nname = \"persona\"\noptional = true\nbehaviors = [\"agreeableness\"]\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(questionnaires.PersonaDirEnv, "")
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			f := filepath.Join(dir, "bad.toml")
			if err := os.WriteFile(f, []byte(c.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := runCLI(t, "validate", f)
			if c.want == nil {
				if code != 0 {
					t.Fatalf("validate: got exit %d, want 0: %s", code, stderr)
				}
				return
			}
			if code != 2 {
				t.Fatalf("validate: got exit %d, want 2: %s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("validate: got %q, want it to contain %q", stderr, w)
				}
			}
			out := filepath.Join(dir, "out")
			if _, stderr, code := runCLI(t, "run", f, "--out", out); code != 2 || !strings.Contains(stderr, c.want[1]) {
				t.Errorf("run: got exit %d, %q; want exit 2 naming %s", code, stderr, c.want[1])
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Error("results written despite bad input")
			}
		})
	}
}
