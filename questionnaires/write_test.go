package questionnaires

import (
	"bytes"
	"reflect"
	"testing"
)

// TestWriteParses: every built-in instrument written by Write is read back
// by Parse as the same instrument.
func TestWriteParses(t *testing.T) {
	for _, name := range Names() {
		in, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := Write(&b, in); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := Parse(b.Bytes(), name+".toml")
		if err != nil {
			t.Fatalf("%s: parse the written file: %v", name, err)
		}
		if !reflect.DeepEqual(back, in) {
			t.Errorf("%s: the written file parses to another instrument", name)
		}
	}
}
