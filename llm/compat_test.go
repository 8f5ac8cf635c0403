package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// compatCase is one reply of testdata/compat/cases.json.
type compatCase struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	Mode     string          `json:"mode"`
	Status   int             `json:"status"`
	Body     json.RawMessage `json:"body"`
	Expected string          `json:"expected"`
}

func loadCases(t testing.TB, path string) map[string]compatCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var list []compatCase
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]compatCase{}
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

// compatBody is the exact body of a case, as the server sent it.
func compatBody(t testing.TB, name string) string {
	t.Helper()
	c, ok := loadCases(t, filepath.Join("testdata", "compat", "cases.json"))[name]
	if !ok {
		t.Fatalf("no case %q in testdata/compat/cases.json", name)
	}
	return string(c.Body)
}

// ollamaExchange is one recorded exchange with an Ollama server.
type ollamaExchange struct {
	ReqBody  json.RawMessage `json:"req_body"`
	Status   int             `json:"status"`
	RespBody json.RawMessage `json:"resp_body"`
}

func ollamaBody(t testing.TB, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "compat", "ollama", file))
	if err != nil {
		t.Fatal(err)
	}
	var x ollamaExchange
	if err := json.Unmarshal(data, &x); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return string(x.RespBody)
}

// sharedCompatDir finds the shared copy of the compatibility cases in a
// parent directory (shared/compat), or "" when there is none.
func sharedCompatDir() string {
	if d := os.Getenv("SOCIETY_COMPAT_DIR"); d != "" {
		return d
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		return ""
	}
	for range 5 {
		dir = filepath.Dir(dir)
		d := filepath.Join(dir, "shared", "compat")
		if _, err := os.Stat(filepath.Join(d, "cases.json")); err == nil {
			return d
		}
	}
	return ""
}

// TestCompatCopiesCurrent: the bodies kept under testdata are those of the
// shared cases, when that copy is present.
func TestCompatCopiesCurrent(t *testing.T) {
	dir := sharedCompatDir()
	if dir == "" {
		t.Skip("no shared compat directory")
	}
	shared := loadCases(t, filepath.Join(dir, "cases.json"))
	ours := loadCases(t, filepath.Join("testdata", "compat", "cases.json"))
	for name, c := range ours {
		s, ok := shared[name]
		if !ok {
			continue
		}
		var a, b any
		json.Unmarshal(c.Body, &a)
		json.Unmarshal(s.Body, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Errorf("case %s: the body under testdata differs from %s", name, dir)
		}
	}
}

// logBuffer collects a client's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// messages returns a chat request's messages as role and content.
func (r seenReq) messages() [][2]string {
	var out [][2]string
	msgs, _ := r.Body["messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		content, _ := mm["content"].(string)
		out = append(out, [2]string{role, content})
	}
	return out
}

