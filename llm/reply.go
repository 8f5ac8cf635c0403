package llm

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/questionnaires"
)

// This file reads replies as real servers write them: non-standard JSON
// numbers in log-probabilities, message content given as a list of parts,
// reasoning left in the content, replies cut off by the token limit, and
// first-token alternatives spelled with a tokenizer's space markers. Error
// objects sent with HTTP 200 are failures (errorInBody, failure.go).

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
	// calls is the number of requests the reply accounts for: 1 on the
	// first reply kept of each request (fetchSegment), 0 on the others.
	calls int
}

// chatChoices reads the choices of a chat reply. Content given as a list
// of parts is joined; reasoning in reasoning_content or reasoning fields is
// not part of the content (chatReply does not read them).
func chatChoices(resp chatReply) []choice {
	return appendChatChoices(nil, resp)
}

// appendChatChoices is chatChoices appending to dst: a caller that only
// reads the choices can pass a small array of its own and spare an
// allocation.
func appendChatChoices(dst []choice, resp chatReply) []choice {
	for _, ch := range resp.Choices {
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
		dst = append(dst, choice{content: text, finish: string(ch.FinishReason)})
	}
	return dst
}

func completionChoices(resp openai.CompletionResponse) []choice {
	return appendCompletionChoices(nil, resp)
}

// appendCompletionChoices is completionChoices appending to dst.
func appendCompletionChoices(dst []choice, resp openai.CompletionResponse) []choice {
	for _, ch := range resp.Choices {
		dst = append(dst, choice{content: ch.Text, finish: ch.FinishReason})
	}
	return dst
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
func chatAlternatives(resp chatReply) (alts []alt, ok bool) {
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
	return alts, enoughAlternatives(alts)
}

// enoughAlternatives reports whether alternatives can show a
// distribution: a server that lists only the token it chose (it capped or
// ignored top_logprobs) says nothing about the other options, unless that
// token holds nearly all the mass.
func enoughAlternatives(alts []alt) bool {
	return len(alts) >= 2 || len(alts) == 1 && math.Exp(alts[0].lp) >= 0.99
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
	return alts, enoughAlternatives(alts)
}
