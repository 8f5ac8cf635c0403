package llm

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math"
	"strconv"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// This file builds the requests both modes send (chat or completions
// bodies, the fields go-openai cannot send, per-request seeds) and
// counts what the replies report.

// seedFor derives the seed of a request from the configured seed, the
// prompt (persona prefix, context and item) and the index of its first
// sample, so that no two prompts share their random draws: with a seed
// from the index alone, sample k of every item of a persona would be drawn
// with the same seed, and one simulated person's answers would be
// correlated across items by construction. Strict retries get seeds of
// their own. The result stays within int64, which servers parse.
func seedFor(seed *uint64, p agent.Prompt, sample int, strict bool) *uint64 {
	if seed == nil {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(p.System))
	h.Write([]byte{0})
	h.Write([]byte(p.User))
	x := 2 * uint64(sample)
	if strict {
		x++
	}
	s := splitmix(splitmix(*seed^splitmix(h.Sum64())) ^ x)
	s &= math.MaxInt64
	return &s
}

// splitmix is SplitMix64's output function: a bijection of uint64 whose
// outputs for nearby inputs look unrelated.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func chatMessages(p agent.Prompt) []chatMsg {
	msgs := make([]chatMsg, 0, 4)
	if p.System != "" {
		msgs = append(msgs, chatMsg{role: "system", content: p.System})
	}
	return append(msgs, chatMsg{role: "user", content: p.User})
}

// completionPrompt joins the prompt for /completions, the value prefix
// first so that prefix caches hit, ending where the answer goes.
func completionPrompt(p agent.Prompt) string {
	if p.System == "" {
		return p.User + "\n\nAnswer:"
	}
	return p.System + "\n\n" + p.User + "\n\nAnswer:"
}

func (c *Client) chatRequest(msgs []chatMsg, n, maxTokens int) chatReq {
	return chatReq{msgs: msgs, n: n, maxTokens: maxTokens}
}

func (c *Client) completionRequest(prompt string, n, maxTokens int) completionReq {
	return completionReq{prompt: prompt, n: n, maxTokens: maxTokens}
}

// extra lists the body fields go-openai cannot send: the temperature even
// when zero (its struct omits a zero), a seed beyond int range, and vLLM's
// structured_outputs restricting the answer to the scale's options. The
// fields every request shares are encoded once (staticExtra); a request
// adds its seed and its scale's choices.
func (c *Client) extra(q *agent.Question, seed *uint64) bodyExtra {
	e := bodyExtra{fields: c.static}
	if seed != nil {
		e.seed, e.hasSeed = *seed, true
	}
	if c.cfg.StructuredOutputs {
		e.choices = c.choicesField(q.Instrument.Scale)
	}
	return e
}

// staticExtra encodes the extra fields every request carries: the
// configured ExtraBody, overridden by the fields the client sets itself.
func staticExtra(cfg ClientConfig) (*extraFields, error) {
	m := make(map[string]any, len(cfg.ExtraBody)+2)
	for k, v := range cfg.ExtraBody {
		m[k] = v
	}
	if cfg.ReasoningEffort != "" {
		m["reasoning_effort"] = cfg.ReasoningEffort
	}
	if cfg.Temperature != nil {
		m["temperature"] = *cfg.Temperature
	}
	return encodeFields(m)
}

// choicesField is the structured_outputs value of scale sc, encoded once
// per scale.
func (c *Client) choicesField(sc questionnaires.Scale) []byte {
	k := [2]int{sc.Min, sc.Max}
	if v, ok := c.choices.Load(k); ok {
		return v.([]byte)
	}
	choices := make([]string, 0, sc.Points())
	for x := sc.Min; x <= sc.Max; x++ {
		choices = append(choices, strconv.Itoa(x))
	}
	b, _ := json.Marshal(map[string]any{"choice": choices}) // strings always encode
	c.choices.Store(k, b)
	return b
}

// chat sends a /chat/completions request and reads its reply (wire.go).
func (c *Client) chat(ctx context.Context, req chatReq, q *agent.Question, seed *uint64) (chatReply, error) {
	w := c.wire
	if w.chatRefusal != nil {
		return chatReply{}, w.chatRefusal
	}
	if w.chatErr != nil {
		return chatReply{}, w.chatErr
	}
	body, err := w.chatBody(&req, c.extra(q, seed))
	if err != nil {
		return chatReply{}, err
	}
	buf := getReplyBuf()
	data, h, err := c.doer.post(ctx, w.chat, body, buf)
	if err != nil {
		return chatReply{}, err
	}
	resp, err := decodeChat(data)
	putReplyBuf(buf) // resp holds copies
	if err != nil {
		return resp, err
	}
	c.noteServed(ctx, resp.Model, resp.SystemFingerprint, h)
	c.stats.promptTokens.Add(int64(resp.Usage.PromptTokens))
	c.stats.completionTokens.Add(int64(resp.Usage.CompletionTokens))
	c.doer.obs.Tokens(c.doer.model, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	return resp, nil
}

// complete sends a /completions request and reads its reply (wire.go).
func (c *Client) complete(ctx context.Context, req completionReq, q *agent.Question, seed *uint64) (openai.CompletionResponse, error) {
	w := c.wire
	if w.complRefusal != nil {
		return openai.CompletionResponse{}, w.complRefusal
	}
	if w.completionsErr != nil {
		return openai.CompletionResponse{}, w.completionsErr
	}
	body, err := w.completionBody(&req, c.extra(q, seed))
	if err != nil {
		return openai.CompletionResponse{}, err
	}
	buf := getReplyBuf()
	data, h, err := c.doer.post(ctx, w.completions, body, buf)
	if err != nil {
		return openai.CompletionResponse{}, err
	}
	resp, err := decodeCompletion(data, h)
	putReplyBuf(buf) // resp holds copies
	if err != nil {
		return resp, err
	}
	c.noteServed(ctx, resp.Model, "", h)
	if resp.Usage != nil {
		c.stats.promptTokens.Add(int64(resp.Usage.PromptTokens))
		c.stats.completionTokens.Add(int64(resp.Usage.CompletionTokens))
		c.doer.obs.Tokens(c.doer.model, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	}
	return resp, nil
}
