package scenarios

import (
	"strings"
	"testing"
)

// A model of an endpoint without max_tokens is warned of with its field
// and line; a synthetic model or one with a budget is not.
func TestWarnings(t *testing.T) {
	sc, err := Parse([]byte(`name = "w"
[[models]]
name = "s"
backend = "synthetic"
[[models]]
name = "a"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
[[models]]
name = "b"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
max_tokens = 200
`), "w.toml")
	if err != nil {
		t.Fatal(err)
	}
	ws := sc.Warnings(32)
	if len(ws) != 1 || !strings.Contains(ws[0].Error(), "models[1].max_tokens") || !strings.Contains(ws[0].Error(), `model "a" gets 32 tokens`) ||
		!strings.Contains(ws[0].Error(), "w.toml:") {
		t.Errorf("got %v, want one warning of models[1].max_tokens at its line", ws)
	}
}
