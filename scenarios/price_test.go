package scenarios

import (
	"strings"
	"testing"
)

// TestModelPrices: the prices per million tokens are read for an
// OpenAI-compatible model, and a negative or non-number price is refused
// with its file, line and field.
func TestModelPrices(t *testing.T) {
	const base = "name = \"p\"\n[[models]]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n"
	sc, err := Parse([]byte(base+"price_per_mtok_in = 0.15\nprice_per_mtok_out = 0.6\n"), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if m := sc.Models[0]; m.PricePerMTokIn != 0.15 || m.PricePerMTokOut != 0.6 {
		t.Errorf("got prices %v, %v; want 0.15, 0.6", m.PricePerMTokIn, m.PricePerMTokOut)
	}
	for _, tc := range []struct{ line, want string }{
		{"price_per_mtok_in = -1", "p.toml:6: models[0].price_per_mtok_in: must be a price"},
		{"price_per_mtok_out = \"1\"", "p.toml:6: models[0].price_per_mtok_out"},
	} {
		_, err := Parse([]byte(base+tc.line+"\n"), "p.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}