// TestCompatSampleReplies serves the exact bodies of the sample-mode
// cases of real servers and reasoning models, and checks the answer each
// becomes: reasoning never read as the answer, cut-off replies invalid as
// truncated, and a strict retry that neither shows an empty assistant turn
// nor repeats the budget that failed.
func TestCompatSampleReplies(t *testing.T) {
	in := pvq(t)
	partsBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"Somewhat "},{"type":"text","text":"like me"}]},"finish_reason":"stop"}]}`
	reasoningFieldBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"5","reasoning":"Between 2 and 3, I think 2"},"finish_reason":"stop"}]}`
	thinkingLengthBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"<thinking>The 6 portraits I know"},"finish_reason":"stop"}]}`
	closeOnlyBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"a 2 would understate it</think>\n6"},"finish_reason":"stop"}]}`
	cutSentenceBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"I would pick 3, though on second"},"finish_reason":"length"}]}`
	bareLengthBody := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"5"},"finish_reason":"length"}]}`
	tests := []struct {
		name      string
		body      string
		value     int  // the valid answer, or 0
		truncated bool // invalid with reason truncated
		// emptyFirst: the first reply had no answer text, so the strict
		// retry shows no assistant turn.
		emptyFirst bool
	}{
		{"reasoning_empty", compatBody(t, "reasoning_empty"), 0, true, true},
		{"think_truncated", compatBody(t, "think_truncated"), 0, true, true},
		{"think_inline", compatBody(t, "think_inline"), 4, false, false},
		{"content parts", partsBody, 4, false, false},
		{"reasoning field", reasoningFieldBody, 5, false, false},
		{"unclosed thinking, stop", thinkingLengthBody, 0, true, true},
		{"closing tag only", closeOnlyBody, 6, false, false},
		{"cut-off sentence", cutSentenceBody, 0, true, false},
		{"bare answer at the limit", bareLengthBody, 5, false, false},
		{"ollama gibberish with a digit", ollamaBody(t, "ollama-06-gibberish-with-a-digit.json"), 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, tt.body })
			cfg := testConfig(srv.URL)
			cfg.MaxTokens = 16
			var logs logBuffer
			cfg.Logger = logs.logger()
			c := newClient(t, cfg)
			const agents = 3
			var qs []*agent.Question
			for i := range agents {
				qs = append(qs, question(in, values.Security, 1, i))
			}
			replies := askAll(t, c, qs)
			valid, invalid := 0, 0
			for i, r := range replies {
				a := r.Answer
				switch {
				case a.Valid:
					valid++
					if a.Value != tt.value {
						t.Errorf("sample %d: got valid %d (raw %q), want %d", i, a.Value, a.Raw, tt.value)
					}
				default:
					invalid++
					if tt.value != 0 {
						t.Errorf("sample %d: got invalid (%s), want valid %d", i, a.Reason, tt.value)
					}
					if tt.truncated && !strings.HasPrefix(a.Reason, "truncated") {
						t.Errorf("sample %d: got reason %q, want it to start with truncated", i, a.Reason)
					}
				}
			}
			if valid+invalid != agents {
				t.Errorf("got %d valid and %d invalid, want %d in all", valid, invalid, agents)
			}
			if st := c.Stats(); st.Invalid != int64(invalid) {
				t.Errorf("stats: got %d invalid, want %d", st.Invalid, invalid)
			}
			strict := 0
			for _, r := range srv.requests() {
				if !r.strict() {
					if f, _ := r.num("max_tokens"); f != 16 {
						t.Errorf("first request max_tokens: got %v, want 16", f)
					}
					continue
				}
				strict++
				msgs := r.messages()
				for _, m := range msgs {
					if m[0] == "assistant" && strings.TrimSpace(m[1]) == "" {
						t.Errorf("strict retry sent an empty assistant turn: %v", msgs)
					}
					if m[0] == "assistant" && strings.Contains(m[1], "<think") {
						t.Errorf("strict retry showed the reasoning again: %q", m[1])
					}
				}
				hasAssistant := len(msgs) > 0 && msgs[len(msgs)-2][0] == "assistant"
				if tt.emptyFirst == hasAssistant {
					t.Errorf("strict retry messages %v: want an assistant turn %v", msgs, !tt.emptyFirst)
				}
				for i := 1; i < len(msgs); i++ {
					if msgs[i][0] == msgs[i-1][0] {
						t.Errorf("strict retry has two %s turns in a row", msgs[i][0])
					}
				}
				want := 16.0
				if tt.truncated {
					want = 16 * truncatedBudget
				}
				if f, _ := r.num("max_tokens"); f != want {
					t.Errorf("strict retry max_tokens: got %v, want %v", f, want)
				}
			}
			if want := invalid; strict != want {
				t.Errorf("got %d strict retries, want %d (one per unreadable sample)", strict, want)
			}
			if tt.truncated {
				if n := strings.Count(logs.String(), "cut off by the token limit"); n != 1 {
					t.Errorf("got %d warnings about cut-off replies, want 1:\n%s", n, logs.String())
				}
			}
		})
	}
}

// TestCompatErrorIn200: an error object sent with HTTP 200 is a failed
// request carrying the server's message, never "no choices"; a permanent
// one is not retried.
func TestCompatErrorIn200(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, compatBody(t, "error_in_200") })
	c := newClient(t, testConfig(srv.URL))
	_, err := c.Ask(context.Background(), question(pvq(t), values.None, 0, 0))
	if err == nil {
		t.Fatal("got no error, want the server's")
	}
	if !strings.Contains(err.Error(), "The model `fake-8b` does not exist.") || strings.Contains(err.Error(), "no choices") {
		t.Errorf("got error %q, want the server's message", err)
	}
	if got := srv.calls.Load(); got != 1 {
		t.Errorf("got %d requests, want 1 (a model that does not exist is not retried)", got)
	}
}

