package llm

import (
	"encoding/json"
	"sync/atomic"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// This file reads the common shape of a chat reply without reflection:
// encoding/json's decoding of chatReply (a validity scan of the whole
// body, then a reflective walk, a new string for every field and a map
// lookup for every key) was the largest part of the client's own CPU per
// sample call after the connection's reads and writes, and a dozen
// allocations. scanChat reads a body only when it can tell that
// json.Unmarshal would read it the same way into a chatReply; for
// anything else it reports false and decodeChat decodes the body as
// before. What it accepts: one JSON object and nothing but white space
// after it; every key of the fields read spelt exactly as tagged, once per
// object (json.Unmarshal matches keys regardless of case, and a repeated
// key merges into the value decoded before); the fields read of the types
// their Go fields take (or null, which leaves a field's zero value);
// integers without a fraction or exponent within int64. Every other value
// is checked to be valid JSON and skipped, as json.Unmarshal skips the
// fields a type does not have. Strings with escapes or bytes that are
// not UTF-8, and the log-probabilities, are decoded by json.Unmarshal
// itself, each on its own bytes.

// maxScanDepth bounds the nesting scanChat follows; deeper bodies are
// left to json.Unmarshal (which has a limit of its own).
const maxScanDepth = 256

// scanner reads a JSON text from data[pos:].
type scanner struct {
	data  []byte
	pos   int
	depth int
	ok    bool // false once the text is anything scanChat does not read
}

// internedStrings keeps the last model name and fingerprint read, which
// every reply of an endpoint repeats: reading them costs no allocation.
type internedStrings struct {
	model, fingerprint atomic.Pointer[string]
}

var interned internedStrings

// scanChat reads body into r as json.Unmarshal would, and reports false,
// with r in any state, for a body it leaves to json.Unmarshal.
func scanChat(body []byte, r *chatReply) bool {
	s := scanner{data: body, ok: true}
	s.space()
	if !s.byte('{') {
		return false
	}
	var seen uint8
	for s.ok && s.members(&seen) {
		key, ok := s.key()
		if !ok {
			return false
		}
		switch string(key) {
		case "model":
			s.once(&seen, 1)
			r.Model = s.internedString(&interned.model)
		case "system_fingerprint":
			s.once(&seen, 2)
			r.SystemFingerprint = s.internedString(&interned.fingerprint)
		case "choices":
			s.once(&seen, 4)
			r.Choices = s.choices()
		case "usage":
			s.once(&seen, 8)
			s.usage(&r.Usage)
		default:
			s.unknownKey(key, "model", "system_fingerprint", "choices", "usage")
			s.skip()
		}
	}
	if !s.ok {
		return false
	}
	s.space()
	return s.pos == len(s.data)
}

// members steps to the next member of an object whose '{' has been read:
// it reports false at the closing '}' (read) and true before a key; the
// comma between members is read here. seen starts at zero for each
// object: its bit 0x80 marks that a member has been read.
func (s *scanner) members(seen *uint8) bool {
	s.space()
	if s.pos >= len(s.data) {
		s.ok = false
		return false
	}
	if s.data[s.pos] == '}' {
		s.pos++
		return false
	}
	if *seen&0x80 != 0 {
		if !s.byte(',') {
			return false
		}
		s.space()
	}
	*seen |= 0x80
	return true
}

// once fails the scan when bit was seen in this object already: a
// repeated key.
func (s *scanner) once(seen *uint8, bit uint8) {
	if *seen&bit != 0 {
		s.ok = false
	}
	*seen |= bit
}

// unknownKey fails the scan for a key json.Unmarshal would match to one
// of the known ones without case (or through a Unicode folding, for keys
// that are not ASCII).
func (s *scanner) unknownKey(key []byte, known ...string) {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			s.ok = false
			return
		}
	}
	for _, k := range known {
		if keyEqualFold(key, k) {
			s.ok = false
			return
		}
	}
}

