package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/society-sim/society/llm/modelserver"
)

// TestProbeModelServer probes the synthetic respondents behind the OpenAI
// API, with injected 429s and 500s that the probe's retries absorb.
func TestProbeModelServer(t *testing.T) {
	hs, srv := testModelServer(t, modelserver.Options{Seed: 3, ErrorRate: 0.2, Models: []string{"respondents"}})
	stdout, stderr, code := runCLI(t, "probe", "respondents", "--base-url", hs.URL+"/v1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"reachable:          yes",
		"model served:       yes (respondents listed)",
		"chat:               yes",
		"completions:        yes",
		"reasons:            no",
		"logprobs:           yes, 7 alternatives per token",
		"n:                  3 choices for n = 3",
		"seed:               yes",
		"structured outputs: honoured",
		`mode = "distribution"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if st := srv.Stats(); st.Errors == 0 {
		t.Errorf("server injected no faults (%+v): the test does not show the probe riding over them", st)
	}

	// A model the server does not serve: its 404 stops the probe with the
	// server's message.
	_, stderr, code = runCLI(t, "probe", "other-model", "--base-url", hs.URL+"/v1")
	if code != 1 || !strings.Contains(stderr, "other-model") || !strings.Contains(stderr, "404") {
		t.Errorf("unknown model: got exit %d, %s; want exit 1 with the server's 404", code, stderr)
	}
}

// reasoningServer answers as a reasoning model does on vLLM: a
// reasoning_content field unless chat_template_kwargs.enable_thinking is
// false, top_logprobs capped at 5, one choice per request.
func reasoningServer(t *testing.T) *httptest.Server {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/models" {
			io.WriteString(w, `{"object":"list","data":[{"id":"qwen3-8b","object":"model","owned_by":"vllm"}]}`)
			return
		}
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		if n, _ := req["n"].(float64); n > 1 {
			w.WriteHeader(400)
			io.WriteString(w, `{"object":"error","message":"n must be 1 when using greedy sampling, got 3.","type":"BadRequestError","param":null,"code":400}`)
			return
		}
		if k, _ := req["top_logprobs"].(float64); k > 5 {
			w.WriteHeader(400)
			io.WriteString(w, `{"object":"error","message":"Requested sample logprobs of 20, which is greater than max allowed: 5","type":"BadRequestError","param":null,"code":400}`)
			return
		}
		thinking := true
		if kw, ok := req["chat_template_kwargs"].(map[string]any); ok && kw["enable_thinking"] == false {
			thinking = false
		}
		msg := map[string]any{"role": "assistant", "content": "4"}
		tokens := 2
		if thinking {
			msg["reasoning_content"] = "The person values success, so this is like them. I would say 4."
			tokens = 180
		}
		choice := map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}
		if req["logprobs"] == true {
			top := []any{}
			for _, tok := range []string{"4", "5", "3", "<think>", "6"} {
				top = append(top, map[string]any{"token": tok, "logprob": -1.2})
			}
			choice["logprobs"] = map[string]any{"content": []any{map[string]any{"token": "4", "logprob": -1.2, "top_logprobs": top}}}
		}
		if r.URL.Path == "/v1/completions" {
			choice = map[string]any{"index": 0, "text": "4", "finish_reason": "length"}
		}
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": "qwen3-8b",
			"choices": []any{choice}, "usage": map[string]any{"prompt_tokens": 90, "completion_tokens": tokens, "total_tokens": 90 + tokens}})
	}))
	t.Cleanup(hs.Close)
	return hs
}

func TestProbeReasoningModel(t *testing.T) {
	hs := reasoningServer(t)
	dir := t.TempDir()
	sc := writeScenario(t, dir, "qwen", `name = "qwen"
[[models]]
base_url = "`+hs.URL+`/v1"
model = "qwen3-8b"
[[questionnaires]]
name = "pvq40"
`)
	stdout, stderr, code := runCLI(t, "probe", sc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"model served:       yes (qwen3-8b listed)",
		`reasons:            yes, in reasoning_content; switched off by {"chat_template_kwargs":{"enable_thinking":false}}`,
		"logprobs:           yes, 5 alternatives per token (the server caps top_logprobs at 5)",
		"n:                  no (the server takes one choice per request)",
		`mode = "sample"`,
		"max_tokens = 64",
		"extra_body = { chat_template_kwargs = { enable_thinking = false } }",
		"fewer than the 6 options",
		`note: the scenario asks for mode = "distribution"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestProbeUnreachable(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	_, stderr, code := runCLI(t, "probe", "m", "--base-url", url+"/v1")
	if code != 1 || !strings.Contains(stderr, url+"/v1/models") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("got exit %d, %s; want exit 1 naming %s and the refused connection", code, stderr, url)
	}
}

// A server that answers with a refusal is reachable: the probe says it
// refused, with the server's message, not that nothing is there.
func TestProbeRefused(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`)
	}))
	t.Cleanup(hs.Close)
	stdout, stderr, code := runCLI(t, "probe", "m", "--base-url", hs.URL+"/v1")
	if code != 1 || !strings.Contains(stdout, "reachable:          yes, but it refused") || !strings.Contains(stdout, "You exceeded your current quota") {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 1 saying the endpoint refused with its message", code, stdout, stderr)
	}
}

// TestProbeUnknownName: a name that is neither a scenario file nor a
// built-in is bad input, and the error says how to probe a model by name.
func TestProbeUnknownName(t *testing.T) {
	_, stderr, code := runCLI(t, "probe", "llama3-8b")
	if code != 2 || !strings.Contains(stderr, "no built-in scenario") || !strings.Contains(stderr, "--base-url URL") {
		t.Errorf("got exit %d, stderr %q; want 2, naming the missing scenario and the --base-url form", code, stderr)
	}
}