// TestCompatErrorIn200Logprobs: a transient error object on the
// log-probability request only is retried; when it persists the question
// is sampled instead, and that fallback is not stored, so that a rerun
// against a healthy server asks for the distribution again.
func TestCompatErrorIn200Logprobs(t *testing.T) {
	in := pvq(t)
	q := question(in, values.Benevolence, 2, 0)
	cache := NewCache(mustFileStore(t))
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.dist() {
			return 200, compatBody(t, "error_in_200_logprobs")
		}
		return 200, textsReply(r, "4")
	})
	cfg := testConfig(srv.URL)
	cfg.Mode, cfg.Cache, cfg.MaxRetries = ModeDistribution, cache, 2
	c := newClient(t, cfg)
	r, err := c.Ask(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 4 {
		t.Fatalf("got %+v, want a sampled 4", r)
	}
	dist := 0
	for _, r := range srv.requests() {
		if r.dist() {
			dist++
		}
	}
	if dist != 3 {
		t.Errorf("got %d log-probability requests, want 3 (retried twice)", dist)
	}
	if st := c.Stats(); st.Fallbacks != 1 || st.FallbackErrors != 1 {
		t.Errorf("got %d fallbacks, %d for errors; want 1 and 1", st.Fallbacks, st.FallbackErrors)
	}

	healthy := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.dist() {
			return 200, topReply(r, map[string]float64{"4": 0.75, "5": 0.25})
		}
		return 200, textsReply(r, "4")
	})
	cfg = testConfig(healthy.URL)
	cfg.Mode, cfg.Cache = ModeDistribution, cache
	c2 := newClient(t, cfg)
	r, err = c2.Ask(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Dist[3]-0.75) > 1e-9 || math.Abs(r.Dist[4]-0.25) > 1e-9 {
		t.Errorf("rerun: got %+v, want the healthy server's distribution", r)
	}
	if got := healthy.calls.Load(); got != 1 {
		t.Errorf("rerun: got %d requests, want 1 (the distribution asked again)", got)
	}
}

