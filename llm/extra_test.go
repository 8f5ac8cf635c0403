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

// TestStrictRetryAfterEmptyReply checks that an empty reply is not sent
// back as an empty assistant turn, which servers refuse, and that the
// strict instruction still goes out.
func TestStrictRetryAfterEmptyReply(t *testing.T) {
	for _, endpoint := range []string{EndpointChat, EndpointCompletions} {
		t.Run(endpoint, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) {
				if r.chat() {
					for _, m := range r.Body["messages"].([]any) {
						mm := m.(map[string]any)
						if c, _ := mm["content"].(string); mm["role"] == "assistant" && c == "" {
							return 400, `{"object":"error","message":"messages: assistant message content must not be empty","code":400}`
						}
					}
				}
				if r.strict() {
					return 200, textsReply(r, "5")
				}
				return 200, textsReply(r, "")
			})
			cfg := testConfig(srv.URL)
			cfg.Endpoint = endpoint
			c := newClient(t, cfg)
			r, err := c.Ask(context.Background(), question(pvq(t), values.Stimulation, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Answer.Valid || r.Answer.Value != 5 {
				t.Errorf("got %+v, want the strict retry's valid 5", r.Answer)
			}
			if got := srv.calls.Load(); got != 2 {
				t.Errorf("server saw %d requests, want 2", got)
			}
		})
	}
}
