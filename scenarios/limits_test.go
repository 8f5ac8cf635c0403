package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimits: scenario and instrument files over their size or nesting
// limit are refused with a clear problem before the TOML decoder sees them.
func TestLimits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	n := 30000 // 60 KB
	deep := write("deep.toml", "name = \"deep\"\n\nx = "+strings.Repeat("[", n)+strings.Repeat("]", n)+"\n")
	large := write("large.toml", "name = \"large\"\n"+strings.Repeat("# padding\n", 120_000))
	huge := filepath.Join(dir, "huge.toml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil { // sparse: no disk space used
		t.Fatal(err)
	}
	f.Close()
	inst := write("inst.toml", "name = \"inst\"\n[[questionnaires]]\nname = \"mine\"\nfile = \"huge.toml\"\n")

	cases := []struct {
		path string
		want []string
	}{
		{deep, []string{"deep.toml:3", "nested more than 32 deep"}},
		{large, []string{"large.toml", "too large", "1 MiB"}},
		{huge, []string{"huge.toml", "too large"}},
		{inst, []string{"inst.toml:4", "questionnaires[0].file", "too large"}},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			_, err := Load(c.path)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a problem wrapping ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestBaseURLSecretsRefused: a base_url carrying a secret in any form is
// refused, and the message never shows the secret.
func TestBaseURLSecretsRefused(t *testing.T) {
	_, err := Load("testdata/bad/base_url_secrets.toml")
	if err == nil {
		t.Fatal("got no error, want every base_url refused")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("the message shows the secret: %v", err)
	}
	if n := strings.Count(err.Error(), "].base_url: "); n != 5 {
		t.Errorf("got %d base_url problems, want 5", n)
	}
}
