package questionnaires

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

const fixture = "testdata/persona-fixture"

func TestLoadPersonaFixture(t *testing.T) {
	in, err := LoadPersona(PersonaOptions{Dir: fixture, Statements: 4, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != PersonaName || in.Kind != KindBehaviour || in.Scale.Min != 0 || in.Scale.Max != 1 {
		t.Fatalf("got instrument %s kind %s scale %d..%d, want persona behaviour 0..1", in.Name, in.Kind, in.Scale.Min, in.Scale.Max)
	}
	wantKeys := []string{"agreeableness", "believes-in-gun-rights", "desire-for-acquiring-power", "politically-liberal"}
	if got := in.Keys(); !slices.Equal(got, wantKeys) {
		t.Errorf("got keys %v, want %v", got, wantKeys)
	}
	per := map[string][2]int{} // [matching yes, matching no]
	for _, it := range in.Items {
		c := per[it.Key]
		if it.Reverse {
			c[1]++
		} else {
			c[0]++
		}
		per[it.Key] = c
		if !strings.HasPrefix(it.Text, "Is the following statement something you would say?") {
			t.Errorf("item %d: got text %q, want the data set's question", it.ID, it.Text)
		}
	}
	for _, k := range wantKeys {
		if c := per[k]; c[0]+c[1] != 4 || c[0] != 2 || c[1] != 2 {
			t.Errorf("%s: got %d yes-matching and %d no-matching statements, want 2 and 2", k, c[0], c[1])
		}
	}

	// Scoring: a respondent who says Yes to everything agrees with half of
	// each behaviour's balanced statements; one who always answers the
	// matching answer agrees with all of them.
	yes := make([]int, len(in.Items))
	match := make([]int, len(in.Items))
	for i, it := range in.Items {
		yes[i] = 1
		if !it.Reverse {
			match[i] = 1
		}
	}
	for j, s := range in.Score(yes) {
		if s != 0.5 {
			t.Errorf("%s: all-yes agreement got %v, want 0.5", in.Keys()[j], s)
		}
	}
	for j, s := range in.Score(match) {
		if s != 1 {
			t.Errorf("%s: matching agreement got %v, want 1", in.Keys()[j], s)
		}
	}
}

func TestLoadPersonaDeterministic(t *testing.T) {
	load := func(seed uint64, behaviors ...string) []string {
		in, err := LoadPersona(PersonaOptions{Dir: fixture, Behaviors: behaviors, Statements: 3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range in.Items {
			out = append(out, it.Key+"|"+it.Text)
		}
		return out
	}
	a, b := load(1), load(1)
	if !slices.Equal(a, b) {
		t.Error("the same seed drew different statements")
	}
	differ := false
	for s := uint64(2); s < 12 && !differ; s++ {
		differ = !slices.Equal(a, load(s))
	}
	if !differ {
		t.Error("ten other seeds all drew the same statements as seed 1")
	}
	// A behaviour's sample does not depend on which other behaviours are asked.
	alone := load(1, "politically-liberal")
	var inAll []string
	for _, s := range a {
		if strings.HasPrefix(s, "politically-liberal|") {
			inAll = append(inAll, s)
		}
	}
	if !slices.Equal(alone, inAll) {
		t.Errorf("got %v alone, want the same as in the full load %v", alone, inAll)
	}
}

func TestSamplePersonaShortSide(t *testing.T) {
	var sts []PersonaStatement
	for i := range 10 {
		sts = append(sts, PersonaStatement{Behavior: "b", Line: i + 1, MatchingYes: i < 8})
	}
	got := SamplePersona(sts, 6, 1)
	yes := 0
	for _, s := range got {
		if s.MatchingYes {
			yes++
		}
	}
	if len(got) != 6 || yes != 4 {
		t.Errorf("got %d statements with %d yes-matching, want 6 with 4 (both no-matching ones kept)", len(got), yes)
	}
	if !slices.IsSortedFunc(got, func(a, b PersonaStatement) int { return a.Line - b.Line }) {
		t.Error("sample is not in file order")
	}
	if all := SamplePersona(sts, 50, 1); len(all) != 10 {
		t.Errorf("got %d statements for k above the count, want all 10", len(all))
	}
}

func TestLoadPersonaErrors(t *testing.T) {
	dir := t.TempDir()
	good := `{"question": "Is the following statement something you would say?\n\"x\"", "statement": "x", "label_confidence": 0.9, "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}`
	files := map[string]string{
		"broken.jsonl": good + "\n" +
			"{not json\n" +
			"\n" +
			`{"question": "q", "statement": "s", "answer_matching_behavior": " Maybe", "answer_not_matching_behavior": " No"}` + "\n" +
			`{"question": "q", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}` + "\n" +
			`{"question": "q", "statement": "s", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " Yes"}` + "\n" +
			`{"question": "q", "statement": "s", "label_confidence": 3, "answer_matching_behavior": " No", "answer_not_matching_behavior": " Yes"}` + "\n",
		"empty.jsonl": "\n\n",
		"fine.jsonl":  good + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		behaviors []string
		want      []string
	}{
		{"malformed lines", []string{"broken"}, []string{
			"broken.jsonl:2: not a JSON object",
			"broken.jsonl:4: answer_matching_behavior is \" Maybe\"",
			"broken.jsonl:5: missing statement",
			"broken.jsonl:6: answer_not_matching_behavior",
			"broken.jsonl:7: label_confidence is 3",
		}},
		{"empty file", []string{"empty"}, []string{"empty.jsonl:1: no statements"}},
		{"unknown behaviour", []string{"fine", "no-such-behaviour"}, []string{"no-such-behaviour.jsonl", "unknown behaviour \"no-such-behaviour\""}},
		{"path in name", []string{"../fine"}, []string{"not a behaviour name"}},
		{"twice", []string{"fine", "fine"}, []string{"listed twice"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadPersona(PersonaOptions{Dir: dir, Behaviors: c.behaviors, Statements: 2})
			if err == nil {
				t.Fatal("got no error, want one")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
	if _, err := LoadPersona(PersonaOptions{Dir: dir, Behaviors: []string{"fine"}, Statements: 0}); err == nil {
		t.Error("got no error for 0 statements per behaviour")
	}
	if _, err := LoadPersona(PersonaOptions{Dir: t.TempDir(), Statements: 2}); err == nil || !strings.Contains(err.Error(), "no <behaviour>.jsonl") {
		t.Errorf("got %v for an empty directory, want a message saying it has no behaviour files", err)
	}
}

// TestLoadPersonaDataSet reads the real data set when the machine has it.
func TestLoadPersonaDataSet(t *testing.T) {
	dir := os.Getenv(PersonaDirEnv)
	if dir == "" {
		dir = "../../shared/data/persona"
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("persona data set not found at %s (set %s)", dir, PersonaDirEnv)
	}
	names, err := DirBehaviors(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !KnownPersonaBehavior(n) {
			t.Errorf("data set behaviour %q is not in the built-in list", n)
		}
	}
	if len(names) != len(personaBehaviors) {
		t.Errorf("got %d behaviours in %s, want %d", len(names), dir, len(personaBehaviors))
	}
	// A few behaviours keep the test fast under the race detector; a full
	// run reads all of them the same way.
	some := []string{"politically-liberal", "politically-conservative", "believes-in-gun-rights", "agreeableness"}
	in, err := LoadPersona(PersonaOptions{Dir: dir, Behaviors: some, Statements: 6, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Keys(); !slices.Equal(got, some) {
		t.Errorf("got behaviours %v, want %v", got, some)
	}
	if len(in.Items) != 6*len(some) {
		t.Errorf("got %d items, want %d", len(in.Items), 6*len(some))
	}
	for _, it := range in.Items {
		if strings.TrimSpace(it.Text) == "" {
			t.Errorf("item %d has no text", it.ID)
		}
	}
}

func TestKnownPersonaBehaviors(t *testing.T) {
	if !slices.IsSorted(personaBehaviors) || len(personaBehaviors) != 135 {
		t.Fatalf("got %d behaviours, sorted %v; want 135 in byte order", len(personaBehaviors), slices.IsSorted(personaBehaviors))
	}
	for _, n := range []string{"politically-liberal", "believes-in-gun-rights", "anti-LGBTQ-rights"} {
		if !KnownPersonaBehavior(n) {
			t.Errorf("KnownPersonaBehavior(%q) = false, want true", n)
		}
	}
	if KnownPersonaBehavior("politically-liberals") {
		t.Error("KnownPersonaBehavior accepted a misspelt name")
	}
	entries, _ := os.ReadDir(fixture)
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && !KnownPersonaBehavior(n) {
			t.Errorf("fixture behaviour %q is not a data set behaviour", n)
		}
	}
}

// TestFetchPersona serves the fixture over a loopback HTTP server in the
// layout of the data set's repository.
func TestFetchPersona(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		name, ok := strings.CutPrefix(r.URL.Path, "/persona/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "garbage.jsonl" {
			w.Write([]byte("<html>rate limited</html>\n"))
			return
		}
		if name == "flaky.jsonl" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		http.ServeFile(w, r, filepath.Join(fixture, filepath.Base(name)))
	}))
	defer srv.Close()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	want := []string{"agreeableness", "politically-liberal"}
	if err := FetchPersona(ctx, srv.Client(), srv.URL+"/persona/", dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := DirBehaviors(dir)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
	for _, n := range want {
		a, _ := os.ReadFile(filepath.Join(fixture, n+".jsonl"))
		b, _ := os.ReadFile(filepath.Join(dir, n+".jsonl"))
		if string(a) != string(b) {
			t.Errorf("%s: downloaded file differs from the served one", n)
		}
	}
	before := hits.Load()
	if err := FetchPersona(ctx, srv.Client(), srv.URL+"/persona", dir, want); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != before {
		t.Errorf("got %d requests for files already cached, want 0", hits.Load()-before)
	}
	if _, err := LoadPersona(PersonaOptions{Dir: dir, Statements: 2}); err != nil {
		t.Errorf("loading the download: %v", err)
	}

	for _, c := range []struct{ name, want string }{
		{"no-such-behaviour", "unknown behaviour \"no-such-behaviour\" (404"},
		{"garbage", "garbage.jsonl:1: not a JSON object"},
		{"flaky", "503"},
		{"../escape", "not a behaviour name"},
	} {
		err := FetchPersona(ctx, srv.Client(), srv.URL+"/persona", dir, []string{c.name})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
		if _, serr := os.Stat(filepath.Join(dir, c.name+".jsonl")); serr == nil {
			t.Errorf("%s: a bad download was kept", c.name)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*partial*"))
	if len(leftovers) > 0 {
		t.Errorf("partial files left behind: %v", leftovers)
	}

	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := FetchPersona(ctx2, srv.Client(), srv.URL+"/persona", t.TempDir(), []string{"agreeableness"}); err == nil {
		t.Error("got no error from a cancelled download")
	}
}

func TestFindPersonaDir(t *testing.T) {
	t.Setenv(PersonaDirEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if d, ok := FindPersonaDir(""); ok {
		t.Errorf("got %q with nothing configured, want none", d)
	}
	if d, ok := FindPersonaDir(fixture); !ok || d != fixture {
		t.Errorf("got %q, %v for the configured fixture, want it", d, ok)
	}
	t.Setenv(PersonaDirEnv, fixture)
	if d, ok := FindPersonaDir(""); !ok || d != fixture {
		t.Errorf("got %q, %v from $%s, want the fixture", d, ok, PersonaDirEnv)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	if d, ok := FindPersonaDir(missing); ok || d != missing {
		t.Errorf("got %q, %v for a missing configured dir, want it back, not found (no fallback)", d, ok)
	}
}