// TestCompatDistributionReplies serves distribution-mode bodies and checks
// the distribution or the fallback to sampling, said once per model.
func TestCompatDistributionReplies(t *testing.T) {
	nonStandard := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"length","logprobs":{"content":[{"token":"4","logprob":-0.5,"bytes":[52],"top_logprobs":[{"token":"4","logprob":-0.5,"bytes":[52]},{"token":"3","logprob":-1.2,"bytes":[51]},{"token":"5","logprob":-Infinity,"bytes":[53]},{"token":"6","logprob":NaN,"bytes":[54]},{"token":"NaN","logprob":-9,"bytes":null}]}]}}]}`
	sentencePiece := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"2"},"finish_reason":"length","logprobs":{"content":[{"token":"▁2","logprob":-0.9,"top_logprobs":[{"token":"▁2","logprob":-0.9},{"token":"2","logprob":-1.6},{"token":"▁1","logprob":-1.2},{"token":"Ċ","logprob":-3}]}]}}]}`
	byteSpelled := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":" 6"},"finish_reason":"length","logprobs":{"content":[{"token":"bytes:\\x20\\x36","logprob":-0.5,"bytes":[32,54],"top_logprobs":[{"token":"bytes:\\x20\\x36","logprob":-0.5,"bytes":[32,54]},{"token":"x","logprob":-1.5,"bytes":[53,10]}]}]}}]}`
	onlyChosen := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"length","logprobs":{"content":[{"token":"4","logprob":-0.6,"top_logprobs":[{"token":"4","logprob":-0.6}]}]}}]}`
	nearCertain := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"length","logprobs":{"content":[{"token":"4","logprob":-0.001,"top_logprobs":[{"token":"4","logprob":-0.001}]}]}}]}`
	e := math.Exp
	tests := []struct {
		name     string
		body     string
		want     []float64 // nil: sampled instead
		noAlts   bool      // sampled because the reply had no alternatives
		coverage float64   // counted coverage, when any
	}{
		{"tokenizer_space_marker", compatBody(t, "tokenizer_space_marker"),
			norm(0, 0, e(-2.3), e(-0.6), e(-1.4), 0), false, e(-0.6) + e(-1.4) + e(-2.3)},
		{"top_logprobs_empty", compatBody(t, "top_logprobs_empty"), nil, true, 0},
		{"only the chosen token", onlyChosen, nil, true, 0},
		{"only the chosen token, near certain", nearCertain, norm(0, 0, 0, 1, 0, 0), false, e(-0.001)},
		{"non-standard numbers", nonStandard, norm(0, 0, e(-1.2), e(-0.5), 0, 0), false, e(-0.5) + e(-1.2)},
		{"sentencepiece spellings add", sentencePiece, norm(e(-1.2), e(-0.9)+e(-1.6), 0, 0, 0, 0), false, e(-1.2) + e(-0.9) + e(-1.6)},
		{"bytes decide the text", byteSpelled, norm(0, 0, 0, 0, e(-1.5), e(-0.5)), false, e(-0.5) + e(-1.5)},
		{"ollama 01, covered mass 0", ollamaBody(t, "ollama-01-distribution-chat-logprobs-system.json"), nil, false, 0},
		{"ollama 02, covered mass 0", ollamaBody(t, "ollama-02-distribution-chat-logprobs-unprimed.json"), nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) {
				if r.dist() {
					return 200, tt.body
				}
				return 200, textsReply(r, "5")
			})
			cfg := testConfig(srv.URL)
			cfg.Mode = ModeDistribution
			var logs logBuffer
			cfg.Logger = logs.logger()
			c := newClient(t, cfg)
			in := pvq(t)
			const items = 3
			for item := range items {
				r, err := c.Ask(context.Background(), question(in, values.Hedonism, item, 0))
				if err != nil {
					t.Fatal(err)
				}
				if tt.want == nil {
					if r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 5 {
						t.Fatalf("item %d: got %+v, want a sampled 5", item, r)
					}
					continue
				}
				if len(r.Dist) != len(tt.want) {
					t.Fatalf("item %d: got %+v, want distribution %v", item, r, tt.want)
				}
				for i := range tt.want {
					if math.Abs(r.Dist[i]-tt.want[i]) > 1e-9 {
						t.Fatalf("item %d: got distribution %v, want %v", item, r.Dist, tt.want)
					}
				}
			}
			st := c.Stats()
			if tt.want == nil {
				if st.Fallbacks != items {
					t.Errorf("got %d fallbacks, want %d", st.Fallbacks, items)
				}
				if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
					t.Errorf("got %d warnings, want 1 for the model:\n%s", n, logs.String())
				}
			}
			wantNoAlts := int64(0)
			if tt.noAlts {
				wantNoAlts = items
			} else if math.Abs(st.CoverageSum-items*tt.coverage) > 1e-9 || st.CoverageN != items {
				t.Errorf("got coverage sum %v over %d, want %v over %d", st.CoverageSum, st.CoverageN, items*tt.coverage, items)
			}
			if st.NoAlternatives != wantNoAlts {
				t.Errorf("got %d questions without alternatives, want %d", st.NoAlternatives, wantNoAlts)
			}
		})
	}
}

// norm scales weights to a distribution.
func norm(w ...float64) []float64 {
	s := 0.0
	for _, x := range w {
		s += x
	}
	out := make([]float64, len(w))
	for i, x := range w {
		out[i] = x / s
	}
	return out
}