// keyEqualFold reports whether the ASCII texts a and b are equal
// without case.
func keyEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// key reads an object's key and the colon after it. Keys with escapes
// are not read (ok false): they may spell a known key. The key's bytes
// are data's: switch string(key) compares them without a copy.
func (s *scanner) key() ([]byte, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			k := s.data[start:i]
			s.pos = i + 1
			s.space()
			if !s.byte(':') {
				return nil, false
			}
			s.space()
			return k, true
		}
		if c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	return nil, false
}

// byte reads c, or fails the scan.
func (s *scanner) byte(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	s.ok = false
	return false
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// null reads a null, reporting whether there was one.
func (s *scanner) null() bool {
	if len(s.data)-s.pos >= 4 && string(s.data[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// stringToken returns the extent of the JSON string at pos, and whether
// it can be copied as it is (no escapes, valid UTF-8).
func (s *scanner) stringToken() (start, end int, plain bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		s.ok = false
		return 0, 0, false
	}
	start, plain = s.pos, true
	ascii := true
	for i := s.pos + 1; i < len(s.data); i++ {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			if plain && !ascii && !utf8.Valid(s.data[start+1:i]) {
				plain = false
			}
			return start, i + 1, plain
		case c == '\\':
			plain = false
			if i+1 >= len(s.data) {
				s.ok = false
				return 0, 0, false
			}
			i++
			switch s.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.data) {
					s.ok = false
					return 0, 0, false
				}
				for _, h := range s.data[i+1 : i+5] {
					if !isHex(h) {
						s.ok = false
						return 0, 0, false
					}
				}
				i += 4
			default:
				s.ok = false
				return 0, 0, false
			}
		case c < 0x20:
			s.ok = false
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	s.ok = false
	return 0, 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// string reads a string field: a JSON string, or null for "".
func (s *scanner) string() string {
	if s.null() {
		return ""
	}
	start, end, plain := s.stringToken()
	if !s.ok {
		return ""
	}
	if plain {
		return string(s.data[start+1 : end-1])
	}
	var v string
	if json.Unmarshal(s.data[start:end], &v) != nil {
		s.ok = false
	}
	return v
}

// internedString is string, reusing the string last read into p when the
// bytes are the same.
func (s *scanner) internedString(p *atomic.Pointer[string]) string {
	if s.null() {
		return ""
	}
	start, end, plain := s.stringToken()
	if !s.ok {
		return ""
	}
	if !plain {
		s.pos = start
		return s.string()
	}
	b := s.data[start+1 : end-1]
	if last := p.Load(); last != nil && *last == string(b) {
		return *last
	}
	v := string(b)
	p.Store(&v)
	return v
}

// finishReason is string without an allocation for the usual reasons.
func (s *scanner) finishReason() string {
	if s.null() {
		return ""
	}
	start, end, plain := s.stringToken()
	if !s.ok {
		return ""
	}
	if plain {
		switch b := s.data[start+1 : end-1]; string(b) {
		case "stop":
			return "stop"
		case "length":
			return "length"
		default:
			return string(b)
		}
	}
	s.pos = start
	return s.string()
}

// int reads an int field: an integer within int64, or null for 0.
func (s *scanner) int() int {
	if s.null() {
		return 0
	}
	neg := false
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		neg = true
		s.pos++
	}
	digits := s.pos
	var v uint64
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		d := uint64(s.data[s.pos] - '0')
		if v > (1<<63)/10 {
			s.ok = false
			return 0
		}
		v = v*10 + d
		s.pos++
	}
	n := s.pos - digits
	switch {
	case n == 0, n > 1 && s.data[digits] == '0':
		s.ok = false
		return 0
	case s.pos < len(s.data) && (s.data[s.pos] == '.' || s.data[s.pos] == 'e' || s.data[s.pos] == 'E'):
		// A fraction or an exponent: json.Unmarshal fails on it.
		s.ok = false
		return 0
	case neg && v > 1<<63, !neg && v > 1<<63-1:
		s.ok = false
		return 0
	}
	x := int64(v)
	if neg {
		x = -x
	}
	if int64(int(x)) != x { // beyond a 32-bit int
		s.ok = false
		return 0
	}
	return int(x)
}

// choices reads the choices array (null: nil; [] an empty slice, as
// json.Unmarshal makes).
func (s *scanner) choices() []chatReplyChoice {
	if s.null() {
		return nil
	}
	if !s.byte('[') {
		return nil
	}
	out := make([]chatReplyChoice, 0, 1)
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return out
	}
	for s.ok {
		s.space()
		var ch chatReplyChoice
		s.choice(&ch)
		out = append(out, ch)
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			s.pos++
			return out
		}
		if !s.byte(',') {
			return nil
		}
	}
	return nil
}

