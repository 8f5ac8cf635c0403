package llm

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/questionnaires"
)

// This file reads replies as real servers write them: error objects sent
// with HTTP 200, non-standard JSON numbers in log-probabilities, message
// content given as a list of parts, reasoning left in the content, replies
// cut off by the token limit, and first-token alternatives spelled with a
// tokenizer's space markers.

// replyError is an error object a server sent in an HTTP 200 body in place
// of a completion (vLLM's {"object":"error",...}, or {"error":{...}}). It is
// a failed request carrying the server's own message; a transient one
// (overload, rate limit, a 5xx code) is retried like a 503.
type replyError struct {
	msg, typ, code string
	transient      bool
}

func (e *replyError) Error() string {
	var b strings.Builder
	b.WriteString("server replied with an error: ")
	b.WriteString(e.msg)
	if e.typ != "" || e.code != "" {
		b.WriteString(" (")
		b.WriteString(strings.Trim(e.typ+" "+e.code, " "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap marks a transient error retryable for the doer.
func (e *replyError) Unwrap() error {
	if e.transient {
		return errRetryable
	}
	return nil
}

// checkReply inspects a 2xx response body before go-openai decodes it. An
// error object comes back as a *replyError; a body with non-standard
// numbers (NaN, Infinity, -Infinity, which some servers write for
// log-probabilities and which encoding/json rejects) comes back with those
// numbers replaced by finite ones that carry no probability (see
// sanitiseNumbers).
func checkReply(data []byte) ([]byte, error) {
	if err := errorObject(data); err != nil {
		return nil, err
	}
	return sanitiseNumbers(data), nil
}

// errorObject returns the error a body holds instead of a completion, or
// nil for a completion.
func errorObject(data []byte) error {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || t[0] != '{' || !bytes.Contains(t, []byte(`"error"`)) {
		return nil
	}
	var b struct {
		Object  string          `json:"object"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
		Error   json.RawMessage `json:"error"`
		Choices json.RawMessage `json:"choices"`
	}
	if json.Unmarshal(sanitiseNumbers(t), &b) != nil {
		return nil // not JSON: go-openai reports it
	}
	e := &replyError{msg: b.Message, typ: b.Type, code: rawCode(b.Code)}
	switch {
	case b.Object == "error":
	case len(b.Error) > 0 && string(b.Error) != "null" && len(b.Choices) == 0:
		var inner struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
		}
		var s string
		if json.Unmarshal(b.Error, &s) == nil {
			e.msg = s
		} else if json.Unmarshal(b.Error, &inner) == nil {
			e.msg, e.typ, e.code = inner.Message, inner.Type, rawCode(inner.Code)
		} else {
			e.msg = string(b.Error)
		}
	default:
		return nil
	}
	if e.msg == "" {
		e.msg = "(no message)"
	}
	e.transient = transientError(e)
	return e
}

// rawCode renders an error code given as a number or a string.
func rawCode(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// transientError reports whether an error object says the server could
// serve the request later: an HTTP-like code of 408, 429 (but not an
// exhausted quota) or 5xx, or a type or message naming overload, a rate
// limit, a timeout or unavailability. Everything else (a model that does
// not exist, a bad parameter) is permanent.
func transientError(e *replyError) bool {
	lower := strings.ToLower(e.typ + " " + e.code + " " + e.msg)
	if strings.Contains(lower, "quota") || strings.Contains(lower, "billing") {
		return false
	}
	if n, err := strconv.Atoi(e.code); err == nil {
		switch {
		case n == 408 || n == 429 || n >= 500 && n < 600:
			return true
		case n >= 400 && n < 500:
			return false
		}
	}
	for _, w := range []string{"overload", "unavailable", "rate limit", "rate_limit", "ratelimit", "timeout",
		"timed out", "try again", "internalserver", "internal_server", "server_error", "busy"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// Values that stand in for non-standard JSON numbers. ±1e30 fits a float32
// (go-openai decodes completions' log-probabilities as float32); exp(-1e30)
// is exactly 0 and a log-probability of +1e30 is rejected by optionDist, so
// neither carries probability mass. NaN, a log-probability nobody can use,
// becomes no mass as well: never certainty.
const (
	negInfJSON = "-1e30"
	posInfJSON = "1e30"
)

// sanitiseNumbers replaces the bare words NaN, Infinity and -Infinity
// outside JSON strings with finite numbers (see negInfJSON). Bodies without
// them are returned as they are, without a copy.
func sanitiseNumbers(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		rest := data[i:]
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(rest, []byte("-Infinity")):
			out = append(out, negInfJSON...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(rest, []byte("+Infinity")):
			out = append(out, posInfJSON...)
			i += len("+Infinity") - 1
		case bytes.HasPrefix(rest, []byte("Infinity")):
			out = append(out, posInfJSON...)
			i += len("Infinity") - 1
		case bytes.HasPrefix(rest, []byte("-NaN")):
			out = append(out, negInfJSON...)
			i += len("-NaN") - 1
		case bytes.HasPrefix(rest, []byte("NaN")):
			out = append(out, negInfJSON...)
			i += len("NaN") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

// choice is one completion of a reply, as the client reads it.
type choice struct {
	content string // the text as sent, reasoning included
	finish  string // finish_reason
}

// chatChoices reads the choices of a chat reply. Content given as a list
// of parts is joined; reasoning in reasoning_content or reasoning fields is
// not part of the content (go-openai keeps the first apart and drops the
// second).
func chatChoices(resp openai.ChatCompletionResponse) []choice {
	out := make([]choice, len(resp.Choices))
	for i, ch := range resp.Choices {
		text := ch.Message.Content
		if text == "" && len(ch.Message.MultiContent) > 0 {
			var b strings.Builder
			for _, part := range ch.Message.MultiContent {
				if part.Type == openai.ChatMessagePartTypeText || part.Type == "output_text" || part.Type == "" {
					b.WriteString(part.Text)
				}
			}
			text = b.String()
		}
		out[i] = choice{content: text, finish: string(ch.FinishReason)}
	}
	return out
}

func completionChoices(resp openai.CompletionResponse) []choice {
	out := make([]choice, len(resp.Choices))
	for i, ch := range resp.Choices {
		out[i] = choice{content: ch.Text, finish: ch.FinishReason}
	}
	return out
}

// truncationReason is the reason of an answer cut off by the token limit,
// or "" when the reply is complete enough to read. A reply that stopped at
// the token limit is read only when it is a bare answer (see bareAnswer):
// anything longer may have gone on to qualify or contradict what it said,
// and the number in a cut-off sentence is a guess.
func truncationReason(c choice, sc questionnaires.Scale) (text, reason string) {
	text, unfinished := StripReasoning(c.content)
	text = strings.TrimSpace(text)
	switch {
	case unfinished:
		return text, "truncated: the reply was cut off while reasoning, before an answer"
	case c.finish == "length" && !bareAnswer(text, sc):
		if text == "" {
			return text, "truncated: the token limit was reached before an answer"
		}
		return text, "truncated: the reply was cut off by the token limit"
	}
	return text, ""
}

// bareAnswer reports whether text is nothing but one answer: a number on
// the scale, or one of its labels, with at most a full stop after it, and
// not the beginning of a longer answer ("1" of "10", "Not like me" of "Not
// like me at all").
func bareAnswer(text string, sc questionnaires.Scale) bool {
	t := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(text), "."))
	if t == "" {
		return false
	}
	if n, err := strconv.Atoi(t); err == nil && t[0] != '+' && t[0] != '-' {
		if !sc.Valid(n) {
			return false
		}
		for x := sc.Min; x <= sc.Max; x++ {
			if s := strconv.Itoa(x); x != n && strings.HasPrefix(s, t) {
				return false
			}
		}
		return true
	}
	lt := strings.ToLower(t)
	match := false
	for x := sc.Min; x <= sc.Max; x++ {
		l := strings.ToLower(strings.TrimSpace(sc.Label(x)))
		switch {
		case l == "":
		case l == lt:
			match = true
		case strings.HasPrefix(l, lt):
			return false
		}
	}
	return match
}

// alt is one alternative for the first token of a reply, with its
// log-probability.
type alt struct {
	token string
	bytes []byte // the token's UTF-8 bytes, when the server gives them
	lp    float64
}

// tokenMarkers are the characters byte-level and SentencePiece tokenizers
// use to spell whitespace inside a token: U+0120 'Ġ' (space), U+010A 'Ċ'
// (newline), U+0109 'ĉ' (tab), U+010D 'č' (carriage return), U+2581 '▁'.
func tokenMarker(r rune) bool {
	switch r {
	case '\u0120', '\u010A', '\u0109', '\u010D', '\u2581':
		return true
	}
	return unicode.IsSpace(r)
}

// optionOf returns the answer a first-token alternative spells, if it
// spells a whole number and nothing else. The token's bytes, when given
// and valid UTF-8, are its true text; otherwise the token string is read
// with the tokenizer's whitespace markers taken as whitespace. Surrounding
// whitespace is ignored.
func optionOf(a alt) (int, bool) {
	s := a.token
	if len(a.bytes) > 0 && utf8.Valid(a.bytes) {
		s = string(a.bytes)
	}
	s = strings.TrimFunc(s, tokenMarker)
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// chatAlternatives lists the first token's alternatives of a chat reply.
// ok is false when the reply has none (no logprobs, or an empty or absent
// top_logprobs): the server ignored the request for alternatives, and the
// one token it chose says nothing about the others. The chosen token is
// added when the list leaves it out.
func chatAlternatives(resp openai.ChatCompletionResponse) (alts []alt, ok bool) {
	if len(resp.Choices) == 0 || resp.Choices[0].LogProbs == nil || len(resp.Choices[0].LogProbs.Content) == 0 {
		return nil, false
	}
	first := resp.Choices[0].LogProbs.Content[0]
	if len(first.TopLogProbs) == 0 {
		return nil, false
	}
	seen := false
	for _, t := range first.TopLogProbs {
		alts = append(alts, alt{token: t.Token, bytes: t.Bytes, lp: t.LogProb})
		if t.Token == first.Token && bytes.Equal(t.Bytes, first.Bytes) {
			seen = true
		}
	}
	if !seen && first.Token != "" {
		alts = append(alts, alt{token: first.Token, bytes: first.Bytes, lp: first.LogProb})
	}
	return alts, true
}

// completionAlternatives lists the first token's alternatives of a
// /completions reply (a token → log-probability map).
func completionAlternatives(resp openai.CompletionResponse) (alts []alt, ok bool) {
	if len(resp.Choices) == 0 || len(resp.Choices[0].LogProbs.TopLogprobs) == 0 || len(resp.Choices[0].LogProbs.TopLogprobs[0]) == 0 {
		return nil, false
	}
	for tok, lp := range resp.Choices[0].LogProbs.TopLogprobs[0] {
		alts = append(alts, alt{token: tok, lp: float64(lp)})
	}
	return alts, true
}
