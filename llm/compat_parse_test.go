package llm

import (
	"encoding/json"
	"testing"
)

// The parser-kind cases of testdata/compat/cases.json, read from their
// exact bodies: each reply's content is parsed on the scale the case
// names, and must give the case's value or be invalid, never the wrong
// value.
func TestCompatCasesParse(t *testing.T) {
	scales := builtinScales(t)
	for _, tc := range []struct {
		name, scale string
		want        int // 0: must be invalid
		never       int // a value it must never be
	}{
		{"negation_pvq", "pvq40", 0, 6},
		{"negation_game", "charity_decision", 0, 1}, // 1 is keep
		{"other_scale", "pvq40", 0, 5},
		{"decimal_whole", "pvq40", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body struct {
				Choices []struct {
					Message struct{ Content string }
				}
			}
			if err := json.Unmarshal([]byte(compatBody(t, tc.name)), &body); err != nil || len(body.Choices) != 1 {
				t.Fatalf("case body: %v", err)
			}
			text := body.Choices[0].Message.Content
			got, reason, ok := ParseAnswer(text, scales[tc.scale])
			if ok && got == tc.never {
				t.Fatalf("ParseAnswer(%q) = %d valid; it must never be %d", text, got, tc.never)
			}
			if tc.want != 0 && (!ok || got != tc.want) {
				t.Errorf("ParseAnswer(%q) = %d, %q, %v; want %d", text, got, reason, ok, tc.want)
			}
			if tc.want == 0 && ok {
				t.Errorf("ParseAnswer(%q) = %d valid; want invalid", text, got)
			}
		})
	}
}
