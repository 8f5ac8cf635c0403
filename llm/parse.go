package llm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/society-sim/society/questionnaires"
)

// ParseAnswer reads the answer a model wrote for an item on scale sc.
//
// It accepts what models really write: a bare number ("4", " 4", "4.0"), a
// number with words around it ("4 - like me", "I'd say 5.", "**5**",
// "Answer: 3"), a number out of the scale's maximum ("5/6", "5 out of 6"),
// or a label of the scale in any case and with surrounding words ("Very
// much like me"). A number and a label that disagree ("2 - Very much like
// me") are ambiguous and rejected: which one the model meant is a guess.
// Reasoning written inline is removed first (StripReasoning); a
// reply whose reasoning never ended is rejected as truncated, so a number
// inside the reasoning is never read.
//
// It never guesses. It rejects, with a reason, empty text, refusals,
// numbers off the scale, fractional numbers, numbers written against
// another scale ("5/5", "7 out of 10", "80%"), digits glued to letters of
// any script ("3rd", "дент3组"), text that names two different answers
// ("between 3 and 4"), and answers it cannot read without understanding
// more than the words: any negation outside the scale's own labels ("Not
// very much like me", "I would not keep the 15 points", "6. Not really."),
// a qualifier next to a number ("at least 4", "almost 5", "4 or more"), and
// a degree word or a word of another label near a label ("quite like me",
// "Very! Probably donate."). Negation words that are part of a label ("Not
// like me at all", "Can't decide", "Never") are read as the label; a label
// that is a bare negation ("No", "Never") counts only when nothing but its
// own number follows it in its sentence ("never 3" is rejected).
//
// The reason of a rejection starts with its kind: "empty answer",
// "truncated", "refusal", "not a whole number", "written against another
// scale", "a percentage", "qualified number", "no answer on the scale",
// "negated label", "negated number", "modified label", "ambiguous", "off
// the scale". ok implies sc.Valid(value).
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
	toks := tokenize(normalise(unquote(text)))

	// Labels first, longest first, so that a label contained in a longer
	// one ("like me" in "not like me at all") only counts where it stands
	// alone, and so that words inside a label ("not", "can't", "15") are
	// read as the label, not as negations or numbers.
	var labels []mention
	ls := labelsByLength(sc)
	for _, l := range ls {
		for i := 0; i+len(l.words) <= len(toks); i++ {
			if end, ok := matchLabel(toks, i, l); ok {
				for k := i; k < end; k++ {
					toks[k].used = true
				}
				labels = append(labels, mention{value: l.value, first: i, last: end - 1, negative: l.negative()})
			}
		}
	}

	if refusal(freeText(toks)) {
		return 0, "refusal", false
	}

	nums, why := numbers(toks, sc)
	if why != "" {
		return 0, why, false
	}
	if len(nums) == 0 && len(labels) == 0 {
		for _, t := range toks {
			if t.kind == tokGlued && !t.used {
				return 0, fmt.Sprintf("no answer on the scale (digits inside a word: %q)", t.text), false
			}
		}
		return 0, "no answer on the scale", false
	}

	// A negation anywhere outside the labels may turn any answer the text
	// names into its opposite ("not very much like me", "I would not keep
	// the 15 points; I contribute them", "6. Not really."): rather than
	// guess its scope, the answer is rejected.
	for i := range toks {
		if w, ok := negation(toks, i); ok {
			what := "number"
			if len(labels) > 0 {
				what = "label"
			}
			return 0, fmt.Sprintf("negated %s: %q", what, w), false
		}
	}
	// A label that is a bare negation ("Never", "No") is also the word
	// that negates what follows it ("never 3", "I'd never say never",
	// "no, 1"): it is read as the answer only when nothing else follows it
	// in its sentence.
	for _, m := range labels {
		if !m.negative {
			continue
		}
		if w, ok := followedInSentence(toks, m); ok && allNegations(toks[m.first:m.last+1]) {
			return 0, fmt.Sprintf("negated label: %q before %q", joinTokens(toks[m.first:m.last+1]), w), false
		}
	}
	// A degree word in a label's sentence ("quite like me", "like me a
	// lot") moves the answer to a point the text does not name, and a
	// word of another label next to it may be what is left of that label
	// ("Very! Probably donate.").
	others := labelWords(ls)
	for _, m := range labels {
		if w, ok := modifierNear(toks, m, others); ok {
			return 0, fmt.Sprintf("modified label: %q", w), false
		}
	}

	var on, off []int
	for _, m := range nums {
		if sc.Valid(m.value) {
			on = appendUnique(on, m.value)
		} else {
			off = appendUnique(off, m.value)
		}
	}
	switch {
	case len(on) > 1:
		return 0, fmt.Sprintf("ambiguous: %s", joinInts(on)), false
	case len(on) == 1 && len(off) > 0:
		return 0, fmt.Sprintf("ambiguous: %s", joinInts(append(on, off...))), false
	case len(on) == 1:
		for _, m := range labels {
			if m.value != on[0] {
				// "2 - Very much like me", "Not like me, 3": the number and
				// the words name different answers, and which one the model
				// meant is a guess.
				return 0, fmt.Sprintf("ambiguous: %d and the label %q (%d)", on[0], joinTokens(toks[m.first:m.last+1]), m.value), false
			}
		}
		return on[0], "", true
	case len(off) > 0:
		return 0, fmt.Sprintf("off the scale %d-%d: %s", sc.Min, sc.Max, joinInts(off)), false
	}
	var vs []int
	for _, m := range labels {
		vs = appendUnique(vs, m.value)
	}
	if len(vs) == 1 {
		return vs[0], "", true
	}
	sort.Ints(vs)
	return 0, "ambiguous labels: " + joinInts(vs), false
}

