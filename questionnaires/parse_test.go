package questionnaires

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("got %d good files (%v), want at least one", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("got error %v, want none", err)
			}
		})
	}
}

func TestLoadUserInstrument(t *testing.T) {
	in, err := Load("testdata/good/trust.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The file lists id 2 first; loading puts the items in id order.
	for i, it := range in.Items {
		if it.ID != i+1 {
			t.Errorf("Items[%d].ID: got %d, want %d", i, it.ID, i+1)
		}
	}
	if got, want := in.Instruction, "For each statement, say how much you agree with it.\nAnswer with a single number."; got != want {
		t.Errorf("instruction: got %q, want %q", got, want)
	}
	if got, want := strings.Join(in.Keys(), ","), "trust,reliance"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	if got, want := strings.Join(in.Facets(), ","), "people,strangers"; got != want {
		t.Errorf("facets: got %s, want %s", got, want)
	}
	if in.Kind != KindTraits {
		t.Errorf("kind: got %q, want %q", in.Kind, KindTraits)
	}
}

// Every bad file names itself, the line and the field of each problem.
func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"labels.toml", []string{
			"testdata/bad/labels.toml:8: scale.labels: 4 labels for 5 points (1..5): want one label per point",
		}},
		{"duplicate_id.toml", []string{
			"testdata/bad/duplicate_id.toml:16: items[1].id: duplicate id 1 (also items[0])",
		}},
		{"unknown_value.toml", []string{
			`testdata/bad/unknown_value.toml:63: items[10].key: unknown value key "XX" (want one of SD, ST, HE, AC, PO, SE, CO, TR, BE, UN)`,
		}},
		{"unknown_key.toml", []string{
			`testdata/bad/unknown_key.toml:3: unknown key "version"`,
			`testdata/bad/unknown_key.toml:16: items[1].text: missing: the item needs a text`,
			`testdata/bad/unknown_key.toml:18: items[1]: unknown key "texts"`,
		}},
	}
	files, _ := filepath.Glob("testdata/bad/*.toml")
	if len(files) != len(tests) {
		t.Errorf("got %d bad files, want %d (one test case each)", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := Load(filepath.Join("testdata/bad", tt.file))
			if err == nil {
				t.Fatalf("got instrument %q, want an error", in.Name)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got error\n%s\nwant\n%s", got, want)
			}
		})
	}
}

const goodHead = `name = "x"
kind = "behaviour"
instruction = "How often?"
`

const goodScale = `
[scale]
min = 1
max = 3
labels = ["Never", "Sometimes", "Often"]
`

