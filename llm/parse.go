package llm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/society-sim/society/questionnaires"
)

// ParseAnswer reads the answer a model wrote for an item on scale sc.
//
// It accepts what models really write: a bare number ("4", " 4"), a number
// with words around it ("4 - like me", "I'd say 5.", "**5**", "Answer: 3"),
// a number out of the scale's maximum ("5/6", "5 out of 6"), or a label of
// the scale in any case and with surrounding words ("Very much like me").
// When a number and a label disagree the number wins: models copy the
// number from the instruction more reliably than the wording.
//
// It never guesses. It rejects, with a reason, empty text, refusals, numbers
// off the scale, fractional numbers and text that names two different
// answers ("between 3 and 4"). ok implies sc.Valid(value).
func ParseAnswer(text string, sc questionnaires.Scale) (value int, reason string, ok bool) {
	if strings.TrimSpace(text) == "" {
		return 0, "empty answer", false
	}
	if sc.Max < sc.Min {
		return 0, "empty scale", false
	}
	text, truncated := StripReasoning(text)
	if truncated {
		return 0, "truncated: reasoning never ended", false
	}
	if strings.TrimSpace(text) == "" {
		return 0, "empty answer after reasoning", false
	}
	s := normalise(text)

	// Labels first, longest first, so that a label contained in a longer
	// one ("like me" in "not like me at all") only counts where it stands
	// alone, and so that digits inside a label ("Keep the 15 points") are
	// not read as numbers. Matched spans are blanked out.
	b := []byte(s)
	labelVals := map[int]bool{}
	for _, l := range labelsByLength(sc) {
		for i := 0; i+len(l.text) <= len(b); {
			j := strings.Index(string(b[i:]), l.text)
			if j < 0 {
				break
			}
			at := i + j
			end := at + len(l.text)
			if boundary(b, at-1) && boundary(b, end) {
				labelVals[l.value] = true
				for k := at; k < end; k++ {
					b[k] = ' '
				}
			}
			i = at + 1
		}
	}
	rest := string(b)

	if refusal(rest) {
		return 0, "refusal", false
	}

	nums, frac := numbers(rest, sc)
	if frac != "" {
		return 0, "not a whole number: " + frac, false
	}
	var on, off []int
	for _, n := range nums {
		if sc.Valid(n) {
			on = appendUnique(on, n)
		} else {
			off = appendUnique(off, n)
		}
	}
	switch {
	case len(on) > 1:
		return 0, fmt.Sprintf("ambiguous: %s", joinInts(on)), false
	case len(on) == 1 && len(off) > 0:
		return 0, fmt.Sprintf("ambiguous: %s", joinInts(append(on, off...))), false
	case len(on) == 1:
		return on[0], "", true
	case len(off) > 0:
		return 0, fmt.Sprintf("off the scale %d-%d: %s", sc.Min, sc.Max, joinInts(off)), false
	}
	switch len(labelVals) {
	case 0:
		return 0, "no answer on the scale", false
	case 1:
		for v := range labelVals {
			return v, "", true
		}
	}
	vs := make([]int, 0, len(labelVals))
	for v := range labelVals {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	return 0, "ambiguous labels: " + joinInts(vs), false
}

type label struct {
	text  string
	value int
}

// labelsByLength returns the scale's labels, normalised like the text,
// longest first.
func labelsByLength(sc questionnaires.Scale) []label {
	ls := make([]label, 0, len(sc.Labels))
	for x := sc.Min; x <= sc.Max; x++ {
		t := strings.TrimSpace(normalise(sc.Label(x)))
		if t != "" {
			ls = append(ls, label{t, x})
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return len(ls[i].text) > len(ls[j].text) })
	return ls
}

// normalise lowercases the text, folds typographic apostrophes and dashes,
// and blanks out markdown emphasis so that "**5**" reads as "5". Every
// character maps to at least one byte so that spans stay meaningful.
func normalise(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch r {
		case '\u2018', '\u2019', '`':
			r = '\''
		case '\u2013', '\u2014', '\u2212':
			r = '-'
		case '*', '_', '#':
			r = ' '
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// boundary reports whether position i of b is outside a word: the text's
// edge or a byte that is not an ASCII letter or digit.
func boundary(b []byte, i int) bool {
	if i < 0 || i >= len(b) {
		return true
	}
	c := b[i]
	return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9')
}

// refusals are phrases that mark a model declining to answer. They are
// looked for after the scale's labels have been removed, so that a label
// such as "Can't decide" is never mistaken for one.
var refusals = []string{
	"as an ai", "i'm an ai", "i am an ai", "language model", "ai assistant",
	"i cannot", "i can't", "i can not", "i'm unable", "i am unable", "unable to",
	"i'm not able", "i am not able", "i don't have personal", "i do not have personal",
	"i don't have feelings", "i do not have feelings", "i won't", "i will not",
	"i must decline", "i'm sorry", "i am sorry", "i apologi",
}

func refusal(s string) bool {
	for _, r := range refusals {
		if strings.Contains(s, r) {
			return true
		}
	}
	return false
}

// numbers lists the whole numbers written in s, skipping the scale's range
// when it is quoted ("1 to 6", "1-6") and the denominator of "5/6" or
// "5 out of 6". A number with a fractional part is reported in frac
// instead. Digits glued to letters ("pvq40", "2nd") are not answers.
func numbers(s string, sc questionnaires.Scale) (nums []int, frac string) {
	type tok struct {
		start, end int
		n          int
	}
	var toks []tok
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j+1 < len(s) && (s[j] == '.' || s[j] == ',') && isDigit(s[j+1]) {
			k := j + 1
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			if s[j] == '.' {
				return nil, s[i:k]
			}
			// "1,000": a thousands separator; treat the whole as one
			// large number, which is off every scale.
			j = k
		}
		if letter(s, i-1) || letter(s, j) {
			i = j
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(s[i:j], ",", ""))
		if err != nil || j-i > 9 {
			n = -1 // too large for any scale
		}
		if i > 0 && s[i-1] == '-' && !isDigit(byteAt(s, i-2)) && !letter(s, i-2) {
			// A minus sign, not a range dash ("1-6") or a hyphen: a
			// negative number, which is off every scale.
			n = -max(n, 1)
		}
		toks = append(toks, tok{i, j, n})
		i = j
	}
	skip := make([]bool, len(toks))
	for k := 0; k+1 < len(toks); k++ {
		a, b := toks[k], toks[k+1]
		between := strings.TrimSpace(s[a.end:b.start])
		switch between {
		case "/", "out of", "of":
			// "5/6", "5 out of 6": the second number is the scale's top.
			// Any other denominator is another scale and stays in, so
			// that the answer is rejected rather than read on the wrong
			// scale.
			if b.n == sc.Max {
				skip[k+1] = true
			}
		case "to", "-", "through":
			if a.n == sc.Min && b.n == sc.Max {
				skip[k], skip[k+1] = true, true
			}
		}
	}
	for k, t := range toks {
		if !skip[k] {
			nums = append(nums, t.n)
		}
	}
	return nums, ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func byteAt(s string, i int) byte {
	if i < 0 || i >= len(s) {
		return ' '
	}
	return s[i]
}

func letter(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c >= 'a' && c <= 'z'
}

func appendUnique(xs []int, x int) []int {
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ", ")
}

// reasoningTags name the blocks in which reasoning models write their
// thinking inline, before the answer: DeepSeek-R1 and Qwen3 use <think>,
// others <thinking> or <reasoning>.
var reasoningTags = []string{"think", "thinking", "reasoning"}

// StripReasoning removes the reasoning a model wrote inline and returns
// the text that is left, which holds the answer.
//
// It removes every complete block <think>…</think>, <thinking>…</thinking>
// and <reasoning>…</reasoning> (tag names in any case, several blocks),
// and everything before a closing tag whose opening tag is missing (chat
// templates that open the block in the prompt, as DeepSeek-R1's does). In
// the harmony format of gpt-oss it keeps only the final channel.
//
// truncated reports reasoning that never ended: an opening tag without
// its closing tag, or a harmony reply without a final channel. The reply
// was then cut off before its answer (usually by max_tokens), answer holds
// only the text before the unfinished block, and the caller must record
// the reply as invalid ("truncated"), never read an answer from it.
func StripReasoning(text string) (answer string, truncated bool) {
	if i := strings.LastIndex(text, "<|channel|>final<|message|>"); i >= 0 {
		text = text[i+len("<|channel|>final<|message|>"):]
		for _, end := range []string{"<|return|>", "<|end|>"} {
			if j := strings.Index(text, end); j >= 0 {
				text = text[:j]
			}
		}
	} else if i := strings.Index(text, "<|channel|>"); i >= 0 {
		return text[:i], true
	}
	var b strings.Builder
	for {
		open, openEnd, name := findTag(text, false, "")
		closeAt, closeEnd, _ := findTag(text, true, "")
		if closeAt >= 0 && (open < 0 || closeAt < open) {
			// A closing tag with no opening tag: all before it is
			// reasoning.
			b.Reset()
			text = text[closeEnd:]
			continue
		}
		if open < 0 {
			b.WriteString(text)
			return b.String(), false
		}
		b.WriteString(text[:open])
		_, end, _ := findTag(text[openEnd:], true, name)
		if end < 0 {
			return b.String(), true
		}
		text = text[openEnd+end:]
	}
}

// findTag finds the first reasoning tag in s, opening or closing, with the
// given name or any of reasoningTags when name is "". It returns the tag's
// byte span and name, or -1, -1 when there is none. Tag names match in
// ASCII case folding only, so that byte offsets stay those of s.
func findTag(s string, closing bool, name string) (start, end int, found string) {
	names := reasoningTags
	if name != "" {
		names = []string{name}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		j := i + 1
		if closing {
			if j >= len(s) || s[j] != '/' {
				continue
			}
			j++
		}
		for _, n := range names {
			k := j + len(n)
			if k > len(s) || !strings.EqualFold(s[j:k], n) {
				continue
			}
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] == '>' {
				return i, k + 1, n
			}
		}
	}
	return -1, -1, ""
}
