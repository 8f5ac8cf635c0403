package modelserver

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/society-sim/society/agent"
)

// srvNonAnswer is the probability the first token is not an answer option,
// given to the token srvNonAnswerToken: real models spend a little mass on
// "I", "The" and the like, so covered mass below one is the normal case.
const (
	srvNonAnswer      = 0.02
	srvNonAnswerToken = " I"
)

// srvTop is one entry of a position's top log-probabilities.
type srvTop struct {
	token   string
	logprob float64
}

// srvChoice is one generated completion.
type srvChoice struct {
	text     string
	tokens   []string
	logprobs []float64 // per token
	tops     [][]srvTop
	finish   string
}

// srvPrompt is one prompt being answered.
type srvPrompt struct {
	q     srvQuestion
	dist  []float64 // raw probabilities over q.lo..q.hi
	first []srvTop  // the first position's top log-probabilities, best first; nil without logprobs
	base  uint64    // seed of the prompt's random streams
}

func (s *Server) prepare(req uint64, text string, p srvParams) *srvPrompt {
	q := s.index.understand(text)
	dist := s.distribution(q)
	var first []srvTop
	if p.logprobs {
		first = make([]srvTop, 0, len(dist)+1)
		for k, pk := range dist {
			first = append(first, srvTop{strconv.Itoa(q.lo + k), srvLog(pk * (1 - srvNonAnswer))})
		}
		first = append(first, srvTop{srvNonAnswerToken, srvLog(srvNonAnswer)})
		sort.SliceStable(first, func(i, j int) bool { return first[i].logprob > first[j].logprob })
	}

	h := promptHash(text)
	var base uint64
	switch {
	case p.temperature == 0:
		// Greedy decoding is a function of the prompt.
		base = srvSeed(s.opt.Seed, h, 0)
	case p.seed != nil:
		base = srvSeed(s.opt.Seed, h, uint64(*p.seed), 1)
	default:
		base = srvSeed(s.opt.Seed, h, req, 2)
	}
	return &srvPrompt{q: q, dist: dist, first: first, base: base}
}

// srvSeed derives a stream seed from keys (53 bits of agent.Uniform).
func srvSeed(seed uint64, keys ...uint64) uint64 {
	return uint64(agent.Uniform(seed, keys...) * (1 << 53))
}

// choice generates the i-th completion of a prompt.
func (s *Server) choice(pr *srvPrompt, i int, p srvParams) (srvChoice, bool) {
	u := func(key uint64) float64 { return agent.Uniform(pr.base, uint64(i), key) }
	var text string
	garbage := false
	switch {
	case p.choices != nil:
		text = p.choices[srvPick(pr.choiceWeights(p.choices), p.temperature, u(srvKeyAnswer))]
	case u(srvKeyGarbage) < s.opt.GarbageRate:
		garbage = true
		text = pr.garbage(u(srvKeyGarbageKind))
	default:
		k := srvPick(pr.dist, p.temperature, u(srvKeyAnswer))
		text = pr.format(pr.q.lo+k, u(srvKeyFormat))
	}

	finish := "stop"
	for _, stop := range p.stop {
		if stop == "" {
			continue
		}
		if j := strings.Index(text, stop); j >= 0 {
			text = text[:j]
		}
	}
	tokens := srvTokens(text)
	if p.maxTokens > 0 && len(tokens) > p.maxTokens {
		tokens = tokens[:p.maxTokens]
		text = strings.Join(tokens, "")
		finish = "length"
	}
	c := srvChoice{text: text, tokens: tokens, finish: finish}
	if p.logprobs {
		c.logprobs, c.tops = pr.tokenLogprobs(tokens, p.top)
	}
	return c, garbage
}

// choiceWeights gives each structured-output choice the probability of the
// answer it names (a number on the scale, or a label); when none names an
// answer the choices are equally likely.
func (pr *srvPrompt) choiceWeights(choices []string) []float64 {
	w := make([]float64, len(choices))
	named := false
	for j, c := range choices {
		if k, ok := pr.answerOf(c); ok {
			w[j] = pr.dist[k-pr.q.lo]
			named = true
		}
	}
	if !named {
		for j := range w {
			w[j] = 1
		}
	}
	return w
}

func (pr *srvPrompt) answerOf(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if k, err := strconv.Atoi(s); err == nil && k >= pr.q.lo && k <= pr.q.hi {
		return k, true
	}
	for j, l := range pr.q.labels {
		if strings.EqualFold(s, l) {
			return pr.q.lo + j, true
		}
	}
	return 0, false
}

