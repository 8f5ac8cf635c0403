package llm

import (
	"context"
	"testing"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// A scale with an option of two characters (0-10) is never read from the
// first token's log-probabilities, where "1" cannot be told from the start
// of "10": distribution mode samples its questions, and a reply of "10" is
// the answer 10.
func TestDistributionSamplesMultiTokenScales(t *testing.T) {
	in := *pvq(t)
	in.Scale = questionnaires.Scale{Min: 0, Max: 10}
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.dist() {
			t.Errorf("asked for log-probabilities on a 0-10 scale")
			return 200, topReply(r, map[string]float64{"1": -0.01})
		}
		texts := make([]string, r.n())
		for i := range texts {
			texts[i] = "10"
		}
		return 200, textsReply(r, texts...)
	})
	cfg := testConfig(srv.URL)
	cfg.Mode = ModeDistribution
	c := newClient(t, cfg)
	r, err := c.Ask(context.Background(), question(&in, values.Power, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 10 {
		t.Errorf("got dist %v, answer %+v; want no distribution and a valid 10", r.Dist, r.Answer)
	}
}
