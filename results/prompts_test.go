package results

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
)

// TestPromptsRoundTrip: prompts.csv quotes texts with commas, quotes and
// line breaks so that they read back as written, and samples is empty
// outside sample mode.
func TestPromptsRoundTrip(t *testing.T) {
	rows := []analysis.PromptRow{
		{Model: "m", Backend: "openai", Mode: "distribution", Endpoint: "chat", Persona: "PO", Style: "name", Instrument: "pvq40",
			Item: 3, System: `Imagine, "you"`, User: "Q?\n\nAnswer with a single number.", Agents: 12},
		{Model: "m2", Backend: "openai", Mode: "sample", Endpoint: "completions", Persona: "none", Style: "none", Instrument: "charity",
			Item: 1, Round: 2, User: "Earlier rounds:\r\n- you gave\n\nAnswer:", Agents: 5, Samples: 5},
	}
	var b bytes.Buffer
	if err := writePrompts(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), promptsHeader+"\n") || !strings.Contains(b.String(), "number.\",12,\n") {
		t.Errorf("got\n%s\nwant the header, then an empty samples field on the distribution row", b.String())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prompts.csv"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/csv reads \r\n inside a quoted field as \n.
	want := append([]analysis.PromptRow(nil), rows...)
	want[1].User = strings.ReplaceAll(want[1].User, "\r\n", "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestReadPromptsErrors(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadPrompts(dir); got != nil || err != nil {
		t.Errorf("no prompts.csv: got %v, %v; want nil, nil", got, err)
	}
	for _, c := range []struct{ name, text, want string }{
		{"header", "model,mode\n", "line 1: header"},
		{"agents", promptsHeader + "\nm,openai,sample,chat,PO,name,pvq40,1,0,,q,many,\n", `line 2: agents: "many"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "prompts.csv"), []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadPrompts(dir); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}
