package questionnaires

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTOMLTooDeep(t *testing.T) {
	deep := "a = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n"
	cases := []struct {
		name, doc string
		want      int
	}{
		{"flat", "[x]\na = [1, [2, 3]]\n[[y]]\nb = { c = [1] }\n", 0},
		{"deep array", "name = \"x\"\n" + deep, 2},
		{"deep inline table", "\n\na = " + strings.Repeat("{b = ", 40) + "1" + strings.Repeat("}", 40), 3},
		{"brackets in strings", "a = \"" + strings.Repeat("[", 40) + "\"\nb = '" + strings.Repeat("{", 40) + "'\n", 0},
		{"brackets in multi-line strings", "a = \"\"\"\n" + strings.Repeat("[", 40) + "\n\"\"\"\nb = '''\n" + strings.Repeat("[", 40) + "'''\n", 0},
		{"escaped quote", `a = "\"` + strings.Repeat("[", 40) + `"` + "\n", 0},
		{"brackets in comments", "# " + strings.Repeat("[", 40) + "\n", 0},
		{"line after multi-line string", "a = \"\"\"\n\n\"\"\"\n" + deep, 4},
		{"closing brackets balance", strings.Repeat("a = [[[[]]]]\n", 100), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := TOMLTooDeep([]byte(c.doc), 32); got != c.want {
				t.Errorf("got line %d, want %d", got, c.want)
			}
		})
	}
}

// TestParseLimits: a deep document is refused before it is decoded (60 KB
// of nested arrays cost the decoder 1.4 GB), and a huge file is refused
// without being read.
func TestParseLimits(t *testing.T) {
	n := 30000
	_, err := Parse([]byte("name = \"x\"\nitems = "+strings.Repeat("[", n)+strings.Repeat("]", n)+"\n"), "deep.toml")
	if err == nil || !strings.Contains(err.Error(), "deep.toml:2: arrays or tables nested more than 32 deep") {
		t.Errorf("got %v, want the nesting refused at deep.toml:2", err)
	}

	huge := filepath.Join(t.TempDir(), "huge.toml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil { // sparse: takes no disk space
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(huge)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), huge) || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("got %v, want ErrTooLarge naming the file and the limit", err)
	}
}