// TestCompatServerIgnoringN serves Ollama's one-choice replies to requests
// for n samples (exchanges ollama-03-sample-n10-returns-one-choice to the
// first request, ollama-04-sample-n9-followup to the follow-ups and
// ollama-05-strict-retry-4-messages to strict retries): each request asks
// only for the samples still missing, seeded from the first of them, and
// every used sample is counted once.
func TestCompatServerIgnoringN(t *testing.T) {
	in := pvq(t)
	first := ollamaBody(t, "ollama-03-sample-n10-returns-one-choice.json")
	followup := ollamaBody(t, "ollama-04-sample-n9-followup.json")
	retry := ollamaBody(t, "ollama-05-strict-retry-4-messages.json")
	var sent atomic.Int64
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.strict() {
			return 200, retry
		}
		if sent.Add(1) == 1 {
			return 200, first
		}
		return 200, followup
	})
	cfg := testConfig(srv.URL)
	cfg.Samples, cfg.Seed, cfg.MaxTokens = 10, ptr(uint64(7)), 8
	cfg.Demand = func(agent.Persona) int { return 3 }
	c := newClient(t, cfg)
	var qs []*agent.Question
	for i := range 3 {
		qs = append(qs, question(in, values.Security, 0, i))
	}
	replies := askAll(t, c, qs)
	for i, r := range replies {
		if r.Answer.Valid || !strings.HasPrefix(r.Answer.Reason, "truncated") {
			t.Errorf("sample %d: got %+v, want invalid as truncated", i, r.Answer)
		}
	}
	p := agent.Render(qs[0])
	var ns []int
	seeds := map[uint64]bool{}
	for _, r := range srv.requests() {
		s, _ := r.seed()
		if seeds[s] {
			t.Errorf("seed %d sent twice", s)
		}
		seeds[s] = true
		if r.strict() {
			continue
		}
		ns = append(ns, r.n())
		i, _ := sampleOfSeed(t, 7, p, s)
		if want := 3 - r.n(); i != want {
			t.Errorf("request for %d samples seeded from sample %d, want %d", r.n(), i, want)
		}
	}
	if got := fmt.Sprint(ns); got != "[3 2 1]" {
		t.Errorf("got requests for %s samples, want [3 2 1]", got)
	}
	if st := c.Stats(); st.Calls != 6 || st.Invalid != 3 {
		t.Errorf("got %d calls and %d invalid, want 6 and 3", st.Calls, st.Invalid)
	}
}

// TestSeedsDifferAcrossPrompts: sample k of two items, or of two personas,
// is drawn with different seeds; a strict retry has a seed of its own.
func TestSeedsDifferAcrossPrompts(t *testing.T) {
	in := pvq(t)
	base := uint64(7)
	seen := map[uint64]string{}
	for _, v := range []values.Value{values.Power, values.Security, values.None} {
		for item := range 10 {
			p := agent.Render(question(in, v, item, 0))
			for k := range 3 {
				for _, strict := range []bool{false, true} {
					s := *seedFor(&base, p, k, strict)
					what := fmt.Sprintf("%v item %d sample %d", v, item, k)
					if prev, ok := seen[s]; ok {
						t.Fatalf("seed %d of %s (strict %v) is also that of %s", s, what, strict, prev)
					}
					seen[s] = what
					if s > math.MaxInt64 {
						t.Fatalf("seed %d beyond int64", s)
					}
				}
			}
		}
	}
	if seedFor(nil, agent.Prompt{}, 0, false) != nil {
		t.Error("got a seed without a configured one, want none")
	}
}

