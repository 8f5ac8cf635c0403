package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openAIServer is a small OpenAI-compatible endpoint written for these
// tests: it records every request it sees and answers with respond.
type openAIServer struct {
	*httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	seen    []seenReq
	respond func(r seenReq) (status int, body any)
	pipe    *pipeListener // the listener of newPipeOpenAIServer
}

// seenReq is a request as the server saw it.
type seenReq struct {
	Ctx    context.Context // the request's context: done when the client gives up
	Path   string
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func newOpenAIServer(t testing.TB, respond func(r seenReq) (int, any)) *openAIServer {
	t.Helper()
	s := &openAIServer{respond: respond}
	s.Server = httptest.NewServer(s.handler())
	t.Cleanup(s.Close)
	return s
}

// newPipeOpenAIServer is newOpenAIServer on in-memory pipes, for a test
// inside a synctest bubble: the handler's waits and the client's timeouts
// run on the bubble's clock. Clients reach it through pipeClient.
func newPipeOpenAIServer(t testing.TB, respond func(r seenReq) (int, any)) *openAIServer {
	t.Helper()
	s := &openAIServer{respond: respond, pipe: newPipeListener()}
	s.Server = httptest.NewUnstartedServer(s.handler())
	s.Listener.Close()
	s.Listener = s.pipe
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// pipeClient is newClient for a server of newPipeOpenAIServer.
func pipeClient(t testing.TB, s *openAIServer, cfg ClientConfig) *Client {
	t.Helper()
	c := newClient(t, cfg)
	c.tr.DialContext = s.pipe.dial
	return c
}

func (s *openAIServer) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var body map[string]any
		if err := dec.Decode(&body); err != nil {
			http.Error(w, "bad json: "+err.Error(), http.StatusBadRequest)
			return
		}
		req := seenReq{Ctx: r.Context(), Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Raw: raw}
		s.mu.Lock()
		s.seen = append(s.seen, req)
		s.mu.Unlock()
		status, out := s.respond(req)
		if h, ok := out.(http.Header); ok {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if s, ok := out.(string); ok {
			io.WriteString(w, s)
			return
		}
		json.NewEncoder(w).Encode(out)
	})
}

func (s *openAIServer) requests() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.seen...)
}

func (r seenReq) chat() bool { return strings.HasSuffix(r.Path, "/chat/completions") }

func (r seenReq) num(field string) (float64, bool) {
	n, ok := r.Body[field].(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// n is the number of choices asked for.
func (r seenReq) n() int {
	if f, ok := r.num("n"); ok && f > 0 {
		return int(f)
	}
	return 1
}

// seed is the request's seed, read exactly.
func (r seenReq) seed() (uint64, bool) {
	n, ok := r.Body["seed"].(json.Number)
	if !ok {
		return 0, false
	}
	var u uint64
	if err := json.Unmarshal([]byte(n), &u); err != nil {
		return 0, false
	}
	return u, true
}

// text is the whole prompt: every message of a chat, or the prompt.
func (r seenReq) text() string {
	if !r.chat() {
		s, _ := r.Body["prompt"].(string)
		return s
	}
	var b strings.Builder
	msgs, _ := r.Body["messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		c, _ := mm["content"].(string)
		b.WriteString(c)
		b.WriteString("\n")
	}
	return b.String()
}

// strict reports whether the request is a retry with the strict
// instruction.
func (r seenReq) strict() bool { return strings.Contains(r.text(), "could not be read") }

// dist reports whether the request asks for log-probabilities.
func (r seenReq) dist() bool {
	_, ok := r.Body["logprobs"]
	return ok
}

// wait sleeps for d or until the client gives the request up. Its d is
// on the synctest clock of a newPipeOpenAIServer: use it only there.
func (r seenReq) wait(d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Ctx.Done():
	}
}

func usage(n int) map[string]any {
	return map[string]any{"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
}

// textsReply answers with one choice per text, as chat or completion.
func textsReply(r seenReq, texts ...string) map[string]any {
	choices := make([]any, len(texts))
	for i, t := range texts {
		if r.chat() {
			choices[i] = map[string]any{"index": i, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": t}}
		} else {
			choices[i] = map[string]any{"index": i, "finish_reason": "stop", "text": t}
		}
	}
	obj := "chat.completion"
	if !r.chat() {
		obj = "text_completion"
	}
	return map[string]any{"id": "x", "object": obj, "model": "m", "choices": choices, "usage": usage(len(texts))}
}

// topReply answers a one-token request with the given top probabilities,
// in the chat (top_logprobs list) or completions (token → logprob map)
// shape.
func topReply(r seenReq, top map[string]float64) map[string]any {
	toks := make([]string, 0, len(top))
	for t := range top {
		toks = append(toks, t)
	}
	sort.Slice(toks, func(i, j int) bool { return top[toks[i]] > top[toks[j]] })
	best := toks[0]
	if r.chat() {
		list := make([]any, len(toks))
		for i, t := range toks {
			list[i] = map[string]any{"token": t, "logprob": math.Log(top[t])}
		}
		return map[string]any{"id": "x", "object": "chat.completion", "model": "m", "usage": usage(1),
			"choices": []any{map[string]any{
				"index": 0, "finish_reason": "length",
				"message":  map[string]any{"role": "assistant", "content": best},
				"logprobs": map[string]any{"content": []any{map[string]any{"token": best, "logprob": math.Log(top[best]), "top_logprobs": list}}},
			}}}
	}
	m := map[string]float64{}
	for t, p := range top {
		m[t] = math.Log(p)
	}
	return map[string]any{"id": "x", "object": "text_completion", "model": "m", "usage": usage(1),
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "length", "text": best,
			"logprobs": map[string]any{"tokens": []string{best}, "token_logprobs": []float64{math.Log(top[best])},
				"top_logprobs": []any{m}, "text_offset": []int{0}},
		}}}
}

func apiError(msg string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}}
}
