package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// This file writes the request bodies of /chat/completions and
// /completions and reads their replies on the model path, without
// go-openai's client: its reflective encoding of a request (which
// re-compacts the output of its message type's MarshalJSON), its
// per-request http.Request with a header map, its streaming decoder and
// its message type's second parse cost about 45 µs of client CPU per call,
// a fifth of the client's cost per call (BENCHMARKS.md). The bytes sent
// are the ones go-openai sent, with the extra fields after them
// (wire_test.go checks it), and what the client reads of a reply is read
// as go-openai read it (decodeChat, decodeCompletion).

// chatMsg is one message of a chat request.
type chatMsg struct {
	role, content string
}

// chatReq is a /chat/completions request; every field besides these
// comes from the client's configuration.
type chatReq struct {
	msgs        []chatMsg
	n           int
	maxTokens   int
	logprobs    bool
	topLogprobs int
}

// completionReq is a /completions request; logprobs is the number of
// alternatives per token (0: none).
type completionReq struct {
	prompt    string
	n         int
	maxTokens int
	logprobs  int
}

// wire is what a client's requests share, made once per client: the
// encoded model name and top_p, the requests' URL and headers, and the
// refusal go-openai's client gave before sending anything for this model
// on an endpoint (it refuses reasoning models with max_tokens, and models
// it knows the endpoint does not serve).
type wire struct {
	model   []byte // JSON string
	topP    []byte // JSON number, nil when zero (omitted)
	topPErr error  // top_p cannot be encoded (NaN, ±Inf)

	chat, completions         *http.Request // templates: URL and headers, no body
	chatErr, completionsErr   error         // building them failed (a malformed base URL)
	chatRefusal, complRefusal error
}

// errProbeSent ends the request of refusalOf at the doer: go-openai let
// it through.
var errProbeSent = errors.New("request accepted")

type refusalDoer struct{}

func (refusalDoer) Do(*http.Request) (*http.Response, error) { return nil, errProbeSent }

// newWire prepares the requests of a client with configuration cfg and
// API key key.
func newWire(cfg ClientConfig, key string) *wire {
	w := &wire{}
	w.model, _ = json.Marshal(cfg.Model) // a string always encodes
	if cfg.TopP != 0 {
		w.topP, w.topPErr = json.Marshal(float32(cfg.TopP))
	}
	base := defaultBaseURL
	if cfg.BaseURL != "" {
		base = cfg.BaseURL
	}
	template := func(path string) (*http.Request, error) {
		r, err := http.NewRequest(http.MethodPost, trimSlash(base)+path, nil)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		return r, nil
	}
	w.chat, w.chatErr = template("/chat/completions")
	w.completions, w.completionsErr = template("/completions")

	// go-openai checks a request before sending it; for the requests this
	// client makes (max_tokens always set, a string prompt) the outcome
	// depends on the model only.
	oc := openai.DefaultConfig("")
	oc.HTTPClient = refusalDoer{}
	oa := openai.NewClientWithConfig(oc)
	ctx := context.Background()
	if _, err := oa.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model: cfg.Model, Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "x"}},
		//lint:ignore SA1019 the client sends max_tokens (request.go).
		MaxTokens: 1,
	}); err != errProbeSent {
		w.chatRefusal = err
	}
	if _, err := oa.CreateCompletion(ctx, openai.CompletionRequest{Model: cfg.Model, Prompt: "x", MaxTokens: 1}); err != errProbeSent {
		w.complRefusal = err
	}
	return w
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// has reports whether the extra fields set key: the configured value then
// replaces the request's own, as it did when go-openai's body was decoded
// and re-encoded with it.
func (f *extraFields) has(key string) bool {
	if f == nil {
		return false
	}
	_, found := slices.BinarySearch(f.keys, key)
	return found
}

// bodyExtra are the extra fields of one request: the client's (fields,
// shared by every request) and the request's own, its seed and its
// scale's structured_outputs, which replace a client field of the same
// key. They are merged in key order as the body is written, rather than
// into a copy of the client's fields per request (five allocations of a
// seeded call).
type bodyExtra struct {
	fields  *extraFields
	seed    uint64
	hasSeed bool
	choices []byte // structured_outputs, encoded; nil: none
}

// Keys of a request's own extra fields, in order.
const (
	seedKey       = "seed"
	structuredKey = "structured_outputs"
)

// has reports whether the extra fields set key.
func (e *bodyExtra) has(key string) bool {
	switch {
	case key == seedKey && e.hasSeed, key == structuredKey && e.choices != nil:
		return true
	}
	return e.fields.has(key)
}

