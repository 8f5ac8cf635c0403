package llm

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// fieldsOf is e as the client built a request's extra fields before
// bodyExtra: a copy of the client's fields with the request's own set in
// it.
func fieldsOf(e bodyExtra) *extraFields {
	if e.fields == nil {
		e.fields = &extraFields{}
	}
	f := e.fields.clone(2)
	if e.hasSeed {
		f.set("seed", strconv.AppendUint(nil, e.seed, 10))
	}
	if e.choices != nil {
		f.set("structured_outputs", e.choices)
	}
	return f
}

// clone copies f with room for more fields.
func (f *extraFields) clone(more int) *extraFields {
	return &extraFields{
		keys: append(make([]string, 0, len(f.keys)+more), f.keys...),
		vals: append(make([][]byte, 0, len(f.vals)+more), f.vals...),
	}
}

// set sets field k to the encoded value v, keeping the keys sorted.
func (f *extraFields) set(k string, v []byte) {
	i, found := slices.BinarySearch(f.keys, k)
	if found {
		f.vals[i] = v
		return
	}
	f.keys = slices.Insert(f.keys, i, k)
	f.vals = slices.Insert(f.vals, i, v)
}

// goOpenAIChatBody is the body go-openai's client sent for r, with the
// extra fields set as the doer set them (appendFields).
func goOpenAIChatBody(t *testing.T, c *Client, r chatReq, extra *extraFields) []byte {
	t.Helper()
	msgs := make([]openai.ChatCompletionMessage, len(r.msgs))
	for i, m := range r.msgs {
		msgs[i] = openai.ChatCompletionMessage{Role: m.role, Content: m.content}
	}
	req := openai.ChatCompletionRequest{
		Model: c.cfg.Model, Messages: msgs,
		//lint:ignore SA1019 the field the client sends.
		MaxTokens: r.maxTokens, TopP: float32(c.cfg.TopP), N: r.n,
		LogProbs: r.logprobs, TopLogProbs: r.topLogprobs,
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil && len(extra.keys) > 0 {
		if body, err = appendFields(body, extra); err != nil {
			t.Fatal(err)
		}
	}
	return body
}

func goOpenAICompletionBody(t *testing.T, c *Client, r completionReq, extra *extraFields) []byte {
	t.Helper()
	req := openai.CompletionRequest{
		Model: c.cfg.Model, Prompt: r.prompt, MaxTokens: r.maxTokens,
		TopP: float32(c.cfg.TopP), N: r.n, LogProbs: r.logprobs,
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil && len(extra.keys) > 0 {
		if body, err = appendFields(body, extra); err != nil {
			t.Fatal(err)
		}
	}
	return body
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if err := da.Decode(&x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := db.Decode(&y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestWireBodiesAsBefore: every request the client makes is sent with the
// bytes go-openai's client sent (with the extra fields after them); when
// the configured extra body names a field the request sets, its value
// replaces the request's, as before.
func TestWireBodiesAsBefore(t *testing.T) {
	in := pvq(t)
	q := question(in, values.Power, 3, 7)
	p := agent.Render(q)
	odd := agent.Prompt{System: "a <b> & \"c\"\t\u2028\x01 caf\xc3\xa9 \xff", User: "line\nline\\ \b\f\u2029 ünï 😀"}
	zero, warm := 0.0, 0.7
	configs := map[string]func(*ClientConfig){
		"defaults":   func(*ClientConfig) {},
		"zero temp":  func(c *ClientConfig) { c.Temperature = &zero },
		"temp top_p": func(c *ClientConfig) { c.Temperature, c.TopP = &warm, 0.9 },
		"tiny top_p": func(c *ClientConfig) { c.TopP = 1e-7 },
		"seed":       func(c *ClientConfig) { c.Seed = ptr(uint64(42)) },
		"structured": func(c *ClientConfig) { c.StructuredOutputs, c.Seed = true, ptr(uint64(1)) },
		"reasoning":  func(c *ClientConfig) { c.ReasoningEffort = "low" },
		"extra body": func(c *ClientConfig) {
			c.ExtraBody = map[string]any{"chat_template_kwargs": map[string]any{"enable_thinking": false}}
		},
		"overrides": func(c *ClientConfig) {
			c.ExtraBody = map[string]any{"max_tokens": 9, "n": 2, "stream": false, "top_p": 0.5}
		},
		"html model": func(c *ClientConfig) { c.Model = "org/<model>&co" },
		"own fields replace extra body": func(c *ClientConfig) {
			c.StructuredOutputs, c.Seed = true, ptr(uint64(math.MaxUint64))
			c.ExtraBody = map[string]any{"a": 1, "seed": 5, "sf": true, "structured_outputs": "x", "z": []int{2}}
		},
		"extra body around seed": func(c *ClientConfig) {
			c.Seed = ptr(uint64(3))
			c.ExtraBody = map[string]any{"a": 1, "seed": 5, "z": 2}
		},
	}
	for name, set := range configs {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/v1")
			set(&cfg)
			c := newClient(t, cfg)
			overrides := len(cfg.ExtraBody) > 0 && cfg.ExtraBody["max_tokens"] != nil
			for _, pr := range []agent.Prompt{p, {User: p.User}, odd} {
				seed := seedFor(c.cfg.Seed, pr, 0, false)
				extra := c.extra(q, seed)
				strict := append(chatMessages(pr), chatMsg{"assistant", "maybe"}, chatMsg{"user", agent.StrictInstruction(in)})
				dist := c.chatRequest(chatMessages(pr), 1, 1)
				dist.logprobs, dist.topLogprobs = true, 20
				for _, r := range []chatReq{
					c.chatRequest(chatMessages(pr), 1, c.cfg.MaxTokens),
					c.chatRequest(chatMessages(pr), 10, c.cfg.MaxTokens),
					c.chatRequest(strict, 1, 4*c.cfg.MaxTokens),
					dist,
					c.chatRequest([]chatMsg{{"user", ""}}, 0, 0),
				} {
					got, err := c.wire.chatBody(&r, extra)
					if err != nil {
						t.Fatal(err)
					}
					want := goOpenAIChatBody(t, c, r, fieldsOf(extra))
					if !overrides && !bytes.Equal(got, want) {
						t.Errorf("chat body\n got %s\nwant %s", got, want)
					}
					if !sameJSON(t, got, want) {
						t.Errorf("chat body, as JSON\n got %s\nwant %s", got, want)
					}
				}
				dc := c.completionRequest(completionPrompt(pr), 1, 1)
				dc.logprobs = 20
				for _, r := range []completionReq{
					c.completionRequest(completionPrompt(pr), 1, c.cfg.MaxTokens),
					c.completionRequest(completionPrompt(pr), 5, c.cfg.MaxTokens),
					dc,
					c.completionRequest("", 0, 0),
				} {
					got, err := c.wire.completionBody(&r, extra)
					if err != nil {
						t.Fatal(err)
					}
					want := goOpenAICompletionBody(t, c, r, fieldsOf(extra))
					if !overrides && !bytes.Equal(got, want) {
						t.Errorf("completion body\n got %s\nwant %s", got, want)
					}
					if !sameJSON(t, got, want) {
						t.Errorf("completion body, as JSON\n got %s\nwant %s", got, want)
					}
				}
			}
		})
	}
}

// TestWireTopPUnencodable: a top_p JSON cannot hold fails each request
// with encoding/json's error, as go-openai's encoding did.
func TestWireTopPUnencodable(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1/v1")
	cfg.TopP = math.NaN()
	c := newClient(t, cfg)
	_, want := json.Marshal(float32(cfg.TopP))
	r := c.chatRequest([]chatMsg{{"user", "x"}}, 1, 1)
	if _, err := c.wire.chatBody(&r, bodyExtra{}); err == nil || err.Error() != want.Error() {
		t.Errorf("chat body error %v, want %v", err, want)
	}
}

// TestWireRefusals: go-openai's client refused some models before sending
// anything (reasoning models with max_tokens on /chat/completions, chat
// models on /completions); the client still does, with its errors.
func TestWireRefusals(t *testing.T) {
	for _, tc := range []struct {
		model               string
		chatErr, complError error
	}{
		{"o3-mini", openai.ErrReasoningModelMaxTokensDeprecated, openai.ErrCompletionUnsupportedModel},
		{"gpt-4o", nil, openai.ErrCompletionUnsupportedModel},
		{"text-davinci-003", openai.ErrChatCompletionInvalidModel, nil},
		{"Qwen/Qwen3-8B", nil, nil},
	} {
		cfg := testConfig("http://127.0.0.1:1/v1")
		cfg.Model = tc.model
		w := newWire(cfg, "")
		if w.chatRefusal != tc.chatErr || w.complRefusal != tc.complError {
			t.Errorf("%s: refusals %v, %v; want %v, %v", tc.model, w.chatRefusal, w.complRefusal, tc.chatErr, tc.complError)
		}
	}
}

// TestAppendJSONString: strings are escaped byte for byte as
// encoding/json escapes them.
func TestAppendJSONString(t *testing.T) {
	cases := []string{"", "plain", "\"\\/", "<>&", "\u2028\u2029", "\xff\xfe", "a\xc3", "\x00\x01\x1f\x7f",
		"\b\f\n\r\t", "ünïcødé 😀 日本", "\xed\xa0\x80", strings.Repeat("x<", 100)}
	for b := range 256 {
		cases = append(cases, string([]byte{byte(b)}), "a"+string([]byte{byte(b), 'z'}))
	}
	for r := rune(0); r < 0x3000; r += 7 {
		cases = append(cases, string(r))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

// FuzzAppendJSONString compares appendJSONString with encoding/json on
// any string.
func FuzzAppendJSONString(f *testing.F) {
	f.Add("a<b>\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
		_ = utf8.ValidString(s)
	})
}

// goOpenAIDecodeChat is how go-openai's client read a chat reply.
func goOpenAIDecodeChat(data []byte, h http.Header) (openai.ChatCompletionResponse, error) {
	var resp openai.ChatCompletionResponse
	resp.SetHeader(h)
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&resp)
	return resp, err
}

func goOpenAIDecodeCompletion(data []byte, h http.Header) (openai.CompletionResponse, error) {
	var resp openai.CompletionResponse
	resp.SetHeader(h)
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&resp)
	return resp, err
}

// replyBodies are chat and completion replies of real servers
// (testdata/compat) and of shapes around them.
func replyBodies(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range loadCases(t, filepath.Join("testdata", "compat", "cases.json")) {
		out = append(out, []byte(c.Body))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "compat", "ollama", "*.json"))
	for _, f := range files {
		out = append(out, []byte(ollamaBody(t, filepath.Base(f))))
	}
	for _, s := range []string{
		`{"choices":[{"message":{"content":[{"type":"text","text":"4"},{"type":"output_text","text":" ok"}]},"finish_reason":"stop"}]}`,
		`{"choices":[{"message":{"content":"4"}},{"message":{"content":[{"type":"text","text":"5"}]}}]}`,
		`{"choices":[{"message":{"content":null,"reasoning_content":"hm"},"finish_reason":"length"}]}`,
		`{"choices":[{"message":{"content":4}}]}`,
		`{"choices":[{"message":{"content":"4","tool_calls":7}}]}`,
		`{"choices":[{"message":{"content":"4"}}]} trailing`,
		`{"choices":[{"message":{"content":"4"}}]}{"choices":[]}`,
		`{"choices":[{"message":{"content":"4"}}], "created": 1.5}`,
		`{"choices":[{"message":{"Content":"4","MultiContent":[{"type":"text","text":"x"}]}}]}`,
		`{"choices":[{"message":{"content":"4"},"logprobs":{"content":[{"token":"4","logprob":-0.1,"bytes":[52],"top_logprobs":[{"token":"4","logprob":-0.1,"bytes":[52]},{"token":"5","logprob":-1e30,"bytes":null}]}]}}]}`,
		`{"choices":[{"message":{"content":"4"},"logprobs":{"content":[{"token":"4","logprob":"x"}]}}]}`,
		`{"choices":[{"message":{"content":"4"},"logprobs":{"content":[{"token":"4","logprob":-0.1,"bytes":"NA=="}]}}]}`,
		`{"choices":[{"text":" 4","finish_reason":"stop","logprobs":{"tokens":[" 4"],"token_logprobs":[-0.2],"top_logprobs":[{" 4":-0.2," 5":-1e30}]}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`,
		`{"choices":[{"text":" 4","logprobs":{"top_logprobs":[{" 4":-1e39}]}}]}`,
		`{"choices":[{"text":" 4","logprobs":null}],"usage":null}`,
		`{"model":"m","system_fingerprint":"fp","usage":{"prompt_tokens":"3"},"choices":[]}`,
		`{"choices":[{"message":{"role":"assistant","content":"4"},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"prompt_filter_results":[{"index":0}]}`,
		`{"choices":[{"message":null,"finish_reason":null}],"usage":null,"model":null}`,
		`{"choices":[{"message":{"content":"4","multicontent":[{"type":"text","text":"x"}]}}]}`,
		`{"choices":[{"message":{"content":"4"},"finish_reason":7}]}`,
		`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":1.5}}`,
		`[]`, `null`, ``, `{`, `"x"`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// TestDecodeAsGoOpenAI: every reply go-openai's client read is read the
// same (what the client reads of it), and every reply it failed on a
// field the client reads fails with the same error.
func TestDecodeAsGoOpenAI(t *testing.T) {
	h := http.Header{"X-Test": {"1"}}
	for _, body := range replyBodies(t) {
		checkDecode(t, sanitiseNumbers(body), h)
	}
	// Fields the client does not read are not decoded: a reply with one
	// of them of another type is read where go-openai failed.
	body := []byte(`{"id":7,"choices":[{"message":{"content":"4","tool_calls":7},"finish_reason":"stop"}]}`)
	if _, err := goOpenAIDecodeChat(body, nil); err == nil {
		t.Fatal("go-openai read a numeric id")
	}
	r, err := decodeChat(body)
	if err != nil || len(r.Choices) != 1 || r.Choices[0].Message.Content != "4" || r.Choices[0].FinishReason != "stop" {
		t.Errorf("decodeChat(%s) = %+v, %v", body, r, err)
	}
}

// TestDecodeCompatAsGoOpenAI: the replies of real servers are read by
// both or by neither.
func TestDecodeCompatAsGoOpenAI(t *testing.T) {
	for name, c := range loadCases(t, filepath.Join("testdata", "compat", "cases.json")) {
		body := sanitiseNumbers([]byte(c.Body))
		_, err := decodeChat(body)
		_, wantErr := goOpenAIDecodeChat(body, nil)
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%s: error %v, go-openai's %v", name, err, wantErr)
		}
	}
}

func checkDecode(t *testing.T, body []byte, h http.Header) {
	t.Helper()
	got, err := decodeChat(body)
	want, wantErr := goOpenAIDecodeChat(body, h)
	switch {
	case wantErr == nil && err != nil:
		t.Errorf("chat %s: error %v; go-openai read it", body, err)
	case wantErr == nil && !reflect.DeepEqual(got, chatReplyOf(want)):
		t.Errorf("chat %s:\n got %+v\nwant %+v", body, got, chatReplyOf(want))
	case err != nil && err.Error() != wantErr.Error():
		t.Errorf("chat %s: error %v, want %v", body, err, wantErr)
	}
	if err == nil {
		// The readings built from it are go-openai's when it read it.
		if wantErr == nil && !reflect.DeepEqual(chatChoices(got), chatChoices(chatReplyOf(want))) {
			t.Errorf("chat %s: choices differ", body)
		}
	}
	gotC, err := decodeCompletion(body, h)
	wantC, wantErr := goOpenAIDecodeCompletion(body, h)
	if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() {
		t.Errorf("completion %s: error %v, want %v", body, err, wantErr)
	} else if err == nil && !reflect.DeepEqual(gotC, wantC) {
		t.Errorf("completion %s:\n got %+v\nwant %+v", body, gotC, wantC)
	}
}

// FuzzDecodeAsGoOpenAI compares the two readings on any body.
func FuzzDecodeAsGoOpenAI(f *testing.F) {
	for _, b := range replyBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode(t, body, nil)
	})
}

// The shared copy of the compatibility cases is read too, when present,
// so that new cases are compared before they are copied here.
func TestDecodeSharedCasesAsGoOpenAI(t *testing.T) {
	dir := sharedCompatDir()
	if dir == "" {
		t.Skip("no shared compat cases")
	}
	for _, c := range loadCases(t, filepath.Join(dir, "cases.json")) {
		checkDecode(t, sanitiseNumbers([]byte(c.Body)), nil)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var x ollamaExchange
		if json.Unmarshal(data, &x) == nil && len(x.RespBody) > 0 {
			checkDecode(t, sanitiseNumbers(x.RespBody), nil)
		}
	}
}

// BenchmarkAppendJSONString escapes a sample-mode prompt (value prefix,
// instruction, item), as every request does.
func BenchmarkAppendJSONString(b *testing.B) {
	p := agent.Render(question(pvq(b), values.Power, 3, 0))
	s := p.System + "\n\n" + p.User
	buf := make([]byte, 0, 2*len(s))
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendJSONString(buf[:0], s)
	}
}
