package results

import (
	"bytes"
	"encoding/csv"
	"io"
	"testing"

	"github.com/society-sim/society/analysis"
)

// TestCSVQuotesNames: a name holding a comma, a quote or a line break
// stays one field of its row, whichever table it goes into.
func TestCSVQuotesNames(t *testing.T) {
	name := "a,\"b\"\nc"
	tables := []struct {
		file   string
		fields int
		write  func(io.Writer) error
	}{
		{"value_structure.csv", 18, func(w io.Writer) error {
			return writeValueStructure(w, []analysis.ValueStructureRow{{Model: name, Strategy: "h-np", Instrument: "pvq40", Reference: "r"}})
		}},
		{"value_behavior.csv", 19, func(w io.Writer) error {
			return writeValueBehavior(w, []analysis.ValueBehaviorRow{{Model: name, Strategy: "h-np", Instrument: "bfi2"}})
		}},
		{"persona_agreement.csv", 5, func(w io.Writer) error {
			return writeAgreement(w, []analysis.AgreementRow{{Model: name, Behavior: "b", Group: "SD"}})
		}},
		{"model_specific.csv", 8, func(w io.Writer) error {
			return writeCalibration(w, []analysis.CalibrationRow{{Model: name, Persona: "SD"}})
		}},
	}
	for _, tc := range tables {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&b).ReadAll()
			if err != nil {
				t.Fatalf("read back: %v\n%s", err, b.String())
			}
			if len(recs) != 2 {
				t.Fatalf("got %d records, want 2 (header and one row)", len(recs))
			}
			if len(recs[1]) != tc.fields || len(recs[0]) != tc.fields || recs[1][0] != name {
				t.Errorf("got row %q, want %d fields starting with %q", recs[1], tc.fields, name)
			}
		})
	}
	if got, want := csvField(name), `"a,""b""`+"\nc\""; got != want {
		t.Errorf("csvField: got %q, want %q", got, want)
	}
	if got := csvField("llama3:8b"); got != "llama3:8b" {
		t.Errorf("csvField: got %q, want it unquoted", got)
	}
}
