package llm

import "testing"

func TestStripReasoning(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		want      string
		truncated bool
	}{
		{"none", "4", "4", false},
		{"think", "<think>\nA 2 would understate it.\n</think>\n\nSomewhat like me", "\n\nSomewhat like me", false},
		{"upper case", "<THINK>3</Think>5", "5", false},
		{"thinking", "<thinking>3</thinking> 5", " 5", false},
		{"reasoning", "<reasoning>3</reasoning>5", "5", false},
		{"several blocks", "<think>1</think>a<think>2</think>b", "ab", false},
		{"mixed tags", "<think>1</think>a<reasoning>2</reasoning>b", "ab", false},
		{"space in tag", "<think >1</think >5", "5", false},
		{"other tag inside", "<think>1 <thinking> 2</think>5", "5", false},
		{"orphan close", "The person is like me, 5 maybe.</think>\n4", "\n4", false},
		{"unclosed", "<think>\nOkay, there are 3 things to weigh", "", true},
		{"unclosed after answer", "4 <think> 5", "4 ", true},
		{"unclosed second block", "<think>1</think>a<think>2", "a", true},
		{"mismatched close", "<think>1</thinking>5", "", true},
		{"harmony final", "<|channel|>analysis<|message|>maybe 3<|end|><|start|>assistant<|channel|>final<|message|>5<|return|>", "5", false},
		{"harmony unfinished", "<|channel|>analysis<|message|>maybe 3", "", true},
		{"angle brackets", "<5>", "<5>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := StripReasoning(tt.text)
			if got != tt.want || truncated != tt.truncated {
				t.Errorf("StripReasoning(%q): got %q, %v, want %q, %v", tt.text, got, truncated, tt.want, tt.truncated)
			}
		})
	}
}
