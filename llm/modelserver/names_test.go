package modelserver

import (
	"testing"

	"github.com/society-sim/society/llm"
)

// TestClientKnowsTheServer: the server declares itself under the names
// llm's client looks for, so a run against it is never taken for a run
// against a model.
func TestClientKnowsTheServer(t *testing.T) {
	for _, c := range []struct{ what, got, want string }{
		{"backend header", backendHeader, llm.BackendHeader},
		{"backend name", syntheticName, llm.SyntheticName},
		{"fingerprint", srvFingerprint, llm.SyntheticFingerprint},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	var _ Respondents = (*llm.Synthetic)(nil)
}