// size is the encoded size of the fields, separators included.
func (e *bodyExtra) size() int {
	return e.fields.size() + 32 + len(e.choices)
}

// appendTo appends the extra fields sorted by key, each after a comma
// unless first, and closes the object.
func (e *bodyExtra) appendTo(b []byte, first bool) []byte {
	var own [2]string
	n := 0
	if e.hasSeed {
		own[n] = seedKey
		n++
	}
	if e.choices != nil {
		own[n] = structuredKey
		n++
	}
	var keys []string
	var vals [][]byte
	if e.fields != nil {
		keys, vals = e.fields.keys, e.fields.vals
	}
	i, j := 0, 0
	for i < len(keys) || j < n {
		if !first {
			b = append(b, ',')
		}
		first = false
		if j < n && (i >= len(keys) || own[j] <= keys[i]) {
			k := own[j]
			j++
			if i < len(keys) && keys[i] == k {
				i++ // the request's value replaces the client's
			}
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			if k == seedKey {
				b = strconv.AppendUint(b, e.seed, 10)
			} else {
				b = append(b, e.choices...)
			}
			continue
		}
		b = strconv.AppendQuote(b, keys[i])
		b = append(b, ':')
		b = append(b, vals[i]...)
		i++
	}
	return append(b, '}')
}