// srvPick draws an index from the weights at the temperature: the mode at
// temperature 0 (the first of equals), otherwise from w^(1/T), computed in
// log space so that small temperatures do not underflow.
func srvPick(w []float64, temperature, u float64) int {
	if temperature == 0 {
		best := 0
		for j, x := range w {
			if x > w[best] {
				best = j
			}
		}
		return best
	}
	lw := make([]float64, len(w))
	top := math.Inf(-1)
	for j, x := range w {
		if x <= 0 {
			lw[j] = math.Inf(-1)
			continue
		}
		lw[j] = math.Log(x) / temperature
		top = max(top, lw[j])
	}
	if math.IsInf(top, -1) {
		return int(u * float64(len(w)))
	}
	total := 0.0
	for j := range lw {
		lw[j] = math.Exp(lw[j] - top)
		total += lw[j]
	}
	u *= total
	acc := 0.0
	for j, x := range lw {
		acc += x
		if u < acc {
			return j
		}
	}
	return len(w) - 1
}

// format writes answer k as a model might: mostly the digit alone, sometimes
// with its label, the label alone, or a short sentence.
func (pr *srvPrompt) format(k int, u float64) string {
	digit := strconv.Itoa(k)
	label := ""
	if pr.q.labels != nil {
		label = pr.q.labels[k-pr.q.lo]
	}
	switch {
	case u < 0.70:
		return digit
	case u < 0.85 && label != "":
		return digit + " - " + label
	case u < 0.95 && label != "":
		return label
	case u >= 0.95:
		return "I'd say " + digit + "."
	}
	return digit
}

// garbage is a completion no answer parser should accept.
func (pr *srvPrompt) garbage(u float64) string {
	switch {
	case u < 0.4:
		return "As an AI, I don't have personal values or preferences, so I can't answer that."
	case u < 0.7:
		return ""
	}
	lo, hi := pr.q.lo, pr.q.hi
	if hi-lo >= 3 {
		lo, hi = lo+1, hi-1
	}
	return fmt.Sprintf("Somewhere between %d and %d.", lo, hi)
}

// srvToken splits text roughly as a tokenizer would: single digits, words
// with their leading space, punctuation marks.
var srvToken = regexp.MustCompile(`\s*(?:\d|[\p{L}]+|[^\s\p{L}\d])`)

func srvTokens(text string) []string {
	if len(text) == 1 && text[0] < utf8.RuneSelf && !strings.ContainsRune("\t\n\f\r ", rune(text[0])) {
		// A lone ASCII character that is not \s (most replies: a digit)
		// is its own token.
		return []string{text}
	}
	return srvToken.FindAllString(text, -1)
}

// tokenLogprobs gives every token a log-probability and the top list of its
// position. The first position carries the answer distribution; the rest of
// a completion is near-certain continuation.
func (pr *srvPrompt) tokenLogprobs(tokens []string, top int) ([]float64, [][]srvTop) {
	lps := make([]float64, len(tokens))
	tops := make([][]srvTop, len(tokens))
	for j, tok := range tokens {
		if j == 0 {
			lps[j] = srvLog(srvNonAnswer / 2)
			for _, t := range pr.first {
				if t.token == tok {
					lps[j] = t.logprob
				}
			}
			tops[j] = pr.first[:min(top, len(pr.first))]
			continue
		}
		lps[j] = math.Log(0.95)
		if top > 0 {
			tops[j] = []srvTop{{tok, lps[j]}}
		}
	}
	return lps, tops
}

// srvUsage counts words as tokens: close enough for throughput figures.
type srvUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type srvChatResponse struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []srvChatChoice `json:"choices"`
	Usage             srvUsage        `json:"usage"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type srvChatChoice struct {
	Index        int              `json:"index"`
	Message      srvChatMessage   `json:"message"`
	Logprobs     *srvChatLogprobs `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type srvChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type srvChatLogprobs struct {
	Content []srvChatToken `json:"content"`
}

type srvChatToken struct {
	Token       string            `json:"token"`
	Logprob     float64           `json:"logprob"`
	Bytes       []int             `json:"bytes"`
	TopLogprobs []srvChatTopToken `json:"top_logprobs"`
}

type srvChatTopToken struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type srvCompletionResponse struct {
	ID                string                `json:"id"`
	Object            string                `json:"object"`
	Created           int64                 `json:"created"`
	Model             string                `json:"model"`
	Choices           []srvCompletionChoice `json:"choices"`
	Usage             srvUsage              `json:"usage"`
	SystemFingerprint string                `json:"system_fingerprint"`
}