func TestSanitiseNumbers(t *testing.T) {
	in := `{"a":-Infinity,"b":NaN,"c":Infinity,"s":"NaN and -Infinity \" NaN","d":[NaN, -1.5]}`
	got := string(sanitiseNumbers([]byte(in)))
	want := `{"a":-1e30,"b":-1e30,"c":1e30,"s":"NaN and -Infinity \" NaN","d":[-1e30, -1.5]}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var v any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Errorf("sanitised body does not decode: %v", err)
	}
	plain := []byte(`{"a":1}`)
	if out := sanitiseNumbers(plain); &out[0] != &plain[0] {
		t.Error("a body without non-standard numbers was copied")
	}
}

func TestBareAnswer(t *testing.T) {
	pv := pvq(t).Scale
	ten := pv
	ten.Min, ten.Max, ten.Labels = 0, 10, nil
	tests := []struct {
		text string
		sc   string
		want bool
	}{
		{"4", "pvq", true}, {" 4.", "pvq", true}, {"Like me", "pvq", true}, {"very much like me", "pvq", true},
		{"Not like me", "pvq", false}, // may go on "at all"
		{"7", "pvq", false}, {"4 because", "pvq", false}, {"", "pvq", false}, {"-4", "pvq", false},
		{"1", "ten", false}, {"10", "ten", true}, {"3", "ten", true},
	}
	for _, tt := range tests {
		sc := pv
		if tt.sc == "ten" {
			sc = ten
		}
		if got := bareAnswer(tt.text, sc); got != tt.want {
			t.Errorf("bareAnswer(%q, %s): got %v, want %v", tt.text, tt.sc, got, tt.want)
		}
	}
}

// TestSegments: a block is cut where the persona's demand ends, whoever
// asks first.
func TestSegments(t *testing.T) {
	c := &Client{cfg: ClientConfig{Samples: 10, Demand: func(agent.Persona) int { return 23 }}}
	tests := []struct{ i, start, end int }{
		{0, 0, 10}, {9, 0, 10}, {10, 10, 20}, {20, 20, 23}, {22, 20, 23}, {23, 23, 30}, {29, 23, 30}, {35, 30, 40},
	}
	for _, tt := range tests {
		if s, e := c.segmentOf(agent.Persona{}, tt.i); s != tt.start || e != tt.end {
			t.Errorf("sample %d: got segment [%d, %d), want [%d, %d)", tt.i, s, e, tt.start, tt.end)
		}
	}
	c.cfg.Demand = nil
	if s, e := c.segmentOf(agent.Persona{}, 22); s != 20 || e != 30 {
		t.Errorf("unknown demand: got [%d, %d), want the whole block [20, 30)", s, e)
	}
}

// compatOnPipe serves h with an httptest server whose connections are
// in-memory pipes, and returns a client of it with the client's own
// defaults for retries, backoff and breaker, in the calling synctest
// bubble: the server's latency, the client's timeouts and its backoffs
// run on the bubble's clock, so "within seconds" and "slower, never
// failed" are exact whatever the machine's load. stop closes both.
func compatOnPipe(t *testing.T, h http.Handler, cfg ClientConfig) (c *Client, stop func()) {
	t.Helper()
	l := newPipeListener()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	cfg.Name, cfg.BaseURL, cfg.Model = "compat", srv.URL+"/v1", "m"
	cfg.Temperature = ptr(1.0)
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.tr.DialContext = l.dial
	return c, func() {
		c.Close()
		srv.Close()
	}
}

// compatRun asks what a scenario of agents answering items of pvq40 asks,
// all at once, and returns each question's reply and error in order.
func compatRun(t *testing.T, c *Client, agents, items int) ([]agent.Reply, []error) {
	t.Helper()
	in := pvq(t)
	n := agents * items
	replies, errs := make([]agent.Reply, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := values.Value(1 + (i/items)%10)
			replies[i], errs[i] = c.Ask(context.Background(), question(in, v, i%items, i/items/10))
		}()
	}
	wg.Wait()
	return replies, errs
}

// statusHandler answers every request with status and body, as JSON, and
// counts the requests.
func statusHandler(status int, body string, calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// TestCompatFailureReplies serves the failures no retry mends
// (quota_exhausted, permanent_500, and other spellings of their kinds) to
// a run of 20 agents on two items, with the client's default retries and
// backoff: every question fails within a second of the test clock with the
// server's own message and the URL, none is retried, and no more requests
// reach the server than were in flight when the first refusal came back.
func TestCompatFailureReplies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"quota_exhausted", 429, compatBody(t, "quota_exhausted"),
			"status 429: You exceeded your current quota, please check your plan and billing details."},
		{"quota, credit spelling", 429, `{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low to access the API."}}`,
			"status 429: Your credit balance is too low to access the API."},
		{"permanent_500", 500, compatBody(t, "permanent_500"),
			"status 500: model requires more system memory (7.5 GiB) than is available (5.2 GiB)"},
		{"ollama-09-unknown-model-404", 404, ollamaBody(t, "ollama-09-unknown-model-404.json"),
			"status 404: model 'no-such-model' not found"},
		{"permanent 500, unknown model", 500, `{"error":{"message":"model \"llama9:70b\" not found, try pulling it first","type":"api_error"}}`,
			`status 500: model "llama9:70b" not found, try pulling it first`},
	}
	const agents, items, concurrency = 20, 2, 8
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int64
				c, stop := compatOnPipe(t, statusHandler(tt.status, tt.body, &calls), ClientConfig{Concurrency: concurrency, Timeout: 10 * time.Second})
				defer stop()
				start := time.Now()
				_, errs := compatRun(t, c, agents, items)
				elapsed := time.Since(start)
				for i, err := range errs {
					if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tt.want) ||
						!strings.Contains(err.Error(), "http://127.0.0.1:8000/v1/chat/completions") {
						t.Fatalf("question %d: got %v, want a permanent failure naming the URL and %q", i, err, tt.want)
					}
				}
				if elapsed > time.Second {
					t.Errorf("the run failed after %v on the test clock, want at once", elapsed)
				}
				if st := c.Stats(); st.Retries != 0 {
					t.Errorf("got %d retries, want 0", st.Retries)
				}
				if got := calls.Load(); got > concurrency {
					t.Errorf("server saw %d requests, want at most %d (those in flight before the first refusal)", got, concurrency)
				}
			})
		})
	}
}