// A mention is an answer the text names: a label or a number, at tokens
// first..last.
type mention struct {
	value       int
	first, last int
	negative    bool // a label with a negation word in it
}

type tokKind int

const (
	tokWord  tokKind = iota // letters (any script), maybe with an apostrophe
	tokNum                  // ASCII digits standing alone
	tokGlued                // digits glued to letters, or digits of another script
	tokPunct                // one other visible character, or a line break
)

type token struct {
	kind       tokKind
	text       string
	start, end int // byte span in the normalised text
	used       bool
}

// wordRune reports whether r belongs to a word: a letter or number of any
// script, or a combining mark. Digits next to such runes are part of the
// word, never an answer on their own.
func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// tokenize splits normalised text into words, numbers and punctuation.
// Spaces separate tokens and are dropped, except line breaks, which end a
// sentence and so are kept as punctuation. An apostrophe between letters
// belongs to the word ("can't", "i'd").
func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			toks = append(toks, token{kind: tokPunct, text: "\n", start: i, end: i + n})
			i += n
		case unicode.IsSpace(r):
			i += n
		case wordRune(r):
			j := i
			digits, other, foreign := false, false, false
			for j < len(s) {
				r, m := utf8.DecodeRuneInString(s[j:])
				if r == '\'' && j > i {
					if r2, _ := utf8.DecodeRuneInString(s[j+m:]); unicode.IsLetter(r2) {
						j += m
						continue
					}
				}
				if !wordRune(r) {
					break
				}
				if r >= '0' && r <= '9' {
					digits = true
				} else {
					other = true
					foreign = foreign || unicode.IsNumber(r) // "٤", "４", "²"
				}
				j += m
			}
			t := token{kind: tokWord, text: s[i:j], start: i, end: j}
			switch {
			case digits && !other:
				t.kind = tokNum
			case digits || foreign:
				t.kind = tokGlued
			}
			toks = append(toks, t)
			i = j
		default:
			toks = append(toks, token{kind: tokPunct, text: s[i : i+n], start: i, end: i + n})
			i += n
		}
	}
	return toks
}

// freeText is the text of the tokens outside the labels, one space apart.
func freeText(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if !t.used {
			b.WriteString(t.text)
			b.WriteByte(' ')
		}
	}
	return b.String()
}

type label struct {
	words []string // the label's words and numbers
	gaps  []bool   // gaps[k]: the label has punctuation between words k and k+1
	value int
}

// negative reports whether the label has a negation word in it ("Not
// like me", "Never", "Can't decide").
func (l label) negative() bool {
	for _, w := range l.words {
		if isNegation(w) {
			return true
		}
	}
	return false
}

// allNegations reports whether every word of toks is a negation word.
func allNegations(toks []token) bool {
	for _, t := range toks {
		if t.kind != tokPunct && !isNegation(t.text) {
			return false
		}
	}
	return true
}