type srvCompletionChoice struct {
	Index        int                    `json:"index"`
	Text         string                 `json:"text"`
	Logprobs     *srvCompletionLogprobs `json:"logprobs"`
	FinishReason string                 `json:"finish_reason"`
}

type srvCompletionLogprobs struct {
	TextOffset    []int                `json:"text_offset"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	Tokens        []string             `json:"tokens"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
}

const srvFingerprint = "society-" + syntheticName

func srvBytes(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}

// srvWords counts the words of s as strings.Fields splits them (runs of
// characters that are not unicode.IsSpace), without making the slice.
func srvWords(s string) int {
	n, inWord := 0, false
	for i := 0; i < len(s); {
		var space bool
		if c := s[i]; c < utf8.RuneSelf {
			space = c == ' ' || '\t' <= c && c <= '\r'
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			space = unicode.IsSpace(r)
			i += size
		}
		if !space && !inWord {
			n++
		}
		inWord = !space
	}
	return n
}

func (s *Server) chatResponse(req uint64, model string, p srvParams) *srvChatResponse {
	text := p.prompts[0]
	pr := s.prepare(req, text, p)
	out := &srvChatResponse{
		ID:                "chatcmpl-" + syntheticName + "-" + strconv.FormatUint(req, 10),
		Object:            "chat.completion",
		Created:           time.Now().Unix(),
		Model:             model,
		Choices:           make([]srvChatChoice, 0, p.n),
		SystemFingerprint: srvFingerprint,
		Usage:             srvUsage{PromptTokens: srvWords(text)},
	}
	for i := range p.n {
		c, garbage := s.choice(pr, i, p)
		if garbage {
			s.garbage.Add(1)
		}
		ch := srvChatChoice{
			Index:        i,
			Message:      srvChatMessage{Role: "assistant", Content: c.text},
			FinishReason: c.finish,
		}
		if p.logprobs {
			ch.Logprobs = &srvChatLogprobs{Content: make([]srvChatToken, len(c.tokens))}
			for j, tok := range c.tokens {
				tops := make([]srvChatTopToken, len(c.tops[j]))
				for k, t := range c.tops[j] {
					tops[k] = srvChatTopToken{Token: t.token, Logprob: t.logprob, Bytes: srvBytes(t.token)}
				}
				ch.Logprobs.Content[j] = srvChatToken{Token: tok, Logprob: c.logprobs[j], Bytes: srvBytes(tok), TopLogprobs: tops}
			}
		}
		out.Choices = append(out.Choices, ch)
		out.Usage.CompletionTokens += len(c.tokens)
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	return out
}

func (s *Server) completionResponse(req uint64, model string, p srvParams) *srvCompletionResponse {
	out := &srvCompletionResponse{
		ID:                "cmpl-" + syntheticName + "-" + strconv.FormatUint(req, 10),
		Object:            "text_completion",
		Created:           time.Now().Unix(),
		Model:             model,
		Choices:           make([]srvCompletionChoice, 0, p.n*len(p.prompts)),
		SystemFingerprint: srvFingerprint,
	}
	for _, text := range p.prompts {
		pr := s.prepare(req, text, p)
		out.Usage.PromptTokens += srvWords(text)
		for i := range p.n {
			c, garbage := s.choice(pr, i, p)
			if garbage {
				s.garbage.Add(1)
			}
			ch := srvCompletionChoice{Index: len(out.Choices), Text: c.text, FinishReason: c.finish}
			if p.logprobs {
				lp := &srvCompletionLogprobs{
					TextOffset:    make([]int, len(c.tokens)),
					TokenLogprobs: c.logprobs,
					Tokens:        c.tokens,
					TopLogprobs:   make([]map[string]float64, len(c.tokens)),
				}
				offset := len(text)
				for j, tok := range c.tokens {
					lp.TextOffset[j] = offset
					offset += len(tok)
					m := make(map[string]float64, len(c.tops[j])+1)
					for _, t := range c.tops[j] {
						m[t.token] = t.logprob
					}
					// vLLM adds the sampled token to its position's list.
					m[tok] = c.logprobs[j]
					lp.TopLogprobs[j] = m
				}
				ch.Logprobs = lp
			}
			out.Choices = append(out.Choices, ch)
			out.Usage.CompletionTokens += len(c.tokens)
		}
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	return out
}

// promptHash is the 64-bit FNV-1a hash of a prompt.
func promptHash(text string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(text); i++ {
		h ^= uint64(text[i])
		h *= prime64
	}
	return h
}
