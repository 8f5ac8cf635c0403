package llm

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/society-sim/society/questionnaires"
)

// fuzzScales are the scales the fuzzer answers on: every built-in one, in
// a fixed order, and two without labels.
func fuzzScales(t testing.TB) []questionnaires.Scale {
	t.Helper()
	m := builtinScales(t)
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []questionnaires.Scale
	for _, n := range names {
		out = append(out, m[n])
	}
	return append(out, questionnaires.Scale{Min: 0, Max: 10}, questionnaires.Scale{Min: 1, Max: 100})
}

// inert keeps the parts of s that cannot name an answer: no letters,
// numbers or marks of any script. Invalid UTF-8 stays as it is.
func inert(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !wordRune(r) && !wordRune(unicode.ToLower(r)) {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// letters keeps the letters of s, of any script.
func letters(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// noSentenceEnd drops what ends a sentence, so that s keeps a qualifier
// and its number in one sentence.
func noSentenceEnd(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(".!?\n\r\u2028\u2029", r) {
			return -1
		}
		return r
	}, s)
}

func pick[T any](xs []T, sel uint8) T { return xs[int(sel)%len(xs)] }

// fuzzPrefixes and fuzzSuffixes are words models put around an answer
// that change nothing.
var (
	fuzzPrefixes = []string{"", "I'd say ", "Answer: ", "My answer is ", "**", "Sure! ", "Final answer: ",
		"I think ", "Here it is:\n", "> ", "Rating: ", "- ", "\"", "The answer: ", "Ответ: "}
	fuzzSuffixes   = []string{"", ".", "**", "\n", " ", "!", "\"", " :)", "\n\nThat is my answer.", " 🙂"}
	qualifierWords = []string{"at least", "almost", "nearly", "at most", "more than", "less than",
		"over", "under", "above", "below", "~", "≥", "close to", "up to"}
	otherScaleJoins = []string{"/", " / ", " out of ", " of ", "/", "  out  of  "}
)

// FuzzParseAnswer checks the parser's one promise: never a wrong valid
// answer. Each input is built from a known intended answer (or a known
// non-answer) and the fuzzer's choices of scale, form, decoration and
// filler, and the parser must return that answer or reject the text:
//
//   - intended: a point of the scale written as a number, "x.0", "x/max",
//     "x out of max", its label, or both, between harmless words and
//     filler without letters or numbers: that point or invalid, and that
//     point when there is no filler;
//   - negated: a negation before or after a label or number: never that
//     point;
//   - other scale: "a/b", "a out of b" with b not the scale's top, "a%",
//     "a.5": invalid;
//   - glued: the only digit glued to letters of any script: invalid;
//   - qualified: "at least x", "x or more": never x;
//   - any text at all: ok implies the value is on the scale, a rejection
//     has a reason, complete reasoning blocks before it change nothing and
//     an unfinished one after it makes it invalid.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		"4", " 4", "4 - like me", "Like me", "like me.", "I'd say 5.", "**5**", "Answer: 3",
		"5/6", "Very much like me", "Not like me at all", "I'm an AI and cannot", "", "7",
		"between 3 and 4", "-1", "4.5", "1,000", "\u2013 2", "\xff\xfe", "5 out of 6", "0",
		"Not very much like me.", "5/5", "4.0", "дент3组", "<think>2</think>4", "<think>3",
		"I would not keep the 15 points; I contribute them.", "80%", "never 3", "第３",
	} {
		for k := range uint8(6) {
			f.Add(s, k, uint8(3), uint8(k*7), uint8(k), ", ", "é")
		}
	}
	scales := fuzzScales(f)
	f.Fuzz(func(t *testing.T, raw string, scaleSel, answerSel, formSel, decoSel uint8, filler, glue string) {
		sc := pick(scales, scaleSel)
		x := sc.Min + int(answerSel)%sc.Points()
		label := sc.Label(x)
		pre, post := pick(fuzzPrefixes, decoSel), pick(fuzzSuffixes, decoSel/16)
		fill := inert(filler)
		check := func(what, text, wantDesc string, want func(v int, ok bool) bool) {
			t.Helper()
			v, reason, ok := ParseAnswer(text, sc)
			if ok && !sc.Valid(v) {
				t.Fatalf("%s: ParseAnswer(%q) on %d-%d: got %d, valid, want a point of the scale", what, text, sc.Min, sc.Max, v)
			}
			if !ok && reason == "" {
				t.Fatalf("%s: ParseAnswer(%q): got a rejection without a reason, want one", what, text)
			}
			if !want(v, ok) {
				t.Fatalf("%s: ParseAnswer(%q) on %d-%d %q: got %d, %v (%s), want %s",
					what, text, sc.Min, sc.Max, sc.Labels, v, ok, reason, wantDesc)
			}
		}
		notX := func(v int, ok bool) bool { return !ok || v != x }
		notXDesc := fmt.Sprintf("invalid or not %d", x)
		invalid := func(_ int, ok bool) bool { return !ok }

		// Any text.
		check("any text", raw, "any", func(int, bool) bool { return true })
		v0, _, ok0 := ParseAnswer(raw, sc)
		thought := "<think>" + strings.ReplaceAll(fill+glue, "<", "") + "</think>"
		check("complete reasoning before", thought+raw, "as without it", func(v int, ok bool) bool {
			return ok == ok0 && v == v0 || strings.TrimSpace(raw) == "" && !ok
		})
		check("unfinished reasoning after", raw+"<think>"+strings.ReplaceAll(glue, "<", ""), "invalid", invalid)

		// The intended answer, written in one of the forms.
		num := fmt.Sprint(x)
		forms := []string{num, num + ".0", num + ".00", fmt.Sprintf("%d/%d", x, sc.Max), fmt.Sprintf("%d out of %d", x, sc.Max)}
		if label != "" {
			forms = append(forms, label, strings.ToLower(label), strings.ToUpper(label), num+" - "+label,
				num+" ("+label+")", label+" ("+num+")", "<think>\n"+fmt.Sprint(sc.Max+sc.Min-x)+"?\n</think>\n"+label)
		}
		form := pick(forms, formSel)
		is := func(v int, ok bool) bool { return !ok || v == x }
		check("intended", pre+form+post, fmt.Sprintf("valid %d", x), func(v int, ok bool) bool { return ok && v == x })
		check("intended with filler", fill+pre+fill+form+fill+post+fill, fmt.Sprintf("%d or invalid", x), is)
		check("intended with filler inside", pre+strings.Replace(form, " ", " "+fill+" ", 1)+post, fmt.Sprintf("%d or invalid", x), is)

		// Negated.
		neg := pick(negators, formSel/8)
		target := pick([]string{label, num}, decoSel)
		if target == "" {
			target = num
		}
		if !strings.EqualFold(strings.Trim(neg, " ,:"), target) {
			check("negated before", pre+neg+" "+fill+target+post, notXDesc, notX)
			check("negated after", pre+target+fill+" "+neg+post, notXDesc, notX)
		}

		// Another scale, a percentage, a fraction.
		b := 1 + int(formSel)%100
		if b != sc.Max {
			a := int(answerSel) % (b + 1)
			check("other scale", pre+fill+fmt.Sprintf("%d%s%d", a, pick(otherScaleJoins, decoSel), b)+fill+post, "invalid", invalid)
		}
		check("percentage", pre+num+pick([]string{"%", " %", " percent"}, decoSel)+fill+post, "invalid", invalid)
		check("fraction", pre+fill+num+"."+fmt.Sprint(1+int(formSel)%9)+post, "invalid", invalid)

		// Glued.
		if g := letters(glue); g != "" {
			split := int(decoSel) % (utf8.RuneCountInString(g) + 1)
			left, right := string([]rune(g)[:split]), string([]rune(g)[split:])
			d := fmt.Sprint(int(answerSel) % 10)
			check("glued", fill+pre+left+d+right+fill, "invalid", invalid)
		}

		// Qualified.
		q := pick(qualifierWords, decoSel)
		check("qualified", pre+q+" "+noSentenceEnd(fill)+num+post, notXDesc, notX)
		check("qualified after", pre+num+pick([]string{" or more", " or less", "+", "-ish", " at least"}, formSel)+post, notXDesc, notX)
	})
}