// chatBody encodes r with the model's settings and the extra fields: the
// fields in go-openai's order (model, messages, max_tokens, top_p, n,
// stream, logprobs, top_logprobs; zeros left out as its omitempty tags
// did), then the extra fields sorted by key.
func (w *wire) chatBody(r *chatReq, extra bodyExtra) ([]byte, error) {
	if w.topPErr != nil {
		return nil, w.topPErr
	}
	size := 160 + len(w.model) + extra.size()
	for _, m := range r.msgs {
		size += 32 + len(m.role) + len(m.content) + len(m.content)/8
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	field := fieldWriter(&b, &extra)
	if field("model") {
		b = append(b, w.model...)
	}
	if field("messages") {
		b = append(b, '[')
		for i, m := range r.msgs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"role":`...)
			b = appendJSONString(b, m.role)
			if m.content != "" {
				b = append(b, `,"content":`...)
				b = appendJSONString(b, m.content)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.maxTokens != 0 && field("max_tokens") {
		b = strconv.AppendInt(b, int64(r.maxTokens), 10)
	}
	if w.topP != nil && field("top_p") {
		b = append(b, w.topP...)
	}
	if r.n != 0 && field("n") {
		b = strconv.AppendInt(b, int64(r.n), 10)
	}
	if field("stream") {
		b = append(b, "false"...)
	}
	if r.logprobs && field("logprobs") {
		b = append(b, "true"...)
	}
	if r.topLogprobs != 0 && field("top_logprobs") {
		b = strconv.AppendInt(b, int64(r.topLogprobs), 10)
	}
	if len(b) == 1 { // only the brace: no field written
		// Every field replaced: the extra fields alone.

		return extra.appendTo(b, true), nil
	}
	return extra.appendTo(b, false), nil
}

// completionBody encodes r as chatBody does, in go-openai's order for
// /completions (model, prompt, logprobs, max_tokens, n, stream, top_p).
func (w *wire) completionBody(r *completionReq, extra bodyExtra) ([]byte, error) {
	if w.topPErr != nil {
		return nil, w.topPErr
	}
	b := make([]byte, 0, 128+len(w.model)+len(r.prompt)+len(r.prompt)/8+extra.size())
	b = append(b, '{')
	field := fieldWriter(&b, &extra)
	if field("model") {
		b = append(b, w.model...)
	}
	if field("prompt") {
		b = appendJSONString(b, r.prompt)
	}
	if r.logprobs != 0 && field("logprobs") {
		b = strconv.AppendInt(b, int64(r.logprobs), 10)
	}
	if r.maxTokens != 0 && field("max_tokens") {
		b = strconv.AppendInt(b, int64(r.maxTokens), 10)
	}
	if r.n != 0 && field("n") {
		b = strconv.AppendInt(b, int64(r.n), 10)
	}
	if field("stream") {
		b = append(b, "false"...)
	}
	if w.topP != nil && field("top_p") {
		b = append(b, w.topP...)
	}
	if len(b) == 1 { // only the brace: no field written
		return extra.appendTo(b, true), nil
	}
	return extra.appendTo(b, false), nil
}

// size is the encoded size of the fields, separators included.
func (f *extraFields) size() int {
	if f == nil {
		return 0
	}
	n := 0
	for i, k := range f.keys {
		n += len(k) + len(f.vals[i]) + 4
	}
	return n
}

// plainJSON marks the ASCII bytes appendJSONString copies as they are.
var plainJSON = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it by default: quotes, backslashes and control characters, the
// HTML characters <, > and &, U+2028 and U+2029; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	// One table lookup per byte instead of six comparisons: prompts of a
	// kilobyte or more are escaped at every request.
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainJSON[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// chatReply is what the client reads of a chat reply: the served model,
// the fingerprint, the token counts and each choice's text, finish reason
// and log-probabilities, with go-openai's types and tags (the message's
// MultiContent untagged, as in the first form go-openai's message type
// tries). The fields the client never reads (id, created, roles, tool
// calls, filter results, ...) are not decoded: go-openai decoded them
// all, each string a copy, which made its decoding cost about twice the
// bare client's; the cost is that a reply with one of them of an
// unexpected type (a numeric id, say) is now read where go-openai failed
// the request. Whatever the client reads is read as before (decodeChat).
type chatReply struct {
	Model             string            `json:"model"`
	SystemFingerprint string            `json:"system_fingerprint"`
	Choices           []chatReplyChoice `json:"choices"`
	Usage             chatUsage         `json:"usage"`
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type chatReplyChoice struct {
	Message      chatReplyMessage `json:"message"`
	FinishReason string           `json:"finish_reason"`
	LogProbs     *openai.LogProbs `json:"logprobs,omitempty"`
}

type chatReplyMessage struct {
	Content      string `json:"content"`
	MultiContent []openai.ChatMessagePart
}

// decodeChat reads a chat reply. The common shape (content as a string,
// one JSON object) is read by scanChat, or else decoded in one pass; a reply that pass rejects
// (content as a list of parts, a read field of another type, text after
// the object) is decoded by go-openai's types, as before, so that where
// go-openai read a reply the client reads the same, and where it failed
// on a field the client reads it fails with the same error.
func decodeChat(data []byte) (chatReply, error) {
	var r chatReply
	if scanChat(data, &r) { // the usual reply, read without reflection (wiredecode.go)
		return r, nil
	}
	return unmarshalChat(data)
}

// unmarshalChat is decodeChat with encoding/json (a function of its own,
// so that decodeChat's reply is not moved to the heap for json.Unmarshal).
func unmarshalChat(data []byte) (chatReply, error) {
	var r chatReply
	if err := json.Unmarshal(data, &r); err == nil {
		return r, nil
	}
	var resp openai.ChatCompletionResponse
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&resp); err != nil {
		return chatReply{}, err
	}
	return chatReplyOf(resp), nil
}

// chatReplyOf keeps what the client reads of a reply go-openai decoded.
func chatReplyOf(resp openai.ChatCompletionResponse) chatReply {
	r := chatReply{
		Model: resp.Model, SystemFingerprint: resp.SystemFingerprint,
		Usage: chatUsage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens},
	}
	if resp.Choices != nil {
		r.Choices = make([]chatReplyChoice, len(resp.Choices))
	}
	for i, ch := range resp.Choices {
		r.Choices[i] = chatReplyChoice{
			Message:      chatReplyMessage{Content: ch.Message.Content, MultiContent: ch.Message.MultiContent},
			FinishReason: string(ch.FinishReason), LogProbs: ch.LogProbs,
		}
	}
	return r
}

// decodeCompletion reads a /completions reply as go-openai read it (its
// types have no decoding of their own, so one pass is the same).
func decodeCompletion(data []byte, h http.Header) (openai.CompletionResponse, error) {
	var resp openai.CompletionResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		resp = openai.CompletionResponse{}
		err = json.NewDecoder(bytes.NewReader(data)).Decode(&resp)
		resp.SetHeader(h)
		return resp, err
	}
	resp.SetHeader(h)
	return resp, nil
}

// fieldWriter returns what starts each field of a JSON object being
// appended to *b after its '{': the separator and the key. It reports
// false, writing nothing, for a key the extra fields set (they are
// appended last, and win).
func fieldWriter(b *[]byte, extra *bodyExtra) func(k string) bool {
	first := true
	return func(k string) bool {
		if extra.has(k) {
			return false
		}
		if !first {
			*b = append(*b, ',')
		}
		first = false
		*b = append(*b, '"')
		*b = append(*b, k...)
		*b = append(*b, '"', ':')
		return true
	}
}
