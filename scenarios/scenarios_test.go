package scenarios

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/bad")

func files(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no scenario files in testdata/%s", dir)
	}
	return paths
}

// roundTrip checks that the resolved TOML of s parses back to s.
func roundTrip(t *testing.T, s *Scenario) {
	t.Helper()
	out, err := s.Resolved()
	if err != nil {
		t.Fatalf("resolved: %v", err)
	}
	again, err := Parse(out, s.File)
	if err != nil {
		t.Fatalf("parse resolved:\n%s\nerror: %v", out, err)
	}
	if !reflect.DeepEqual(s, again) {
		t.Errorf("round trip: got %+v, want %+v\nresolved:\n%s", again, s, out)
	}
}

func TestGood(t *testing.T) {
	for _, path := range files(t, "good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := Load(path)
			if err != nil {
				t.Fatalf("got error:\n%v\nwant none", err)
			}
			roundTrip(t, s)
		})
	}
}

func TestBad(t *testing.T) {
	for _, path := range files(t, "bad") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, err := Load(path)
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid): got false, want true for %v", err)
			}
			golden := strings.TrimSuffix(path, ".toml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// Every problem of a file must be reported, not just the first.
func TestSeveralProblems(t *testing.T) {
	_, err := Load("testdata/bad/several.toml")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("got %T, want joined problems", err)
	}
	fields := map[string]bool{}
	for _, e := range joined.Unwrap() {
		var p *Problem
		if !errors.As(e, &p) {
			t.Fatalf("got %T, want *Problem", e)
		}
		if p.Line == 0 {
			t.Errorf("%s: got line 0, want the line of the key", p.Field)
		}
		fields[p.Field] = true
	}
	for _, f := range []string{
		"name", "seed", "population.size", "population.strategy", "population.weights.SD",
		"population.sampling", "models[0].backend", "models[0].samples", "models[0].concurrency",
		"models[1].name", "models[1].mode", "models[1].style", "models[1].priming",
		"models[1].timeout", "models[1].temperature", "questionnaires[0].name",
		"analysis.bootstrap_iterations", "analysis.bootstrap_size", "analysis.references[0]",
	} {
		if !fields[f] {
			t.Errorf("problem with %s: got none, want one", f)
		}
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse([]byte("name = \"d\"\n"), "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	temp := 1.0
	want := &Scenario{
		Name: "d", Seed: 1, File: "d.toml",
		Population: Population{
			Size: 1000, Strategy: population.HNP, Strategies: []population.Strategy{population.HNP},
			Shares: "gss2012", NoDominant: 0.53, Sampling: Stratified,
		},
		Models: []Model{{
			Name: "synthetic", Backend: Synthetic, Mode: Distribution, Temperature: &temp,
			Samples: 50, Concurrency: 64, Timeout: 60 * time.Second,
			Style: agent.StyleDescription, Priming: PrimingOnly,
		}},
		Questionnaires: []Questionnaire{{Name: "pvq40"}},
		Analysis: Analysis{
			Bootstrap: BootstrapPopulation, BootstrapIterations: 1000, NullIterations: 999, MDS: MDSClassical,
			References: []string{"pvq40_smacof_mrat", "gss2012_mrat", "ess_sweden_mrat"},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestValuesKept(t *testing.T) {
	s, err := Load("testdata/good/openai.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := s.Models[0]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"name from model", m.Name, "qwen2.5-7b-instruct"},
		{"backend from base_url", m.Backend, OpenAI},
		{"explicit temperature 0", *m.Temperature, 0.0},
		{"top_p", m.TopP, 0.9},
		{"max_tokens", m.MaxTokens, 4},
		{"timeout", m.Timeout, 150 * time.Second},
		{"explicit seed 0", m.Seed != nil && *m.Seed == 0, true},
		{"unset api key variable allowed", m.APIKeyEnv, "SOCIETY_TEST_KEY_THAT_IS_NOT_SET"},
		{"second model mode", s.Models[1].Mode, Sample},
		{"second model seed unset", s.Models[1].Seed == nil, true},
		{"reasoning_effort", m.ReasoningEffort, "low"},
		{"extra_body", m.ExtraBody, map[string]any{"chat_template_kwargs": map[string]any{"enable_thinking": false}, "top_k": int64(20)}},
		{"second model extra_body unset", s.Models[1].ExtraBody == nil, true},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	wantFile, _ := filepath.Abs("testdata/instruments/mini_pvq.toml")
	if got := s.Questionnaires[0].File; got != wantFile {
		t.Errorf("instrument file: got %s, want %s", got, wantFile)
	}

	c, err := Load("testdata/good/compare.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Population.Strategy, population.HNP; got != want {
		t.Errorf("strategy: got %s, want %s", got, want)
	}
	if got := len(c.Population.Strategies); got != 5 {
		t.Errorf("strategies: got %d, want 5", got)
	}
	if got := c.Questionnaires[1].Items; got != 12 {
		t.Errorf("bfi2 items: got %d, want 12", got)
	}

	e, err := Load("testdata/good/empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "empty" {
		t.Errorf("name from file: got %q, want %q", e.Name, "empty")
	}
}

func TestLocate(t *testing.T) {
	src := `# comment with a "quote" and ''' triple
name = "x" # trailing
description = """
first
second"""

[population]
size = 10
weights = { SD = 1, "none" = 2,
  BE = 3 }

[[models]]
name = "a"

[[models]]
name = "b"
tags = [
  "one",
  { deep = 1 },
]
mode = "sample"

[models.extra]
k = 1

[[questionnaires]]
name = 'pvq40'
[analysis]
references = ["gss2012_raw"]
`
	lines := locate([]byte(src))
	for _, tc := range []struct {
		field string
		want  int
	}{
		{"name", 2}, {"description", 3}, {"population", 7}, {"population.size", 8},
		{"population.weights", 9}, {"population.weights.SD", 9}, {"population.weights.none", 9},
		{"population.weights.BE", 10}, {"models[0]", 12}, {"models[0].name", 13},
		{"models[1]", 15}, {"models[1].name", 16}, {"models[1].tags[1].deep", 19},
		{"models[1].mode", 21}, {"models[1].extra.k", 24}, {"questionnaires[0].name", 27},
		{"analysis.references[0]", 29},
	} {
		t.Run(tc.field, func(t *testing.T) {
			if got := lines[tc.field]; got != tc.want {
				t.Errorf("got line %d, want %d", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		field string
		want  int
	}{
		{"models[1].missing", 15}, {"population.weights.XX", 9}, {"run.shards", 0}, {"nowhere", 0},
	} {
		t.Run("fallback "+tc.field, func(t *testing.T) {
			if got := lineOf(lines, tc.field); got != tc.want {
				t.Errorf("got line %d, want %d", got, tc.want)
			}
		})
	}
}

func TestBuiltins(t *testing.T) {
	names := BuiltinNames()
	if got, want := strings.Join(names, ","), "charity-rounds,paper,quickstart,scale,strategies"; got != want {
		t.Fatalf("built-ins: got %s, want %s", got, want)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name {
				t.Errorf("name: got %q, want %q", s.Name, name)
			}
			if Describe(name) == "" {
				t.Error("description: got empty, want one line")
			}
			src, err := BuiltinSource(name)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(src, []byte("\n#")); n < 5 {
				t.Errorf("comment lines: got %d, want a commented template", n)
			}
			roundTrip(t, s)
			o, err := Open(name)
			if err != nil || !reflect.DeepEqual(o, s) {
				t.Errorf("open %s: got %+v, %v, want the built-in", name, o, err)
			}
		})
	}
	q, _ := Builtin("quickstart")
	if q.Population.Size != 1000 || q.Models[0].Backend != Synthetic || q.Questionnaires[0].Name != "pvq40" {
		t.Errorf("quickstart: got size %d backend %s instrument %s, want 1000 synthetic pvq40",
			q.Population.Size, q.Models[0].Backend, q.Questionnaires[0].Name)
	}
	st, _ := Builtin("strategies")
	want := []population.Strategy{population.Uniform, population.HNorm, population.HEven, population.HNP}
	if !reflect.DeepEqual(st.Population.Strategies, want) || st.Population.Size != 2000 {
		t.Errorf("strategies: got %v size %d, want %v size 2000", st.Population.Strategies, st.Population.Size, want)
	}
	for _, bad := range []string{"nope", "../quickstart", ""} {
		if _, err := Builtin(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("built-in %q: got %v, want an ErrInvalid error", bad, err)
		}
		if Describe(bad) != "" {
			t.Errorf("describe %q: got text, want empty", bad)
		}
	}
}

func TestOpen(t *testing.T) {
	s, err := Open("testdata/good/minimal.toml")
	if err != nil || s.Name != "minimal" {
		t.Errorf("open file: got %v, %v, want minimal", s, err)
	}
	for _, arg := range []string{"no-such-scenario", "testdata/none.toml"} {
		t.Run(arg, func(t *testing.T) {
			_, err := Open(arg)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want an ErrInvalid error", err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), arg+": ") {
				t.Errorf("got %q, want it to start with the argument", err)
			}
		})
	}
}

// A folder named as a built-in (the results of 'run paper --out paper')
// does not hide it: 'run paper' failed with "paper: is a directory". A
// file of that name still wins.
func TestOpenBesideFolder(t *testing.T) {
	minimal, err := filepath.Abs(filepath.Join("testdata", "good", "minimal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.Mkdir("quickstart", 0o755); err != nil {
		t.Fatal(err)
	}
	if s, err := Open("quickstart"); err != nil || s.Name != "quickstart" || s.File != "builtin/quickstart.toml" {
		t.Errorf("beside a folder of its name: got %v; want the built-in quickstart", err)
	}
	if err := os.Mkdir("notes", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("notes"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a folder that names no built-in: got %v, want an ErrInvalid error", err)
	}
	src, err := os.ReadFile(minimal)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("paper", src, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open("paper"); err != nil || s.Name != "minimal" {
		t.Errorf("a file named as a built-in: got %v, %v; want the file's scenario", s, err)
	}
}

func TestProblemFormat(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"bad.toml", 4, "population.size", "must be between 1 and 50000000, got 0"}, "bad.toml:4: population.size: must be between 1 and 50000000, got 0"},
		{Problem{"bad.toml", 0, "models[0].model", "required"}, "bad.toml: models[0].model: required"},
		{Problem{"bad.toml", 2, "", "TOML syntax: x"}, "bad.toml:2: TOML syntax: x"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.p.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*.toml"))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	for _, name := range BuiltinNames() {
		src, _ := BuiltinSource(name)
		f.Add(src)
	}
	f.Add([]byte("a = [{b = {c = [1, {d = '''x\n'''}]}}]\n[[a.b]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.toml")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got error %v without ErrInvalid", err)
			}
			return
		}
		if _, err := s.Resolved(); err != nil {
			t.Fatalf("resolved: %v", err)
		}
	})
}

// A scenario that sets a resample size and no bootstrap method (every
// scenario.toml written before the method had a name) keeps the study's
// fixed-size design, labelled "paper"; naming "population" with a size is
// refused.
func TestBootstrapSizeAloneIsThePaperDesign(t *testing.T) {
	sc, err := Parse([]byte("name = \"old\"\n[analysis]\nbootstrap_iterations = 100\nbootstrap_size = 500\n"), "old.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Analysis; got.Bootstrap != BootstrapPaper || got.BootstrapSize != 500 || got.BootstrapIterations != 100 {
		t.Errorf("got bootstrap %q, %d × %d; want %q, 100 × 500", got.Bootstrap, got.BootstrapIterations, got.BootstrapSize, BootstrapPaper)
	}
	_, err = Parse([]byte("name = \"x\"\n[analysis]\nbootstrap = \"population\"\nbootstrap_size = 500\n"), "x.toml")
	if err == nil || !strings.Contains(err.Error(), "x.toml:4: analysis.bootstrap_size") {
		t.Errorf("got %v, want a refusal of x.toml:4: analysis.bootstrap_size", err)
	}
}
