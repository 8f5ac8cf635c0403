package llm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/society-sim/society/questionnaires"
)

// builtinScales returns the scale of every built-in instrument and of the
// persona statements, by instrument name.
func builtinScales(t testing.TB) map[string]questionnaires.Scale {
	t.Helper()
	m := map[string]questionnaires.Scale{
		// As LoadPersona builds it.
		"persona": {Min: 0, Max: 1, Labels: []string{"No", "Yes"}},
	}
	for _, name := range questionnaires.Names() {
		in, err := questionnaires.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		m[name] = in.Scale
	}
	for _, want := range []string{"pvq40", "bfi2", "prosocial", "donation", "charity", "charity_decision", "ebq"} {
		if _, ok := m[want]; !ok {
			t.Fatalf("built-in instrument %q: got none, want its scale", want)
		}
	}
	return m
}

// TestParseAnswerEveryLabel reads every label and every number of every
// built-in scale, alone and in the sentences models write.
func TestParseAnswerEveryLabel(t *testing.T) {
	for name, sc := range builtinScales(t) {
		for x := sc.Min; x <= sc.Max; x++ {
			l := sc.Label(x)
			for _, text := range []string{
				l, l + ".", strings.ToUpper(l), strings.ToLower(l) + "\n", "**" + l + "**",
				"I'd say: " + l, "Answer: " + l + ".", fmt.Sprint(x), fmt.Sprintf("%d - %s", x, l),
				fmt.Sprintf("%d (%s)", x, l), fmt.Sprintf("%d.0", x), fmt.Sprintf("%d/%d", x, sc.Max),
				fmt.Sprintf("<think>Maybe %d.</think>\n%s", sc.Max-x+sc.Min, l),
			} {
				t.Run(name+"/"+text, func(t *testing.T) {
					got, reason, ok := ParseAnswer(text, sc)
					if !ok || got != x {
						t.Errorf("ParseAnswer(%q): got %d, %v (%s), want %d", text, got, ok, reason, x)
					}
				})
			}
		}
	}
}

// negators are written before a label; none of them may leave the label's
// value standing.
var negators = []string{
	"not", "Not", "NOT", "not really", "not at all", "It is not", "it's not", "I wouldn't say",
	"I would not say", "I don't think it's", "I do not feel", "hardly", "barely", "scarcely",
	"never", "no,", "not quite", "definitely not", "isn't", "I'd never say", "Nothing like",
	"far from", "anything but", "rather than", "instead of", "neither", "less than", "Not:",
	"I cant say", "I dont think", "not\u00a0", "not\u200b", "Not**", "not -", "no longer",
	"I would not keep the 15 points; I", "nicht", "не",
}

// TestParseAnswerNegatedLabels: a negation before a label, or after it,
// never yields the label's value, on every built-in scale.
func TestParseAnswerNegatedLabels(t *testing.T) {
	for name, sc := range builtinScales(t) {
		for x := sc.Min; x <= sc.Max; x++ {
			l := sc.Label(x)
			var texts []string
			for _, n := range negators {
				if strings.EqualFold(strings.Trim(n, " ,"), l) {
					continue // "never never", "no, no": the label said twice
				}
				texts = append(texts, n+" "+l, n+" "+strings.ToLower(l)+".", n+" "+fmt.Sprint(x))
			}
			texts = append(texts, l+", not really.", l+" - not!", fmt.Sprintf("%d. Not really.", x),
				l+", I don't think so.", "Is it "+strings.ToLower(l)+"? Not at all.")
			if l != "No" {
				texts = append(texts, l+"? No.")
			}
			for _, text := range texts {
				t.Run(name+"/"+text, func(t *testing.T) {
					got, reason, ok := ParseAnswer(text, sc)
					if ok && got == x {
						t.Errorf("ParseAnswer(%q): got %d, valid, want invalid or not %d", text, got, x)
					}
					if !ok && reason == "" {
						t.Errorf("ParseAnswer(%q): got no reason, want one", text)
					}
				})
			}
		}
	}
}

