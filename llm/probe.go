package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/society-sim/society/agent"
)

// checkTimeout bounds the reachability check before a run: a server that
// does not answer a model list within it will not serve a run either.
const checkTimeout = 10 * time.Second

// Check asks the endpoint for its model list (GET /models, which costs no
// tokens) before a run, so that an address where nothing listens, a DNS or
// TLS failure and a rejected key stop the run within seconds, naming the
// URL and the cause. A server without a model list passes. When the list
// does not name the model, the model is asked for by name (GET
// /models/{model}, OpenAI's retrieve, which Ollama and the model server
// answer too): a server that accepts names it does not list (aliases; the
// model server takes any name) says so there. served is false when
// neither the list nor the retrieve knows the model, listed the names the
// list gave.
func (c *Client) Check(ctx context.Context) (served bool, listed []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/models"), nil)
	if err != nil {
		return false, nil, fmt.Errorf("llm %s: %w", c.name, err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.doer.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return false, nil, c.redact(fmt.Errorf("llm %s: GET %s: no reply within %v", c.name, cleanURL(req.URL), checkTimeout))
		}
		return false, nil, c.redact(fmt.Errorf("llm %s: %w", c.name, transportError(context.Background(), req, err, false, checkTimeout.String())))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	// The model server says what it is on every reply, its model list too.
	c.noteServed(ctx, "", "", resp.Header)
	switch {
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return false, nil, c.redact(fmt.Errorf("llm %s: %w", c.name, statusError(req, resp.StatusCode, resp.Header, body)))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return true, nil, nil // no model list here; the requests will tell
	}
	listed = modelIDs(body)
	if len(listed) == 0 || slices.Contains(listed, c.cfg.Model) {
		return true, listed, nil
	}
	return c.retrievable(ctx), listed, nil
}

// retrievable reports whether the endpoint answers GET /models/{model}
// with a model object. Each segment of the name is escaped, its slashes kept, as
// servers route Hugging Face names (org/name).
func (c *Client) retrievable(ctx context.Context) bool {
	if c.cfg.Model == "" {
		return false
	}
	segs := strings.Split(c.cfg.Model, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/models/"+strings.Join(segs, "/")), nil)
	if err != nil {
		return false
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.doer.hc.Do(req)
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	// A model object, not whatever a catch-all route answers.
	var m struct {
		ID string `json:"id"`
	}
	return resp.StatusCode >= 200 && resp.StatusCode <= 299 && json.Unmarshal(body, &m) == nil && m.ID != ""
}

// modelIDs reads the ids of an OpenAI model list ({"data":[{"id":...}]}),
// or of Ollama's ({"models":[{"name":...}]}).
func modelIDs(body []byte) []string {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
		Models []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	if json.Unmarshal(body, &list) != nil {
		return nil
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	for _, m := range list.Models {
		ids = append(ids, m.Name)
	}
	return ids
}

// Name is the client's label in errors and logs.
func (c *Client) Name() string { return c.name }

func (c *Client) url(path string) string {
	base := c.cfg.BaseURL
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	return strings.TrimRight(base, "/") + path
}

// ProbeReport is what an endpoint showed it supports, found by a handful
// of requests with a real question.
type ProbeReport struct {
	URL   string
	Model string
	// Listed is the endpoint's model list (nil: it has none); Served
	// whether the list names the model.
	Listed []string
	Served bool
	// Chat and Completions say whether each endpoint answered; their
	// errors are the server's messages.
	Chat, Completions       bool
	ChatErr, CompletionsErr string
	// Reply is the answer to the question, ReplyTokens its completion
	// tokens and Finish its finish_reason.
	Reply       string
	ReplyTokens int
	Finish      string
	// Reasons says whether the model writes a reasoning before its
	// answer; ReasoningIn where ("reasoning_content", "reasoning" or
	// "<think> in content"). ReasoningOff is the switch that stopped it
	// (a JSON object of extra body fields), empty if none did.
	Reasons      bool
	ReasoningIn  string
	ReasoningOff map[string]any
	// Logprobs says whether first-token log-probabilities came back;
	// TopLogprobs how many alternatives (at most the cap the server
	// stated, when it stated one: TopCap).
	Logprobs    bool
	TopLogprobs int
	TopCap      int
	LogprobsErr string
	// N is how many choices a request for 3 returned (0: refused).
	N    int
	NErr string
	// Seed: "same" when two requests with one seed gave the same text,
	// "differs" when not, or the server's refusal.
	Seed string
	// Structured: "honoured" when the answer kept to the allowed choices,
	// "ignored" when not, or the server's refusal.
	Structured string
	// Recommended settings for the scenario's [[models]] entry.
	Mode      string
	MaxTokens int
	Notes     []string
}

// Probe asks the endpoint of cfg a handful of requests with question q
// and reports what it supports and which settings suit it. An endpoint
// that cannot be reached, or that rejects the key, is an error; other
// refusals are findings.
func Probe(ctx context.Context, cfg ClientConfig, q *agent.Question) (*ProbeReport, error) {
	cfg.MaxRetries = min(cfg.MaxRetries, 2)
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	cfg.Cache, cfg.Observer = nil, nil
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep := &ProbeReport{URL: c.url(""), Model: cfg.Model}
	served, listed, err := c.Check(ctx)
	if err != nil {
		return nil, err
	}
	rep.Served, rep.Listed = served, listed

	p := agent.Render(q)
	sc := q.Instrument.Scale
	msgs := []map[string]any{}
	if p.System != "" {
		msgs = append(msgs, map[string]any{"role": "system", "content": p.System})
	}
	msgs = append(msgs, map[string]any{"role": "user", "content": p.User})
	maxTokens := cmpOr(cfg.MaxTokens, 1024)
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"model": cfg.Model, "messages": msgs, "max_tokens": maxTokens}
		if cfg.Temperature != nil {
			m["temperature"] = *cfg.Temperature
		}
		for k, v := range cfg.ExtraBody {
			m[k] = v
		}
		if cfg.ReasoningEffort != "" {
			m["reasoning_effort"] = cfg.ReasoningEffort
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// The question as the run asks it.
	r, err := c.post(ctx, "/chat/completions", base(nil))
	if err != nil {
		if errors.Is(err, ErrPermanent) && endpointWideErr(err) {
			return nil, err
		}
		rep.ChatErr = messageOfErr(err)
	} else {
		rep.Chat = true
		ch := r.first()
		rep.Reply, rep.Finish, rep.ReplyTokens = ch.Message.Content, ch.Finish, r.Usage.Completion
		rep.ReasoningIn = ch.reasoningIn()
		rep.Reasons = rep.ReasoningIn != ""
	}
	if rep.Reasons {
		for _, off := range []map[string]any{
			{"chat_template_kwargs": map[string]any{"enable_thinking": false}},
			{"reasoning_effort": "none"},
		} {
			r, err := c.post(ctx, "/chat/completions", base(off))
			if err == nil && r.first().reasoningIn() == "" {
				rep.ReasoningOff = off
				rep.Reply, rep.Finish, rep.ReplyTokens = r.first().Message.Content, r.first().Finish, r.Usage.Completion
				break
			}
		}
	}
	off := func(extra map[string]any) map[string]any {
		m := base(rep.ReasoningOff)
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// First-token log-probabilities, as distribution mode asks for them.
	r, err = c.post(ctx, "/chat/completions", off(map[string]any{"max_tokens": 1, "logprobs": true, "top_logprobs": distLogprobs}))
	rep.TopCap = int(c.doer.adapt.maxTopLogprobs.Load())
	if err != nil {
		rep.LogprobsErr = messageOfErr(err)
	} else if lp := r.first().Logprobs; lp != nil && len(lp.Content) > 0 {
		rep.Logprobs = true
		rep.TopLogprobs = len(lp.Content[0].Top)
	}

	// Several choices per request.
	short := min(maxTokens, 64)
	r, err = c.post(ctx, "/chat/completions", off(map[string]any{"n": 3, "max_tokens": short}))
	switch {
	case c.doer.adapt.maxN.Load() == 1:
		rep.NErr = "the server takes one choice per request"
	case err != nil:
		rep.NErr = messageOfErr(err)
	default:
		rep.N = len(r.Choices)
	}

	// The same seed twice, sampling at temperature 1.
	var texts []string
	for range 2 {
		r, err := c.post(ctx, "/chat/completions", off(map[string]any{"seed": 12345, "temperature": 1.0, "max_tokens": short}))
		if err != nil {
			rep.Seed = "refused: " + messageOfErr(err)
			break
		}
		texts = append(texts, r.first().Message.Content)
	}
	if len(texts) == 2 {
		rep.Seed = "differs"
		if texts[0] == texts[1] {
			rep.Seed = "same"
		}
	}

	// vLLM's structured outputs restricted to the scale's options.
	choices := make([]string, 0, sc.Points())
	for x := sc.Min; x <= sc.Max; x++ {
		choices = append(choices, strconv.Itoa(x))
	}
	r, err = c.post(ctx, "/chat/completions", off(map[string]any{"structured_outputs": map[string]any{"choice": choices}}))
	switch {
	case err != nil:
		rep.Structured = "refused: " + messageOfErr(err)
	case slices.Contains(choices, strings.TrimSpace(r.first().Message.Content)):
		rep.Structured = "honoured"
	default:
		rep.Structured = "ignored"
	}

	// The completions endpoint, for base models.
	prompt := completionPrompt(p)
	if _, err := c.post(ctx, "/completions", map[string]any{"model": cfg.Model, "prompt": prompt, "max_tokens": 1}); err != nil {
		rep.CompletionsErr = messageOfErr(err)
	} else {
		rep.Completions = true
	}
	rep.recommend(sc.Points())
	return rep, nil
}

// recommend fills in the mode and settings the scenario should use.
func (rep *ProbeReport) recommend(points int) {
	thinking := rep.Reasons && rep.ReasoningOff == nil
	switch {
	case rep.Logprobs && rep.TopLogprobs >= points && !thinking:
		rep.Mode = ModeDistribution
	default:
		rep.Mode = ModeSample
		switch {
		case thinking:
			rep.Notes = append(rep.Notes, "the model reasons before answering and no switch stopped it: the first token is not the answer, so use sample mode")
		case !rep.Logprobs:
			rep.Notes = append(rep.Notes, "no log-probabilities came back: distribution mode cannot work here")
		case rep.TopLogprobs < points:
			rep.Notes = append(rep.Notes, fmt.Sprintf("only %d alternatives per token came back, fewer than the %d options: distribution mode would miss options", rep.TopLogprobs, points))
		}
	}
	// Room for the answer the model gave, twice over; a reasoning model
	// needs room for its reasoning too.
	switch {
	case thinking:
		rep.MaxTokens = max(4096, roundUp(2*rep.ReplyTokens))
	default:
		rep.MaxTokens = max(64, roundUp(2*rep.ReplyTokens))
	}
	if rep.Finish == "length" {
		rep.Notes = append(rep.Notes, "the reply to the question was cut at max_tokens: raise max_tokens")
	}
	if rep.N <= 1 {
		rep.Notes = append(rep.Notes, "one choice per request: each sample costs a request")
	}
}

func roundUp(n int) int {
	p := 64
	for p < n {
		p *= 2
	}
	return p
}

// endpointWideErr reports whether a permanent failure concerns the whole
// endpoint (the key, the model, the quota) rather than one request.
func endpointWideErr(err error) bool {
	var re *RequestError
	return errors.As(err, &re) && endpointWide(re)
}

func messageOfErr(err error) string {
	var re *RequestError
	if errors.As(err, &re) {
		if re.Status != 0 {
			return fmt.Sprintf("status %d: %s", re.Status, re.Message)
		}
		return re.Message
	}
	return err.Error()
}

// probeReply is the part of a chat or completion reply the probe reads,
// with the reasoning fields servers add.
type probeReply struct {
	Choices []probeChoice `json:"choices"`
	Usage   struct {
		Completion int `json:"completion_tokens"`
	} `json:"usage"`
}

type probeChoice struct {
	Message struct {
		Content          string `json:"content"`
		ReasoningContent string `json:"reasoning_content"`
		Reasoning        string `json:"reasoning"`
	} `json:"message"`
	Text     string `json:"text"`
	Finish   string `json:"finish_reason"`
	Logprobs *struct {
		Content []struct {
			Top []json.RawMessage `json:"top_logprobs"`
		} `json:"content"`
	} `json:"logprobs"`
}

func (r *probeReply) first() probeChoice {
	if len(r.Choices) == 0 {
		return probeChoice{}
	}
	return r.Choices[0]
}

// reasoningIn names where a choice carries a reasoning, or is empty.
func (ch probeChoice) reasoningIn() string {
	switch {
	case strings.TrimSpace(ch.Message.ReasoningContent) != "":
		return "reasoning_content"
	case strings.TrimSpace(ch.Message.Reasoning) != "":
		return "reasoning"
	case strings.Contains(ch.Message.Content, "<think>") || strings.Contains(ch.Message.Content, "</think>"):
		return "<think> in content"
	}
	return ""
}

// post sends one probe request through the client's doer (its retries,
// its error messages, its adaptations) and decodes the reply.
func (c *Client) post(ctx context.Context, path string, body map[string]any) (*probeReply, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path), bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.doer.Do(req)
	if err != nil {
		return nil, c.redact(err)
	}
	defer resp.Body.Close()
	var out probeReply
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s %s: reply: %w", req.Method, cleanURL(req.URL), err)
	}
	if len(out.Choices) == 0 {
		return nil, fmt.Errorf("%s %s: reply without choices", req.Method, cleanURL(req.URL))
	}
	return &out, nil
}
