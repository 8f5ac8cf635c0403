package llm

import (
	"strings"
	"testing"

	"github.com/society-sim/society/questionnaires"
)

var pvqScale = questionnaires.Scale{Min: 1, Max: 6, Labels: []string{
	"Not like me at all", "Not like me", "A little like me",
	"Somewhat like me", "Like me", "Very much like me",
}}

func TestParseAnswer(t *testing.T) {
	ebq := questionnaires.Scale{Min: 0, Max: 4, Labels: []string{"Never", "Rarely", "Sometimes", "Often", "Always"}}
	charity := questionnaires.Scale{Min: 1, Max: 7, Labels: []string{
		"Definitely keep", "Very probably keep", "Probably keep", "Can't decide",
		"Probably donate", "Very probably donate", "Definitely donate",
	}}
	decision := questionnaires.Scale{Min: 1, Max: 2, Labels: []string{"Keep the 15 points", "Contribute the 15 points"}}

	tests := []struct {
		name   string
		text   string
		sc     questionnaires.Scale
		want   int
		ok     bool
		reason string // a substring of the reason when !ok
	}{
		{"bare", "4", pvqScale, 4, true, ""},
		{"leading space", " 4", pvqScale, 4, true, ""},
		{"newline", "4\n", pvqScale, 4, true, ""},
		{"number and other label", "4 - like me", pvqScale, 0, false, "ambiguous"},
		{"number and far label", "2 - Very much like me", pvqScale, 0, false, "ambiguous"},
		{"number and own label", "6 (Very much like me)", pvqScale, 6, true, ""},
		{"label", "Like me", pvqScale, 5, true, ""},
		{"label lower with period", "like me.", pvqScale, 5, true, ""},
		{"sentence", "I'd say 5.", pvqScale, 5, true, ""},
		{"typographic apostrophe", "I\u2019d say 5.", pvqScale, 5, true, ""},
		{"bold", "**5**", pvqScale, 5, true, ""},
		{"prefix", "Answer: 3", pvqScale, 3, true, ""},
		{"fraction of max", "5/6", pvqScale, 5, true, ""},
		{"out of max", "5 out of 6", pvqScale, 5, true, ""},
		{"quoted range", "On a scale from 1 to 6, I would pick 2.", pvqScale, 2, true, ""},
		{"quoted range dash", "(1-6): 3", pvqScale, 3, true, ""},
		{"repeated number", "5. Yes, 5.", pvqScale, 5, true, ""},
		{"longest label wins", "Very much like me", pvqScale, 6, true, ""},
		{"not like me at all", "This is not like me at all.", pvqScale, 1, true, ""},
		{"not like me", "Not like me", pvqScale, 2, true, ""},
		{"little", "a LITTLE like me", pvqScale, 3, true, ""},
		{"somewhat", "I think it's somewhat like me", pvqScale, 4, true, ""},
		{"zero on zero based scale", "0", ebq, 0, true, ""},
		{"label zero based", "Never.", ebq, 0, true, ""},
		{"label with apostrophe not a refusal", "I can't decide.", charity, 4, true, ""},
		{"label with digits", "Contribute the 15 points", decision, 2, true, ""},
		{"markdown heading", "## 3", pvqScale, 3, true, ""},
		{"think block", "<think>\nThe statement is partly about me. A 2 would understate it.\n</think>\n\nSomewhat like me", pvqScale, 4, true, ""},
		{"think block with number", "<think>maybe 2</think>5", pvqScale, 5, true, ""},

		{"empty", "", pvqScale, 0, false, "empty"},
		{"think unclosed", "<think>\nOkay, there are 3 things to weigh in this statement", pvqScale, 0, false, "truncated"},
		{"think only", "<think>I pick 3</think>", pvqScale, 0, false, "empty"},
		{"blank", "  \n\t", pvqScale, 0, false, "empty"},
		{"refusal", "I'm an AI and cannot have personal values.", pvqScale, 0, false, "refusal"},
		{"refusal with scale", "As an AI language model, I can't rate this from 1 to 6.", pvqScale, 0, false, "refusal"},
		{"sorry", "I'm sorry, but I can not answer that.", pvqScale, 0, false, "refusal"},
		{"off scale", "7", pvqScale, 0, false, "off the scale"},
		{"zero off 1-based scale", "0", pvqScale, 0, false, "off the scale"},
		{"negative", "-3", pvqScale, 0, false, "off the scale"},
		{"between", "Somewhere between 3 and 4.", pvqScale, 0, false, "ambiguous"},
		{"range not the scale", "3-4", pvqScale, 0, false, "ambiguous"},
		{"on and off", "5, or maybe 8", pvqScale, 0, false, "ambiguous"},
		{"other denominator", "5/10", pvqScale, 0, false, "another scale"},
		{"fraction", "4.5", pvqScale, 0, false, "whole number"},
		{"two labels", "Like me, or not like me at all", pvqScale, 0, false, "ambiguous"},
		{"nothing", "Hmm, hard to say.", pvqScale, 0, false, "no answer"},
		{"digits in words", "pvq40", pvqScale, 0, false, "no answer"},
		{"unlike is not like", "unlike me", pvqScale, 0, false, "no answer"},
		{"huge number", "99999999999999999999", pvqScale, 0, false, "off the scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, ok := ParseAnswer(tt.text, tt.sc)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ParseAnswer(%q) = %d, %q, %v; want %d, ok %v", tt.text, got, reason, ok, tt.want, tt.ok)
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

func BenchmarkParseAnswer(b *testing.B) {
	texts := []string{"4", "I'd say 5.", "Very much like me", "I'm an AI and cannot answer."}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ParseAnswer(texts[i%len(texts)], pvqScale)
	}
}

// BenchmarkParseAnswerLong parses a long unreadable reply, as models write
// when they ramble up to max_tokens: parsing stays linear in its length.
func BenchmarkParseAnswerLong(b *testing.B) {
	texts := []string{
		strings.Repeat("</think>", 5000),
		strings.Repeat("Never ", 7000),
		strings.Repeat("Very much like me, ", 2000),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ParseAnswer(texts[i%len(texts)], pvqScale)
	}
}