func TestParseAnswerKinds(t *testing.T) {
	scales := builtinScales(t)
	pvq, ebq, bfi, pro := scales["pvq40"], scales["ebq"], scales["bfi2"], scales["prosocial"]
	charity, decision, persona := scales["charity"], scales["charity_decision"], scales["persona"]
	tests := []struct {
		name   string
		text   string
		sc     questionnaires.Scale
		want   int
		ok     bool
		reason string // a substring of the reason when !ok
	}{
		// Labels that hold negation words are labels.
		{"label not like me at all", "Not like me at all.", pvq, 1, true, ""},
		{"label not like me", "not like me", pvq, 2, true, ""},
		{"label in sentence", "This person is not like me.", pvq, 2, true, ""},
		{"label never", "Never", ebq, 0, true, ""},
		{"label never or almost never", "Never or almost never true.", pro, 1, true, ""},
		{"label disagree strongly", "Disagree strongly", bfi, 1, true, ""},
		{"label with semicolon", "Neutral; no opinion", bfi, 3, true, ""},
		{"label with dash for semicolon", "Neutral - no opinion", bfi, 3, true, ""},
		{"label can't decide", "I can't decide.", charity, 4, true, ""},
		{"label no", "No.", persona, 0, true, ""},
		{"label yes", "Yes", persona, 1, true, ""},
		{"label keep", "Keep the 15 points", decision, 1, true, ""},
		{"label contribute", "Contribute the 15 points.", decision, 2, true, ""},
		{"label definitely donate", "Definitely donate", charity, 7, true, ""},

		// Negated labels are never read as the label.
		{"not very much", "Not very much like me.", pvq, 0, false, "negated"},
		{"not at all like me", "not at all like me", pvq, 0, false, "negated"},
		{"wouldn't say", "I wouldn't say very much like me", pvq, 0, false, "negated"},
		{"hardly", "hardly like me", pvq, 0, false, "negated"},
		{"not really", "not really like me", pvq, 0, false, "negated"},
		{"not somewhat", "It is not somewhat like me", pvq, 0, false, "negated"},
		{"negation after", "Very much like me? Not really.", pvq, 0, false, "negated"},
		{"never on pvq", "Never like me", pvq, 0, false, "negated"},
		{"not never", "Not never", ebq, 0, false, "negated"},
		{"almost never on ebq", "Almost never", ebq, 0, false, "modified"},
		{"almost always on ebq", "almost always", ebq, 0, false, "modified"},
		{"not always true", "Not always true", pro, 0, false, ""},
		{"not likely", "Not very likely", scales["donation"], 0, false, "negated"},
		{"no not yes", "Not yes.", persona, 0, false, "negated"},
		{"no explained", "No, I would not say that.", persona, 0, false, "negated"},

		// Negated game choices: contribute or invalid, never keep.
		{"game not keep", "I would not keep the 15 points; I contribute them.", decision, 0, false, "negated"},
		{"game won't donate", "I won't donate", charity, 0, false, ""},
		{"game rather than keep", "Contribute the 15 points rather than keep them.", decision, 0, false, "negated"},
		{"game instead of contributing", "Keep the 15 points instead of contributing.", decision, 0, false, "negated"},
		{"game keep not donate", "I'd keep it, not donate", decision, 0, false, ""},
		{"game definitely not keep", "Definitely not keep", charity, 0, false, ""},
		{"game probably keep rather than donate", "Probably keep rather than donate", charity, 0, false, "negated"},
		{"game don't keep", "Don't keep the 15 points", decision, 0, false, "negated"},
		{"game number negated", "Not 1. I contribute.", decision, 0, false, "negated"},

		// Numbers written against another scale.
		{"5/5", "5/5", pvq, 0, false, "another scale"},
		{"5 out of 5", "5 out of 5", pvq, 0, false, "another scale"},
		{"4 of 5", "4 of 5", pvq, 0, false, "another scale"},
		{"3/10", "3/10", pvq, 0, false, "another scale"},
		{"7 out of 10", "7 out of 10", pvq, 0, false, "another scale"},
		{"5 out of ten", "5 out of ten", pvq, 0, false, "another scale"},
		{"6/6 on a 5 point scale", "5/6", bfi, 0, false, "another scale"},
		{"another range", "On a scale of 1 to 10, I'd say 4.", pvq, 0, false, "another scale"},
		{"another range dash", "4 (1-5)", pvq, 0, false, "another scale"},
		{"points of another scale", "5 on a 5-point scale", pvq, 0, false, "another scale"},
		{"points of this scale", "On this 6-point scale: 5", pvq, 5, true, ""},
		{"out of before", "Out of 10, a 7.", pvq, 0, false, "another scale"},
		{"scale of before", "On a scale of 10, 4", pvq, 0, false, "another scale"},
		{"out of max before", "Out of 6, a 5.", pvq, 5, true, ""},
		{"scale of range", "On a scale of 1 to 6, 2.", pvq, 2, true, ""},
		{"scale of other range", "On a scale of 0 to 10, 2.", pvq, 0, false, "another scale"},
		{"percentage", "80%", pvq, 0, false, "percentage"},
		{"percentage spaced", "4 %", pvq, 0, false, "percentage"},
		{"percent word", "5 percent", pvq, 0, false, "percentage"},
		{"5/6 stays", "5/6", pvq, 5, true, ""},
		{"5 out of 6 stays", "5 out of 6", pvq, 5, true, ""},
		{"5 out of six stays", "I'd give it 5 out of six.", pvq, 5, true, ""},
		{"4/4 on ebq", "4/4", ebq, 4, true, ""},

		// Whole numbers with a decimal point.
		{"4.0", "4.0", pvq, 4, true, ""},
		{"4.00", "4.00", pvq, 4, true, ""},
		{"5. at sentence end", "My answer is 5.", pvq, 5, true, ""},
		{"4.0 in sentence", "I'd say 4.0, somewhat like me.", pvq, 4, true, ""},
		{"4.5", "4.5", pvq, 0, false, "whole number"},
		{"4.50", "4.50", pvq, 0, false, "whole number"},
		{".5", ".5", pvq, 0, false, "whole number"},

		// Qualified numbers.
		{"at least", "at least 4", pvq, 0, false, "qualified"},
		{"almost", "Almost 5", pvq, 0, false, "qualified"},
		{"or more", "4 or more", pvq, 0, false, "qualified"},
		{"plus", "5+", pvq, 0, false, "qualified"},
		{"ish", "4-ish", pvq, 0, false, ""},
		{"tilde", "~4", pvq, 0, false, "qualified"},
		{"degree word near label", "Quite like me", pvq, 0, false, "modified"},
		{"degree after label", "Like me a lot", pvq, 0, false, "modified"},

		// Digits glued to letters of any script are not answers.
		{"cyrillic and han", "Figañaretchдент3组 attachiros", pvq, 0, false, "no answer"},
		{"ascii", "abc3", pvq, 0, false, "no answer"},
		{"ordinal", "3rd", pvq, 0, false, "no answer"},
		{"inside", "x4y", pvq, 0, false, "no answer"},
		{"han before", "第3", pvq, 0, false, "no answer"},
		{"han after", "3组", pvq, 0, false, "no answer"},
		{"greek", "α4", pvq, 0, false, "no answer"},
		{"arabic", "ب4", pvq, 0, false, "no answer"},
		{"combining mark", "4\u0301", pvq, 0, false, "no answer"},
		{"zero width joined", "дент\u200b3", pvq, 0, false, "no answer"},
		{"fullwidth digit", "４", pvq, 4, true, ""},
		{"fullwidth negation", "ＮＯＴ very much like me", pvq, 0, false, "negated"},
		{"fullwidth glued", "第４", pvq, 0, false, "no answer"},
		{"arabic-indic digit", "٤", pvq, 0, false, "no answer"},
		{"superscript", "4²", pvq, 0, false, "no answer"},
		{"han with space", "第 3 组", pvq, 3, true, ""},
		{"cyrillic sentence", "Ответ: 4", pvq, 4, true, ""},

		// Reasoning.
		{"think then number", "<think>\nA 2 would understate it.\n</think>\n\n4", pvq, 4, true, ""},
		{"thinking tag", "<Thinking>5 or 6?</Thinking> 5", pvq, 5, true, ""},
		{"reasoning unclosed", "<reasoning>I pick 3", pvq, 0, false, "truncated"},
		{"orphan close", "maybe 2 or 3</think>4", pvq, 4, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, ok := ParseAnswer(tt.text, tt.sc)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ParseAnswer(%q): got %d, %v (%q), want %d, %v", tt.text, got, ok, reason, tt.want, tt.ok)
			}
			if ok && reason != "" {
				t.Errorf("reason of a valid answer: got %q, want empty", reason)
			}
			if !ok && !strings.Contains(reason, tt.reason) {
				t.Errorf("reason: got %q, want it to contain %q", reason, tt.reason)
			}
		})
	}
}
