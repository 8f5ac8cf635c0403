package llm

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/society-sim/society/values"
)

// TestClientExtraBody checks that reasoning_effort and the extra body
// fields reach the server with every request, that the client's own
// fields win over them, and that they change the cache key.
func TestClientExtraBody(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, textsReply(r, "2") })
	cfg := testConfig(srv.URL)
	cfg.ReasoningEffort = "low"
	cfg.ExtraBody = map[string]any{"chat_template_kwargs": map[string]any{"enable_thinking": false}, "top_k": int64(20)}
	c := newClient(t, cfg)
	if _, err := c.Ask(context.Background(), question(pvq(t), values.Stimulation, 0, 0)); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()[0]
	got, _ := json.Marshal(map[string]any{"effort": r.Body["reasoning_effort"], "kwargs": r.Body["chat_template_kwargs"], "top_k": r.Body["top_k"], "temperature": r.Body["temperature"]})
	want := `{"effort":"low","kwargs":{"enable_thinking":false},"temperature":1,"top_k":20}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	plain := newClient(t, testConfig(srv.URL))
	if plain.params == c.params {
		t.Error("cache parameters do not change with the extra body")
	}
}
