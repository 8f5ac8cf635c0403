package llm

import (
	"net/http/httptest"
	"testing"

	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

// srvTestServer starts the model server on loopback, answering from the
// synthetic respondents: the client's tests meet it as a run would.
func srvTestServer(t *testing.T, o modelserver.Options) (*modelserver.Server, *httptest.Server) {
	t.Helper()
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	s := modelserver.New(NewSynthetic(1, means), o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}