// TestCompatTransient500NamesCause: a 500 whose message the client cannot
// tell apart from a passing fault (the permanent_500 kind in words the
// client does not know) is retried a bounded number of times; every
// question's error then carries the server's last message, never only
// "circuit open" or a count of attempts, and the run ends within a
// minute of the test clock, not after minutes per question.
func TestCompatTransient500NamesCause(t *testing.T) {
	const msg = "llama runner process has terminated: error loading model: unable to allocate CUDA0 buffer"
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		c, stop := compatOnPipe(t, statusHandler(500, `{"error":"`+msg+`"}`, &calls), ClientConfig{Concurrency: 8, Timeout: 10 * time.Second})
		defer stop()
		const agents, items = 20, 2
		start := time.Now()
		_, errs := compatRun(t, c, agents, items)
		elapsed := time.Since(start)
		for i, err := range errs {
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "status 500: "+msg) {
				t.Fatalf("question %d: got %v, want ErrUnavailable naming the server's message", i, err)
			}
		}
		if got, most := calls.Load(), int64(agents*items*(DefaultMaxRetries+1)); got > most {
			t.Errorf("server saw %d requests, want at most %d", got, most)
		}
		t.Logf("%d requests, every question failed after %v on the test clock: %v", calls.Load(), elapsed, errs[0])
		if elapsed > time.Minute {
			t.Errorf("the run failed after %v on the test clock, want within a minute", elapsed)
		}
	})
}