// followedInSentence returns the first word or number after mention m, in
// its sentence, unless it is the label's own number or another label.
func followedInSentence(toks []token, m mention) (string, bool) {
	for k := m.last + 1; k < len(toks); k++ {
		t := toks[k]
		switch {
		case sentenceEnd(t):
			return "", false
		case t.kind == tokPunct:
			continue
		case t.kind == tokNum && atoi(t.text) == m.value:
			continue // "No (0)": the label's own number
		case t.used:
			return "", false // another label, which is looked at on its own
		}
		return t.text, true
	}
	return "", false
}

func sentenceEnd(t token) bool {
	return t.kind == tokPunct && strings.Contains(".!?\n", t.text)
}

func joinTokens(toks []token) string {
	parts := make([]string, len(toks))
	for i, t := range toks {
		parts[i] = t.text
	}
	return strings.Join(parts, " ")
}

// labelsByLength returns the scale's labels, normalised and split like
// the text, longest first.
func labelsByLength(sc questionnaires.Scale) []label {
	var ls []label
	for x := sc.Min; x <= sc.Max; x++ {
		var l label
		l.value = x
		punct := false
		for _, t := range tokenize(normalise(sc.Label(x))) {
			if t.kind == tokPunct {
				punct = true
				continue
			}
			if len(l.words) > 0 {
				l.gaps = append(l.gaps, punct)
			}
			punct = false
			l.words = append(l.words, t.text)
		}
		if len(l.words) > 0 {
			ls = append(ls, l)
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return len(ls[i].words) > len(ls[j].words) })
	return ls
}

// softPunct may stand between a label's words in the text where the label
// itself has punctuation ("Neutral; no opinion" written "neutral - no
// opinion"). Sentence ends never may.
const softPunct = ",;:-/()\"'"

// matchLabel reports whether label l is written at token i, on tokens no
// other label took, and returns the index after its last token.
func matchLabel(toks []token, i int, l label) (end int, ok bool) {
	k := i
	for w, word := range l.words {
		if w > 0 {
			for k < len(toks) && toks[k].kind == tokPunct && l.gaps[w-1] &&
				toks[k].text != "\n" && strings.Contains(softPunct, toks[k].text) {
				k++
			}
		}
		if k >= len(toks) || toks[k].used || toks[k].kind == tokPunct || toks[k].text != word {
			return 0, false
		}
		k++
	}
	return k, true
}

// unquote removes markdown blockquote markers ("> ") from the start of
// every line, so that a quoted "> 4" is not read as "more than 4". A ">"
// with no space after it ("4 or >4") stays.
func unquote(s string) string {
	if !strings.Contains(s, ">") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		rest := strings.TrimLeft(l, " \t")
		quoted := false
		for strings.HasPrefix(rest, ">") && (len(rest) == 1 || rest[1] == ' ' || rest[1] == '\t' || rest[1] == '>') {
			rest = strings.TrimLeft(rest[1:], " \t")
			quoted = true
		}
		if quoted {
			lines[i] = rest
		}
	}
	return strings.Join(lines, "\n")
}