const goodItem = `
[[items]]
id = 1
text = "Walked."
key = "walk"
`

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error; none for a valid file
	}{
		{"valid", goodHead + goodScale + goodItem, nil},
		{"inline tables", goodHead + `scale = { min = 0, max = 1, labels = ["no", "yes"] }
items = [{ id = 1, text = "Ran.", key = "run" }]
`, nil},
		{"syntax", goodHead + "[scale\n", []string{"x.toml:5: expected"}},
		{"type", goodHead + goodScale + "\n[[items]]\nid = \"one\"\ntext = \"t\"\nkey = \"k\"\n", []string{"x.toml:11: items.id: incompatible types"}},
		{"missing name and kind", `instruction = "i"` + goodScale + goodItem, []string{"x.toml: name: missing", "x.toml: kind: missing"}},
		{"bad name", strings.Replace(goodHead, `"x"`, `"My Scale"`, 1) + goodScale + goodItem, []string{`x.toml:1: name: "My Scale": use lowercase`}},
		{"unknown kind", strings.Replace(goodHead, "behaviour", "behavior", 1) + goodScale + goodItem, []string{`x.toml:2: kind: unknown kind "behavior"`}},
		{"no instruction", strings.Replace(goodHead, `"How often?"`, `" "`, 1) + goodScale + goodItem, []string{"x.toml:3: instruction: missing"}},
		{"adapted without citation", goodHead + "adapted = true\n" + goodScale + goodItem, []string{"x.toml:4: citation: missing"}},
		{"no items", goodHead + goodScale, []string{"x.toml: items: no items"}},
		{"one point", goodHead + "[scale]\nmin = 1\nmax = 1\nlabels = [\"a\"]\n" + goodItem, []string{"x.toml:6: scale.max: 1..1 has 1 points"}},
		{"twelve points", goodHead + "[scale]\nmin = 0\nmax = 11\nlabels = []\n" + goodItem, []string{"scale.max: 0..11 has 12 points"}},
		{"negative min", goodHead + "[scale]\nmin = -1\nmax = 1\nlabels = [\"a\",\"b\",\"c\"]\n" + goodItem, []string{"x.toml:5: scale.min: -1"}},
		{"max below min", goodHead + "[scale]\nmin = 3\nmax = 1\nlabels = []\n" + goodItem, []string{"x.toml:6: scale.max: 1 is below min 3"}},
		{"empty label", goodHead + "[scale]\nmin = 1\nmax = 2\nlabels = [\"a\", \"\"]\n" + goodItem, []string{"x.toml:7: scale.labels: label 2 is empty"}},
		{"no scale", goodHead + goodItem, []string{"scale.max: 0..0 has 1 points"}},
		{"id out of range", goodHead + goodScale + strings.Replace(goodItem, "id = 1", "id = 2", 1), []string{"x.toml:11: items[0].id: 2: want an id from 1 to 1"}},
		{"empty text and key", goodHead + goodScale + "\n[[items]]\nid = 1\ntext = \"\"\nkey = \"\"\n", []string{"x.toml:12: items[0].text: missing", "x.toml:13: items[0].key: missing"}},
		{"unknown scale key", goodHead + strings.Replace(goodScale, "max = 3", "max = 3\nstep = 1", 1) + goodItem, []string{`x.toml:8: scale: unknown key "step"`}},
		{"unknown table", goodHead + goodScale + goodItem + "\n[extra]\na = 1\nb = 2\n", []string{`x.toml:15: unknown key "extra"`}},
		{"case matters", goodHead + "Title = \"t\"\n" + goodScale + goodItem, []string{`x.toml:4: unknown key "Title"`}},
		{"value name instead of code", strings.Replace(goodHead, "behaviour", "values", 1) + goodScale + strings.Replace(goodItem, `"walk"`, `"Power"`, 1),
			[]string{`items[0].key: "Power": write the value code "PO"`}},
		{"value missing", strings.Replace(goodHead, "behaviour", "values", 1) + goodScale + strings.Replace(goodItem, `"walk"`, `"PO"`, 1),
			[]string{"x.toml: items: no item for value SD, ST, HE, AC, SE, CO, TR, BE, UN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Parse([]byte(tt.toml), "x.toml")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if len(in.Keys()) == 0 {
					t.Errorf("got no keys, want the keys precomputed")
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if err == nil || !strings.Contains(err.Error(), "none.toml") {
		t.Errorf("got %v, want an error naming the file", err)
	}
}

func TestValidate(t *testing.T) {
	in := &Instrument{
		Name: "made", Kind: KindBehaviour, Instruction: "How often?",
		Scale: Scale{Min: 1, Max: 2, Labels: []string{"no", "yes"}},
		Items: []Item{{ID: 2, Text: "b", Key: "y"}, {ID: 1, Text: "a", Key: "x"}},
	}
	if err := in.Validate(); err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if got, want := strings.Join(in.Keys(), ","), "x,y"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	in.Items[0].Key = ""
	if err := in.Validate(); err == nil || !strings.Contains(err.Error(), "made: items[0].key: missing") {
		t.Errorf("got %v, want a missing key error", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"data", "testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			// Large seeds make minimising new inputs slow; the small
			// files cover the same syntax.
			if len(b) < 8<<10 {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(goodHead + goodScale + goodItem))
	f.Add([]byte("text = '''\n[[items]]\nid = 1\n'''\n[[items]]\n\"a\" = 1\n'b' = 2\n= 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Parse(data, "fuzz.toml")
		if err != nil {
			if in != nil {
				t.Fatalf("got an instrument with error %v, want nil", err)
			}
			return
		}
		// A valid instrument must score any answers without panicking.
		answers := make([]int, len(in.Items))
		for i := range answers {
			answers[i] = in.Scale.Min + i%in.Scale.Points()
		}
		if got, want := len(in.Score(answers)), len(in.Keys()); got != want {
			t.Fatalf("got %d scores, want %d", got, want)
		}
		in.ScoreFacets(answers)
		in.ValueKeys()
	})
}