// TestCompatTopLogprobsCap serves the top_logprobs_cap case: a server that
// refuses more than five top log-probabilities with a 400 naming the cap.
// The client asks again within the cap, every question of a run of 20
// agents on two items gets the server's distribution (never one recorded
// from the refusal), each question is refused at most once and requests
// queued for a slot meanwhile are sent within the cap. A refusal
// that names no cap stops the question with the server's message, as
// plain text, and records no distribution.
func TestCompatTopLogprobsCap(t *testing.T) {
	top := map[string]float64{"3": 0.5, "4": 0.3, "5": 0.2}
	want := norm(0, 0, 0.5, 0.3, 0.2, 0)
	tests := []struct {
		name     string
		endpoint string
		refusal  string
		adapts   bool
	}{
		{"top_logprobs_cap", EndpointChat, compatBody(t, "top_logprobs_cap"), true},
		{"top_logprobs_cap, completions", EndpointCompletions, compatBody(t, "top_logprobs_cap"), true},
		{"cap in other words", EndpointChat, `{"error":{"message":"Invalid 'top_logprobs': integer above maximum value. Expected a value <= 5, but got 20 instead.","type":"invalid_request_error","param":"top_logprobs","code":"integer_above_max_value"}}`, true},
		{"no cap named", EndpointChat, `{"object":"error","message":"logprobs are not available for this model","type":"BadRequestError","param":null,"code":400}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refused atomic.Int64
			srv := newOpenAIServer(t, func(r seenReq) (int, any) {
				field := "top_logprobs"
				if !r.chat() {
					field = "logprobs"
				}
				if k, _ := r.num(field); r.dist() && (k > 5 || !tt.adapts) {
					refused.Add(1)
					return 400, tt.refusal
				}
				return 200, topReply(r, top)
			})
			cfg := testConfig(srv.URL)
			cfg.Mode, cfg.Endpoint = ModeDistribution, tt.endpoint
			cfg.Cache = NewCache(mustFileStore(t))
			c := newClient(t, cfg)
			const agents, items = 20, 2
			replies, errs := compatRun(t, c, agents, items)
			for i, r := range replies {
				err := errs[i]
				if !tt.adapts {
					if err == nil || r.Dist != nil {
						t.Fatalf("question %d: got %+v (error %v), want an error and no distribution", i, r, err)
					}
					if msg := err.Error(); !strings.Contains(msg, "status 400: logprobs are not available for this model") ||
						strings.ContainsAny(msg, "{}\"\\") {
						t.Fatalf("question %d: got %q, want the server's message as plain text", i, msg)
					}
					continue
				}
				if err != nil {
					t.Fatalf("question %d: %v", i, err)
				}
				if len(r.Dist) != len(want) {
					t.Fatalf("question %d: got %+v, want distribution %v", i, r, want)
				}
				for k := range want {
					// The completions reply carries log-probabilities
					// in a JSON object: a few ulps of rounding.
					if math.Abs(r.Dist[k]-want[k]) > 1e-6 {
						t.Fatalf("question %d: got distribution %v, want %v", i, r.Dist, want)
					}
				}
			}
			n := int64(len(replies))
			if got := refused.Load(); got > n {
				t.Errorf("server refused %d requests for %d questions, want each refused at most once", got, n)
			}
			// Requests queued for a slot keep to a cap learnt while they
			// waited: refused are those in flight when the cap became
			// known, and at most one per slot freed before it was.
			if most := int64(2 * cfg.Concurrency); tt.adapts && refused.Load() > most {
				t.Errorf("server refused %d requests, want at most %d (twice the concurrency)", refused.Load(), most)
			}
			if st := c.Stats(); tt.adapts && st.Fallbacks != 0 {
				t.Errorf("got %d fallbacks to sampling, want none", st.Fallbacks)
			}
			t.Logf("%d requests, %d refused, for %d questions", srv.calls.Load(), refused.Load(), n)
		})
	}
}

// TestCompatSlowServer serves the slow_server case: a server with two
// slots that answers "4" after 1.5 s and keeps working on requests the
// client abandoned, to a run of 20 agents on two items with concurrency 8
// and a 2 s timeout. On the synctest clock: every question is answered
// (the run is slower, never failed), and the server gets at most twice as
// many requests as there are answers (no retry storm).
func TestCompatSlowServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &slotServer{slots: make(chan struct{}, 2), per: 1500 * time.Millisecond}
		c, stop := compatOnPipe(t, srv, ClientConfig{Concurrency: 8, Timeout: 2 * time.Second, Samples: 1})
		defer stop()
		const agents, items = 20, 2
		start := time.Now()
		replies, errs := compatRun(t, c, agents, items)
		elapsed := time.Since(start)
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("got %v, want every question answered (a slow server makes a run slower, never failed)", err)
		}
		answers := 0
		for i, r := range replies {
			if !r.Answer.Valid || r.Answer.Value != 4 {
				t.Fatalf("question %d: got %+v, want a valid 4", i, r.Answer)
			}
			answers++
		}
		req := srv.requests.Load()
		t.Logf("%d answers, %d requests, %v on the test clock, concurrency at the end %d", answers, req, elapsed, c.doer.limit.current())
		if req > int64(2*answers) {
			t.Errorf("server got %d requests for %d answers, want at most twice as many", req, answers)
		}
		// Two slots of 1.5 s serve at most 4 answers in 3 s: the run
		// took the server's time, which shows the requests went there.
		if min := time.Duration(answers/2) * srv.per; elapsed < min {
			t.Errorf("the run took %v on the test clock, want at least %v", elapsed, min)
		}
	})
}

// TestCompatFallbackSeenLate serves top_logprobs_empty without a cache: an
// Ask that missed the prompt in memory just before another Ask kept the
// prompt's fallback to sampling there samples too, never returns an empty
// reply (no distribution, no answer, no reason), and no second
// log-probability request is made.
func TestCompatFallbackSeenLate(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.dist() {
			return 200, compatBody(t, "top_logprobs_empty")
		}
		return 200, textsReply(r, "5")
	})
	cfg := testConfig(srv.URL)
	cfg.Mode = ModeDistribution
	c := newClient(t, cfg)
	in := pvq(t)
	ctx := context.Background()
	first := question(in, values.Power, 0, 0)
	r, err := c.Ask(ctx, first)
	if err != nil || r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 5 {
		t.Fatalf("first agent: got %+v, %v; want a sampled 5", r, err)
	}
	// The second agent looked in memory before the first kept the
	// fallback there, and asks for the distribution as Ask would.
	late := question(in, values.Power, 0, 1)
	r, err = c.askDist(ctx, late, c.render(late), memoKey{late.Persona, late.Instrument, late.Item, late.Context})
	if err != nil || r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 5 {
		t.Fatalf("second agent: got %+v, %v; want a sampled 5", r, err)
	}
	dist := 0
	for _, r := range srv.requests() {
		if r.dist() {
			dist++
		}
	}
	if dist != 1 {
		t.Errorf("got %d log-probability requests, want 1", dist)
	}
}
