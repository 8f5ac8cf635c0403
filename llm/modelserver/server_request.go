package modelserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// srvRequest is the union of the chat and completion request fields the
// server reads. Fields whose JSON type varies between the two endpoints or
// between clients (prompt, content, logprobs, stop) stay raw until params.
// Unknown fields are ignored, as vLLM ignores them.
type srvRequest struct {
	Model               string          `json:"model"`
	Messages            []srvMessage    `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	N                   *int            `json:"n"`
	Temperature         *float64        `json:"temperature"`
	Seed                *int64          `json:"seed"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Logprobs            json.RawMessage `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StructuredOutputs   *struct {
		Choice []string `json:"choice"`
	} `json:"structured_outputs"`
	GuidedChoice []string `json:"guided_choice"`

	// texts are the messages' contents when every one is a JSON string or
	// null (srvDecodeRequest's single pass); nil otherwise, when params
	// reads Messages.
	texts []string
}

type srvMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// srvParams are a request's validated sampling parameters.
type srvParams struct {
	prompts     []string // one for chat; one or more for completions
	n           int
	temperature float64
	seed        *int64
	maxTokens   int // 0: no limit
	logprobs    bool
	top         int // how many top log-probabilities per position
	stop        []string
	choices     []string // structured output choices; nil: free text
}

// srvMaxN bounds n: vLLM has no fixed bound, but a request for more
// completions than this is a client bug, not a workload.
const srvMaxN = 1024

// srvMaxTop is vLLM's default --max-logprobs.
const srvMaxTop = 20

func (r *srvRequest) params(chat bool) (srvParams, error) {
	p := srvParams{n: 1, temperature: 1, seed: r.Seed}
	if r.Stream {
		return p, fmt.Errorf("stream: streaming is not supported by the synthetic server")
	}
	if r.N != nil {
		p.n = *r.N
	}
	if p.n < 1 || p.n > srvMaxN {
		return p, fmt.Errorf("n: must be between 1 and %d, got %d", srvMaxN, p.n)
	}
	if r.Temperature != nil {
		p.temperature = *r.Temperature
	}
	if p.temperature < 0 {
		return p, fmt.Errorf("temperature: must be at least 0, got %g", p.temperature)
	}
	switch {
	case r.MaxCompletionTokens != nil:
		p.maxTokens = *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		p.maxTokens = *r.MaxTokens
	default:
		p.maxTokens = 0
	}
	if (r.MaxCompletionTokens != nil || r.MaxTokens != nil) && p.maxTokens < 1 {
		return p, fmt.Errorf("max_tokens: must be at least 1, got %d", p.maxTokens)
	}

	lp, top, err := srvLogprobs(r.Logprobs)
	if err != nil {
		return p, err
	}
	p.logprobs, p.top = lp, top
	if chat && r.TopLogprobs != nil {
		// Lenient where OpenAI is strict: top_logprobs implies logprobs.
		p.top = *r.TopLogprobs
		p.logprobs = p.logprobs || p.top > 0
	}
	if p.top < 0 || p.top > srvMaxTop {
		return p, fmt.Errorf("top_logprobs: must be between 0 and %d, got %d", srvMaxTop, p.top)
	}

	if p.stop, err = srvStrings(r.Stop); err != nil {
		return p, fmt.Errorf("stop: %w", err)
	}
	switch {
	case r.StructuredOutputs != nil && len(r.StructuredOutputs.Choice) > 0:
		p.choices = r.StructuredOutputs.Choice
	case len(r.GuidedChoice) > 0:
		p.choices = r.GuidedChoice
	}

	if chat {
		if len(r.Messages) == 0 && len(r.texts) == 0 {
			return p, fmt.Errorf("messages: at least one message is required")
		}
		var parts []string
		for i, m := range r.Messages {
			text, err := srvContent(m.Content)
			if err != nil {
				return p, fmt.Errorf("messages[%d].content: %w", i, err)
			}
			if text != "" {
				parts = append(parts, text)
			}
		}
		for _, text := range r.texts {
			if text != "" {
				parts = append(parts, text)
			}
		}
		// The system prefix, then the user text, as a completion prompt
		// would carry them: the prompt index reads both forms alike.
		p.prompts = []string{strings.Join(parts, "\n\n")}
		return p, nil
	}
	if len(r.Prompt) == 0 || bytes.Equal(r.Prompt, []byte("null")) {
		return p, fmt.Errorf("prompt: required")
	}
	if p.prompts, err = srvStrings(r.Prompt); err != nil {
		return p, fmt.Errorf("prompt: %w (token ids are not supported)", err)
	}
	if len(p.prompts) == 0 {
		return p, fmt.Errorf("prompt: at least one prompt is required")
	}
	return p, nil
}

// srvLogprobs reads logprobs as the chat API sends it (a boolean) or as the
// completion API does (the number of top log-probabilities).
func srvLogprobs(raw json.RawMessage) (on bool, top int, err error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return false, 0, nil
	}
	if err := json.Unmarshal(raw, &on); err == nil {
		return on, 0, nil
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return false, 0, fmt.Errorf("logprobs: want a boolean or a count, got %s", raw)
	}
	return true, top, nil
}

// srvStrings reads a string or an array of strings.
func srvStrings(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want a string or an array of strings")
	}
	return many, nil
}

// srvContent reads a message's content: a string, or an array of parts of
// which the text parts count.
func srvContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("want a string or an array of content parts")
	}
	var texts []string
	for _, part := range parts {
		if part.Type == "text" || part.Type == "" {
			texts = append(texts, part.Text)
		}
	}
	return strings.Join(texts, "\n\n"), nil
}

// srvStringMessages is a request whose messages' contents are all strings
// (or null), as nearly every client sends them: decoded in one pass, where
// srvRequest keeps each content raw and reads it again.
type srvStringMessages struct {
	srvRequest
	Messages []struct {
		Role    string `json:"role"` // unread, but a role of another type fails as before
		Content string `json:"content"`
	} `json:"messages"`
}

// srvDecodeRequest decodes a request body into r. A body that is one JSON
// value whose messages' contents are strings or null takes a single pass of
// json.Unmarshal; any other goes through json.Decoder and srvRequest's raw
// contents, for their leniency and their errors.
func srvDecodeRequest(body []byte, r *srvRequest) error {
	var fast srvStringMessages
	if json.Unmarshal(body, &fast) == nil {
		*r = fast.srvRequest
		r.Messages = nil
		r.texts = make([]string, len(fast.Messages))
		for i, m := range fast.Messages {
			r.texts[i] = m.Content
		}
		return nil
	}
	return json.NewDecoder(bytes.NewReader(body)).Decode(r)
}
