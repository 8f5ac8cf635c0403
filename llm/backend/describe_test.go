package backend

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestDescribeOpensNoCache: models built only to be checked or described
// (the analysis service, validate) call no model, so they must neither
// create nor open the user's reply cache, which an agent host on the same
// machine may be using.
func TestDescribeOpensNoCache(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("HOME", home)
	sc, err := scenarios.Parse([]byte(`name = "described"
[population]
size = 20
[[models]]
name = "m"
backend = "openai"
base_url = "http://127.0.0.1:1/v1"
model = "some-model"
[[questionnaires]]
name = "pvq40"
`), "described.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, done := Describe()
	if _, err := sim.NewPlan(sc, b); err != nil {
		t.Fatalf("plan: %v", err)
	}
	done()
	if _, err := os.Stat(filepath.Join(home, "cache")); !os.IsNotExist(err) {
		t.Errorf("cache directory: got %v, want none created", err)
	}
}