// normalise lowercases the text, folds typographic apostrophes and dashes,
// blanks out markdown emphasis so that "**5**" reads as "5", and drops
// invisible format characters (zero-width spaces and joiners, byte order
// marks), which would otherwise split or hide a word.
func normalise(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch r {
		case '\u2018', '\u2019', '`', '\u02bc':
			r = '\''
		case '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2212':
			r = '-'
		case '*', '_', '#':
			r = ' '
		}
		if unicode.Is(unicode.Cf, r) {
			continue
		}
		if r >= '\uff01' && r <= '\uff5e' {
			r -= 0xfee0 // fullwidth forms of ASCII, as CJK text writes them
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// refusals are phrases that mark a model declining to answer. They are
// looked for outside the scale's labels, so that a label such as "Can't
// decide" is never mistaken for one.
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

// numberWords are the spelled numbers a scale's maximum is written with
// ("5 out of ten").
var numberWords = map[string]int{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
	"twenty": 20, "hundred": 100,
}

// numbers lists the whole numbers written in the tokens outside the
// labels, skipping the scale's range when it is quoted ("1 to 6", "1-6")
// and the denominator of "5/6" or "5 out of 6". "4.0" is 4. It returns a
// reason instead when a number cannot be read as an answer on sc: a
// fraction ("4.5"), a number written against another scale's maximum
// ("5/5", "7 out of 10", "on a 1-10 scale"), a percentage, or a qualified
// number ("at least 4", "5+").
func numbers(toks []token, sc questionnaires.Scale) ([]mention, string) {
	var out []mention
	skip := make([]bool, len(toks))
	// sentence[k] numbers the sentence of token k; comparative[n] is the
	// first comparative word outside the labels in sentence n.
	sentence := make([]int, len(toks))
	var comparative []string
	for k, t := range toks {
		if k > 0 {
			sentence[k] = sentence[k-1]
			if sentenceEnd(toks[k-1]) {
				sentence[k]++
			}
		}
		if sentence[k] == len(comparative) {
			comparative = append(comparative, "")
		}
		if !t.used && comparatives[t.text] && comparative[sentence[k]] == "" {
			comparative[sentence[k]] = t.text
		}
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.used || t.kind != tokNum || skip[i] {
			continue
		}
		if adjacent(toks, i) && toks[i-1].text == "." && (!adjacent(toks, i-1) || toks[i-2].kind != tokNum) {
			// ".5" is a fraction.
			return nil, "not a whole number: " + toks[i-1].text + t.text
		}
		n := atoi(t.text)
		last := i
		// "4.0", "4.00": whole; "4.5": not. "1,000": one large number.
		for last+2 < len(toks) && adjacent(toks, last+1) && adjacent(toks, last+2) && toks[last+2].kind == tokNum {
			sep, next := toks[last+1].text, toks[last+2].text
			if sep == "." {
				if strings.Trim(next, "0") != "" {
					return nil, "not a whole number: " + t.text + "." + next
				}
				last += 2
				break
			}
			if sep != "," || len(next) != 3 {
				break
			}
			n = atoi(t.text + next)
			t.text += next
			last += 2
		}
		if adjacent(toks, i) && toks[i-1].text == "-" && (!adjacent(toks, i-1) || toks[i-2].kind == tokPunct) {
			// A minus sign, not a range dash ("1-6") or a hyphen: a
			// negative number, which is off every scale.
			n = -max(n, 1)
		}
		if w, ok := qualifier(toks, i, last); ok {
			return nil, fmt.Sprintf("qualified number: %q", w)
		}
		if w := comparative[sentence[i]]; w != "" {
			return nil, fmt.Sprintf("qualified number: %q", w)
		}
		if w, ok := nearestWord(toks, i, -1); ok && comparatives[w] {
			return nil, fmt.Sprintf("qualified number: %q", w) // "Less than! 8"
		}
		if w, ok := nearestWord(toks, last, 1); ok && comparatives[w] {
			return nil, fmt.Sprintf("qualified number: %q", w)
		}
		next := func(k int) string {
			if last+k < len(toks) && !toks[last+k].used {
				return toks[last+k].text
			}
			return ""
		}
		if next(1) == "%" || next(1) == "percent" || next(1) == "pct" || next(1) == "per" && next(2) == "cent" {
			return nil, "a percentage, not a point of the scale: " + t.text + "%"
		}
		// "5/6", "5 out of 6": the second number is the scale's top. Any
		// other top is another scale: 5 of 5 is not 5 of 6.
		den := -1
		switch {
		case next(1) == "/" || next(1) == "of":
			den = last + 2
		case next(1) == "out" && next(2) == "of":
			den = last + 3
		}
		if den >= 0 && den < len(toks) && !toks[den].used {
			if toks[den].kind == tokGlued {
				return nil, fmt.Sprintf("written against an unreadable scale: %s out of %q", t.text, toks[den].text)
			}
			d, isNum := -1, false
			if toks[den].kind == tokNum {
				d, isNum = atoi(toks[den].text), true
			} else if v, ok := numberWords[toks[den].text]; ok {
				d, isNum = v, true
			}
			if isNum && d != sc.Max {
				return nil, fmt.Sprintf("written against another scale: %s out of %s, not of %d", t.text, toks[den].text, sc.Max)
			}
			if isNum {
				skip[den] = true
				last = den
			}
		}
		// "on a 5-point scale", "out of 10, a 7": another scale's size
		// or top; this scale's own are skipped.
		if next(1) == "point" || next(1) == "-" && next(2) == "point" || next(1) == "points" || next(1) == "-" && next(2) == "points" {
			if n != sc.Points() {
				return nil, fmt.Sprintf("written against another scale: %d points, not %d", n, sc.Points())
			}
			i = last
			continue
		}
		if r := next(1); i >= 2 && toks[i-1].text == "of" && (toks[i-2].text == "out" || toks[i-2].text == "scale") &&
			r != "to" && r != "-" && r != "through" {
			if n != sc.Max {
				return nil, fmt.Sprintf("written against another scale: out of %d, not of %d", n, sc.Max)
			}
			i = last
			continue
		}
		// "1 to 6", "1-6": the scale's range, quoted. "1 to 10": another
		// scale's.
		if r := next(1); (r == "to" || r == "-" || r == "through") && last+2 < len(toks) && toks[last+2].kind == tokNum && !toks[last+2].used {
			b := atoi(toks[last+2].text)
			if n == sc.Min && b == sc.Max {
				skip[last+2] = true
				i = last + 2
				continue
			}
			if (n == 0 || n == 1) && b >= 3 {
				return nil, fmt.Sprintf("written against another scale: %d-%d, not %d-%d", n, b, sc.Min, sc.Max)
			}
		}
		out = append(out, mention{value: n, first: i, last: last})
		i = last
	}
	return out, ""
}

// nearestWord returns the nearest word outside the labels from token k in
// direction step (-1 or 1), across any punctuation.
func nearestWord(toks []token, k, step int) (string, bool) {
	for k += step; k >= 0 && k < len(toks); k += step {
		switch t := toks[k]; {
		case t.used || t.kind == tokNum:
			return "", false
		case t.kind == tokWord:
			return t.text, true
		}
	}
	return "", false
}

// adjacent reports whether token k touches the token before it, with no
// space between them.
func adjacent(toks []token, k int) bool {
	return k > 0 && k < len(toks) && toks[k-1].end == toks[k].start
}

// atoi reads ASCII digits, or -1 for a number too large for any scale.
func atoi(s string) int {
	if len(s) > 9 {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// Qualifiers move a number to a point the text does not name ("at least
// 4", "almost 5", "5 or more", "5+").
var (
	qualifiersBefore = map[string]bool{
		"almost": true, "nearly": true, "over": true, "under": true, "above": true,
		"below": true, "beyond": true, "~": true, "≈": true, "<": true, ">": true,
		"≤": true, "≥": true, "±": true, "+": true,
		"more than": true, "less than": true, "greater than": true, "fewer than": true,
		"higher than": true, "lower than": true, "bigger than": true, "smaller than": true,
		"at least": true, "at most": true, "close to": true, "up to": true,
	}
	qualifiersAfter = map[string]bool{
		"+": true, "ish": true, "plus": true, "or more": true, "or less": true, "or so": true,
		"or higher": true, "or lower": true, "or above": true, "or below": true,
		"or over": true, "or under": true, "and up": true, "and above": true,
		"at least": true, "at most": true, "or fewer": true,
	}
)

// qualifier reports a qualifier before token first or after token last,
// with nothing but punctuation between ("at least, 4", "4 - or more",
// "Close to! 4").
func qualifier(toks []token, first, last int) (string, bool) {
	// words returns up to two words from k on, in direction step, and
	// whether a qualifying symbol comes first.
	words := func(k, step int, symbols map[string]bool) (ws []string, sym string) {
		for ; k >= 0 && k < len(toks) && len(ws) < 2; k += step {
			t := toks[k]
			if t.kind == tokPunct {
				if len(ws) == 0 && symbols[t.text] {
					return nil, t.text
				}
				continue
			}
			if t.used || t.kind == tokNum {
				break
			}
			ws = append(ws, t.text)
		}
		return ws, ""
	}
	before, sym := words(first-1, -1, qualifiersBefore)
	if sym != "" {
		return sym, true
	}
	if len(before) > 0 && qualifiersBefore[before[0]] {
		return before[0], true
	}
	if len(before) > 1 && qualifiersBefore[before[1]+" "+before[0]] {
		return before[1] + " " + before[0], true
	}
	after, sym := words(last+1, 1, qualifiersAfter)
	if sym != "" {
		return sym, true
	}
	if len(after) > 0 && qualifiersAfter[after[0]] {
		return after[0], true
	}
	if len(after) > 1 && qualifiersAfter[after[0]+" "+after[1]] {
		return after[0] + " " + after[1], true
	}
	return "", false
}

// comparatives, anywhere in a number's sentence outside the labels, may
// make it a bound rather than the answer ("4, or maybe less", "0 less
// than").
var comparatives = map[string]bool{
	"less": true, "more": true, "fewer": true, "greater": true, "higher": true, "lower": true,
	"bigger": true, "smaller": true, "above": true, "below": true, "over": true, "under": true,
	"least": true, "most": true, "almost": true, "nearly": true, "than": true, "exceed": true,
	"exceeds": true, "beyond": true, "upwards": true, "downwards": true,
}

// negations are words that deny what follows or what went before, in
// English and, for the most common ones, in other languages models answer
// in. Words ending in "n't" count too, as do their spellings without the
// apostrophe.
var negations = map[string]bool{
	"not": true, "no": true, "never": true, "none": true, "nothing": true, "nobody": true,
	"neither": true, "nor": true, "nowhere": true, "nope": true, "nah": true, "non": true, "un": true,
	"cannot": true, "hardly": true, "barely": true, "scarcely": true, "seldom": true,
	"rarely": true, "without": true, "instead": true, "rather": true, "except": true,
	"unless": true, "against": true, "unlike": true, "opposite": true, "contrary": true, "reverse": true, "inverse": true,
	"doubt": true, "doubtful": true, "unlikely": true, "untrue": true, "disagree": true,
	"deny": true, "denies": true, "lack": true, "lacks": true, "fail": true, "fails": true,
	"refuse": true, "refuses": true, "decline": true, "declines": true, "avoid": true,
	"reject": true, "rejects": true, "false": true, "wrong": true, "incorrect": true,
	"dont": true, "doesnt": true, "didnt": true, "isnt": true, "arent": true, "wasnt": true,
	"werent": true, "wont": true, "wouldnt": true, "cant": true, "couldnt": true,
	"shouldnt": true, "havent": true, "hasnt": true, "hadnt": true, "aint": true,
	"mustnt": true, "neednt": true, "mightnt": true,
	"nicht": true, "kein": true, "keine": true, "nein": true, "pas": true, "jamais": true,
	"nunca": true, "nada": true, "не": true, "нет": true, "ни": true, "никогда": true,
}

// isNegation reports whether word w denies: a word of negations, one
// ending in "n't", or a word of a Chinese or Japanese script holding a
// negating character.
func isNegation(w string) bool {
	return negations[w] || strings.HasSuffix(w, "n't") || strings.ContainsAny(w, "不没沒无無非別别否未")
}

// negation reports whether token i, outside the labels, is a negation,
// and the words that make it one.
func negation(toks []token, i int) (string, bool) {
	t := toks[i]
	if t.used || t.kind != tokWord {
		return "", false
	}
	w := t.text
	if isNegation(w) {
		return w, true
	}
	if i+1 < len(toks) && !toks[i+1].used {
		pair := w + " " + toks[i+1].text
		switch pair {
		case "anything but", "far from", "other than", "as opposed", "in place", "no longer":
			return pair, true
		}
	}
	return "", false
}

// degrees are words that move a label up or down the scale ("quite like
// me", "like me a lot", "almost always") or that say how often, which on a
// scale of frequencies is another point.
var degrees = map[string]bool{
	"very": true, "really": true, "quite": true, "extremely": true, "pretty": true,
	"fairly": true, "slightly": true, "somewhat": true, "mostly": true, "mainly": true,
	"largely": true, "partly": true, "partially": true, "bit": true, "lot": true,
	"much": true, "more": true, "most": true, "less": true, "least": true,
	"totally": true, "completely": true, "entirely": true, "absolutely": true,
	"highly": true, "so": true, "too": true, "kind": true, "sort": true, "kinda": true,
	"sorta": true, "almost": true, "nearly": true, "just": true, "exactly": true,
	"truly": true, "incredibly": true, "super": true, "moderately": true,
	"reasonably": true, "mildly": true, "strongly": true, "enough": true, "extra": true,
	"particularly": true, "especially": true, "little": true, "always": true,
	"usually": true, "often": true, "sometimes": true, "occasionally": true,
	"frequently": true, "generally": true, "between": true, "half": true, "ish": true,
	"tad": true, "extent": true, "degree": true, "only": true, "merely": true, "lots": true,
	"greatly": true, "deeply": true, "hugely": true, "immensely": true, "heavily": true,
}

// labelFunctionWords are words of labels too common in prose to mark a
// label's part ("A little like me", "Keep the 15 points").
var labelFunctionWords = map[string]bool{
	"a": true, "an": true, "the": true, "or": true, "and": true, "of": true, "to": true,
	"in": true, "on": true, "at": true, "me": true, "i": true,
}

// modifierNear reports a word that may change what label mention m means:
// a degree or comparative word, or a word of another label of the scale ("definitely" on
// the charity scale, where only "Definitely keep" and "Definitely donate"
// have it), anywhere in the label's sentence or as the nearest word on
// either side across punctuation ("Very! Probably donate."). others holds
// the words of the scale's labels by value.
func modifierNear(toks []token, m mention, others map[int]map[string]bool) (string, bool) {
	suspect := func(w string) bool {
		if degrees[w] || comparatives[w] {
			return true
		}
		if labelFunctionWords[w] || others[m.value][w] {
			return false
		}
		for v, ws := range others {
			if v != m.value && ws[w] {
				return true
			}
		}
		return false
	}
	for _, step := range []int{-1, 1} {
		k := m.first - 1
		if step > 0 {
			k = m.last + 1
		}
		inSentence := true
		for ; k >= 0 && k < len(toks); k += step {
			t := toks[k]
			if t.kind == tokPunct {
				if sentenceEnd(t) {
					inSentence = false
				}
				continue
			}
			if t.used {
				break
			}
			if t.kind == tokWord && suspect(t.text) {
				return t.text, true
			}
			if !inSentence && !labelFunctionWords[t.text] {
				break // only the nearest word beyond the sentence
			}
		}
	}
	return "", false
}

// labelWords returns the words of each label of sc, by value.
func labelWords(ls []label) map[int]map[string]bool {
	out := make(map[int]map[string]bool, len(ls))
	for _, l := range ls {
		ws := map[string]bool{}
		for _, w := range l.words {
			ws[w] = true
		}
		out[l.value] = ws
	}
	return out
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
		if j := strings.Index(text, "<|"); j >= 0 {
			text = text[:j] // <|return|>, <|end|>: the message ends
		}
	} else if i := strings.Index(text, "<|channel|>"); i >= 0 {
		return text[:i], true
	}
	var b strings.Builder
	for pos := 0; ; {
		start, end, name, closing := findTag(text[pos:], "")
		if start < 0 {
			if b.Len() == 0 {
				return text[pos:], false // no copy of a reply without tags
			}
			b.WriteString(text[pos:])
			return b.String(), false
		}
		start, end = pos+start, pos+end
		if closing {
			// A closing tag with no opening tag: all before it is
			// reasoning.
			b.Reset()
			pos = end
			continue
		}
		b.WriteString(text[pos:start])
		_, closeEnd, _, _ := findTag(text[end:], name)
		if closeEnd < 0 {
			return b.String(), true
		}
		pos = end + closeEnd
	}
}

// findTag finds the first reasoning tag in s: any opening or closing tag
// of reasoningTags when name is "", or else the closing tag of name. It
// returns the tag's byte span, its name and whether it closes, or -1, -1
// when there is none. Tag names match in ASCII case folding only, so that
// byte offsets stay those of s.
func findTag(s string, name string) (start, end int, found string, closing bool) {
	names := reasoningTags
	if name != "" {
		names = []string{name}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '<' {
			continue
		}
		j := i + 1
		closing := j < len(s) && s[j] == '/'
		if closing {
			j++
		} else if name != "" {
			continue
		}
		for _, n := range names {
			k := j + len(n)
			if k > len(s) || !asciiEqualFold(s[j:k], n) {
				continue
			}
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] == '>' {
				return i, k + 1, n, closing
			}
		}
	}
	return -1, -1, "", false
}

// asciiEqualFold reports whether a and b are equal under ASCII case
// folding; b is lower case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != b[i] {
			return false
		}
	}
	return true
}