// choice reads one choice object (a null element is left to
// json.Unmarshal).
func (s *scanner) choice(ch *chatReplyChoice) {
	if !s.byte('{') {
		return
	}
	var seen uint8
	for s.ok && s.members(&seen) {
		key, ok := s.key()
		if !ok {
			s.ok = false
			return
		}
		switch string(key) {
		case "message":
			s.once(&seen, 1)
			s.message(&ch.Message)
		case "finish_reason":
			s.once(&seen, 2)
			ch.FinishReason = s.finishReason()
		case "logprobs":
			s.once(&seen, 4)
			ch.LogProbs = s.logprobs()
		default:
			s.unknownKey(key, "message", "finish_reason", "logprobs")
			s.skip()
		}
	}
}

// message reads a choice's message: its content as a string (a list of
// parts is left to json.Unmarshal and go-openai's types).
func (s *scanner) message(m *chatReplyMessage) {
	if s.null() {
		return
	}
	if !s.byte('{') {
		return
	}
	var seen uint8
	for s.ok && s.members(&seen) {
		key, ok := s.key()
		if !ok {
			s.ok = false
			return
		}
		switch string(key) {
		case "content":
			s.once(&seen, 1)
			m.Content = s.string()
		default:
			s.unknownKey(key, "content", "MultiContent")
			s.skip()
		}
	}
}

// logprobs decodes the log-probabilities with json.Unmarshal, on their
// own bytes: distribution mode reads them, once per distinct prompt.
func (s *scanner) logprobs() *openai.LogProbs {
	if s.null() {
		return nil
	}
	start := s.pos
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		s.ok = false
		return nil
	}
	s.skip()
	if !s.ok {
		return nil
	}
	lp := new(openai.LogProbs)
	if json.Unmarshal(s.data[start:s.pos], lp) != nil {
		s.ok = false
		return nil
	}
	return lp
}

// usage reads the token counts.
func (s *scanner) usage(u *chatUsage) {
	if s.null() {
		return
	}
	if !s.byte('{') {
		return
	}
	var seen uint8
	for s.ok && s.members(&seen) {
		key, ok := s.key()
		if !ok {
			s.ok = false
			return
		}
		switch string(key) {
		case "prompt_tokens":
			s.once(&seen, 1)
			u.PromptTokens = s.int()
		case "completion_tokens":
			s.once(&seen, 2)
			u.CompletionTokens = s.int()
		default:
			s.unknownKey(key, "prompt_tokens", "completion_tokens")
			s.skip()
		}
	}
}

// skip reads one JSON value of any kind, checking that it is valid.
func (s *scanner) skip() {
	if !s.ok || s.pos >= len(s.data) {
		s.ok = false
		return
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		s.stringToken()
	case c == '{' || c == '[':
		s.depth++
		if s.depth > maxScanDepth {
			s.ok = false
			return
		}
		s.pos++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == end {
			s.pos++
			s.depth--
			return
		}
		for s.ok {
			s.space()
			if c == '{' {
				if s.pos >= len(s.data) || s.data[s.pos] != '"' {
					s.ok = false
					return
				}
				s.stringToken()
				s.space()
				if !s.byte(':') {
					return
				}
				s.space()
			}
			s.skip()
			s.space()
			if s.pos < len(s.data) && s.data[s.pos] == end {
				s.pos++
				s.depth--
				return
			}
			if !s.byte(',') {
				return
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		s.number()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	default:
		s.ok = false
	}
}

func (s *scanner) literal(lit string) {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return
	}
	s.ok = false
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() {
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		s.ok = false
		return
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.ok = false
			return
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.ok = false
			return
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
}
